"""Name -> mixer class, so that `model.mixer=<name>` selects a token mixer; a dotted path selects a user's own."""

from __future__ import annotations

import importlib
import inspect

from lra.errors import LRAError
from lra.models.mixers.base import Mixer, rotary_error

MIXERS: dict[str, type[Mixer]] = {}
# The classes that compute what the LRA release computed, for the names whose release differs from the paper.
RELEASE: dict[str, type[Mixer]] = {}
# Every mixer takes these four; the rest of its constructor's parameters are its options.
CORE = ("d_model", "n_heads", "max_len", "dropout")
# The options every mixer takes and passes on to Mixer.__init__ (see lra.models.mixers.base).
BASE = ("impl", "qkv_dim", "rotary")


def register(name: str, impl: str = "paper"):
    """Class decorator: make a mixer selectable by `name` (impl="release": the name's release variant)."""
    table = RELEASE if impl == "release" else MIXERS

    def add(cls: type[Mixer]) -> type[Mixer]:
        if name in table:
            raise ValueError(f"mixer {name!r} is registered twice ({table[name].__module__}, {cls.__module__})")
        if not issubclass(cls, Mixer):
            raise TypeError(f"mixer {name!r} ({cls.__qualname__}) must subclass lra.models.mixers.Mixer")
        table[name] = cls
        if impl == "release":
            cls.released = True
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
            f"model.mixer={path!r} is not a subclass of lra.models.mixers.Mixer; see README 'Add a model'"
        )
    missing = [p for p in CORE if p not in inspect.signature(cls.__init__).parameters]
    if missing:
        raise LRAError(f"model.mixer={path!r} must take ({', '.join(CORE)}) in __init__; it lacks {', '.join(missing)}")
    return cls


def resolve(name: str, impl: str = "paper") -> type[Mixer]:
    """A registered name or a dotted class path -> the mixer class; anything else is one line naming the key.

    impl="release" picks the name's release class where it has one; otherwise both values give the same class."""
    if name in MIXERS:
        return RELEASE.get(name, MIXERS[name]) if impl == "release" else MIXERS[name]
    if "." in name:
        return import_mixer(name)
    raise LRAError(
        f"model.mixer={name!r} is not a mixer; available: {', '.join(available())}, or a dotted class path"
    )


def accepted(cls: type[Mixer]) -> tuple[set[str], bool]:
    """The keyword parameters a mixer class accepts, following `**base` up to Mixer.__init__, and whether it
    accepts any keyword at all (a **kwargs that does not end at Mixer)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return names, False
        if klass is Mixer or not issubclass(klass, Mixer):
            break
    return names, True


def options_of(cls: type[Mixer]) -> list[str]:
    """The options a mixer class accepts beyond the core four and the base options."""
    return sorted(accepted(cls)[0] - {*CORE, *BASE})


def build_mixer(
    name: str,
    d_model: int,
    n_heads: int,
    max_len: int,
    dropout: float,
    impl: str = "paper",
    qkv_dim: int | None = None,
    rotary: bool = False,
    **options,
) -> Mixer:
    """Build a mixer; unknown names and unknown options are user errors, named with their config key."""
    cls = resolve(name, impl)
    names, anything = accepted(cls)
    unknown = sorted(set(options) - names)
    if unknown and not anything:
        known = ", ".join(options_of(cls)) or "none"
        raise LRAError(f"model.{unknown[0]} is not an option of mixer {name!r}; its options: {known}")
    if rotary and not ("rotary" in names or anything):
        raise rotary_error(cls)
    base = {"impl": impl, "qkv_dim": qkv_dim, "rotary": rotary}
    # A user's mixer that takes neither base option computes one method under both impl values; qkv_dim it must take.
    base = {k: v for k, v in base.items() if k in names or anything or (k in ("qkv_dim", "rotary") and v)}
    return cls(d_model=d_model, n_heads=n_heads, max_len=max_len, dropout=dropout, **base, **options)
