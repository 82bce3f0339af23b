"""Token mixers, one file each, behind one contract (`lra.models.mixers.base`: read it to write a new one).

Every module in this package is imported here so that its `@register` runs.
"""

import importlib
import pkgutil

from lra.models.mixers.base import HeadedMixer, Mixer
from lra.models.mixers.registry import MIXERS, available, build_mixer, register, resolve

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("registry", "base"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MIXERS", "HeadedMixer", "Mixer", "available", "build_mixer", "register", "resolve"]
