"""Package discovery only; all metadata lives in pyproject.toml.

The top-level ``widgets/`` folder ships as the subpackage ``anyi2v_lab.widgets`` (front-end files sit
beside their Python classes), which ``packages.find`` in pyproject.toml cannot express.
"""
from setuptools import find_packages, setup

core = find_packages(include=["anyi2v_lab", "anyi2v_lab.*"])
widgets = ["anyi2v_lab.widgets"] + [
    "anyi2v_lab.widgets." + p for p in find_packages(where="widgets")
]
setup(packages=core + widgets)
