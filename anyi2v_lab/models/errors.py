"""The one error type of model loading."""
from __future__ import annotations


class ModelLoadError(ValueError):
    """A model source, file or option that cannot be loaded. The message names the value and the fix.

    Raised before weights are read wherever the problem can be seen from paths, names, configs or keys.
    """
