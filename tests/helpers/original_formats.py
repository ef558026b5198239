"""The original-layout writers the loader tests use (they live in the package: the benchmarks use them too)."""
from anyi2v_lab.models.original_formats import adapter_to_original, pipeline_to_ldm, unet_key_to_ldm

__all__ = ["adapter_to_original", "pipeline_to_ldm", "unet_key_to_ldm"]
