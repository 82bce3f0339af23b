"""Name -> mixer class, so that `model.mixer=<name>` selects a token mixer; a dotted path selects a user's own."""

from __future__ import annotations

import importlib
import inspect

from torch import nn

from lra.errors import LRAError
from lra.models.mixers.base import Mixer

MIXERS: dict[str, type[Mixer]] = {}
# Every mixer takes these four; the rest of its constructor's parameters are its options.
CORE = ("d_model", "n_heads", "max_len", "dropout")


def register(name: str):
    """Class decorator: make a mixer selectable by `name`."""

    def add(cls: type[Mixer]) -> type[Mixer]:
        if name in MIXERS:
            raise ValueError(f"mixer {name!r} is registered twice ({MIXERS[name].__module__}, {cls.__module__})")
        if not issubclass(cls, Mixer):
            raise TypeError(f"mixer {name!r} ({cls.__qualname__}) must subclass lra.models.mixers.Mixer")
        MIXERS[name] = cls
        return cls

    return add


def available() -> list[str]:
    return sorted(MIXERS)


def import_mixer(path: str) -> type[Mixer]:
    """The class at a dotted path `package.module.Class`, checked against the contract."""
    module_name, _, attr = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise LRAError(
            f"model.mixer={path!r} cannot be imported ({type(err).__name__}: {err}); "
            "put its package on PYTHONPATH or use a registered name"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, Mixer)):
        raise LRAError(
            f"model.mixer={path!r} is not a subclass of lra.models.mixers.Mixer; see README 'Add your own model'"
        )
    missing = [p for p in CORE if p not in inspect.signature(cls.__init__).parameters]
    if missing:
        raise LRAError(f"model.mixer={path!r} must take ({', '.join(CORE)}) in __init__; it lacks {', '.join(missing)}")
    return cls


def resolve(name: str) -> type[Mixer]:
    """A registered name or a dotted class path -> the mixer class; anything else is one line naming the key."""
    if name in MIXERS:
        return MIXERS[name]
    if "." in name:
        return import_mixer(name)
    raise LRAError(
        f"model.mixer={name!r} is not a mixer; available: {', '.join(available())}, or a dotted class path"
    )


def options_of(cls: type[Mixer]) -> list[str]:
    """The options a mixer class accepts beyond the core four (empty if it takes **options)."""
    params = inspect.signature(cls.__init__).parameters
    return sorted(set(params) - {"self", *CORE} - {n for n, p in params.items() if p.kind is p.VAR_KEYWORD})


def build_mixer(name: str, d_model: int, n_heads: int, max_len: int, dropout: float, **options) -> nn.Module:
    """Build a mixer; unknown names and unknown options are user errors, named with their config key."""
    cls = resolve(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = options_of(cls)
            raise LRAError(
                f"model.{unknown[0]} is not an option of mixer {name!r}; its options: {', '.join(known) or 'none'}"
            )
    return cls(d_model=d_model, n_heads=n_heads, max_len=max_len, dropout=dropout, **options)
