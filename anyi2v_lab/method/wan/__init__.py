"""AnyI2V on a Wan video transformer (experimental; provisional defaults, see :mod:`.config`)."""
from .config import WanAnyI2VConfig
from .generation import WanGenerationResult, WanRecord, generate_wan

__all__ = ["WanAnyI2VConfig", "WanGenerationResult", "WanRecord", "generate_wan"]
