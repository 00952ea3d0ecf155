"""Sphinx configuration: the API reference is built from the package's docstrings (PyG style: Args, Shapes)."""

import sparse_universe

project = "sparse_universe"
author = "the sparse_universe developers"
release = version = sparse_universe.__version__
copyright = "2026, the sparse_universe developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shapes"]

html_theme = "furo"
html_title = f"sparse_universe {release}"
