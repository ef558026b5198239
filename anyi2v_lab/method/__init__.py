"""The AnyI2V method: inversion, injection, trajectory optimisation, generation."""
from .adain import adain, patch_adain
from .config import AnyI2VConfig, ConfigError
from .features import FeatureBank, FeatureCache
from .generate import GenerationResult, generate
from .inversion import encode_image, invert, invert_cached
from .record import InspectionRecord, Iteration

__all__ = ["adain", "patch_adain", "AnyI2VConfig", "ConfigError", "FeatureBank", "FeatureCache",
           "GenerationResult", "generate", "encode_image", "invert", "invert_cached", "InspectionRecord",
           "Iteration"]
