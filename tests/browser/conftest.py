"""The JupyterLab server fixture, defined beside the quickstart's browser test, for every browser test here."""
from browser.test_browser import lab  # noqa: F401  (a fixture: pytest finds it by name)
