"""Test helpers: writers of the original (non-diffusers) file layouts, to exercise the loaders' converters."""
