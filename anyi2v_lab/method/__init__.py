"""The AnyI2V method as plain eager code, one concept per module in the paper's order: ``config``,
``alignment``, ``inversion`` (into a ``feature_bank``), ``injection`` (``adain``), ``masks`` and ``pca``
(features on the alignment ``grid``), ``loss``, ``optimize``, ``generate`` (``calls``, ``record``).
Speed is attached from outside by :mod:`anyi2v_lab.accel`.

The names below load with their module on first use: ``anyi2v_lab.method.config`` needs no torch, so the
command line refuses a bad ``--set`` value at once, before torch (seconds) is imported.
"""
import sys
import types
from importlib import import_module

from .config import AnyI2VConfig, ConfigError

_HOMES = {"adain": "adain", "patch_adain": "adain", "FeatureBank": "feature_bank", "InversionCache": "feature_bank",
          "GenerationResult": "generate", "generate": "generate", "encode_image": "inversion", "invert": "inversion",
          "invert_cached": "inversion", "InspectionRecord": "record", "Iteration": "record"}

__all__ = ["AnyI2VConfig", "ConfigError", *_HOMES]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Importing the submodule ``generate`` would bind the package's ``generate`` to that module (the import
    system sets it on the parent); the name stays the function, as an eager import left it."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and name in _HOMES and _HOMES[name] == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
