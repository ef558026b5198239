"""Interactive widgets (filled in by the Jupyter issue)."""
