"""The AnyI2V method as plain eager code, one concept per module in the paper's order: ``config``,
``alignment``, ``inversion`` (into a ``feature_bank``), ``injection`` (``adain``), ``masks`` and ``pca``
(features on the alignment ``grid``), ``loss``, ``loss_scaling``, ``optimize``, ``generation`` (``calls``,
``record``).
Speed is attached from outside by :mod:`anyi2v_lab.accel`.

The names below load with their module on first use: ``anyi2v_lab.method.config`` needs no torch, so the
command line refuses a bad ``--set`` value at once, before torch (seconds) is imported.
"""
from importlib import import_module

from .config import AnyI2VConfig, ConfigError

# no name here is also a submodule's: importing the submodule would rebind the package's name to it
_HOMES = {"patch_adain": "adain", "FeatureBank": "feature_bank", "InversionCache": "feature_bank",
          "GenerationResult": "generation", "generate": "generation",
          "encode_image": "inversion", "invert": "inversion", "invert_cached": "inversion",
          "clear_inversion_cache": "inversion",
          "InspectionRecord": "record", "Iteration": "record"}

__all__ = ["AnyI2VConfig", "ConfigError", *_HOMES]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

