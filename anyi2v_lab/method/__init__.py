"""The AnyI2V method as plain eager code, one concept per module in the paper's order: ``config``,
``alignment``, ``inversion`` (into a ``feature_bank``), ``injection`` (``adain``), ``masks`` and ``pca``
(features on the alignment ``grid``), ``loss``, ``optimize``, ``generate`` (``calls``, ``record``).
Speed is attached from outside by :mod:`anyi2v_lab.accel`."""
from .adain import adain, patch_adain
from .config import AnyI2VConfig, ConfigError
from .feature_bank import FeatureBank, InversionCache
from .generate import GenerationResult, generate
from .inversion import encode_image, invert, invert_cached
from .record import InspectionRecord, Iteration

__all__ = ["adain", "patch_adain", "AnyI2VConfig", "ConfigError", "FeatureBank", "InversionCache",
           "GenerationResult", "generate", "encode_image", "invert", "invert_cached", "InspectionRecord",
           "Iteration"]
