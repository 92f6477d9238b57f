"""Sphinx configuration for the baseplate documentation."""

from __future__ import annotations

import os
import sys
from typing import Any

from sphinx import addnodes

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DOCS)
sys.path.insert(0, REPO)

project = "baseplate"
author = "baseplate contributors"
copyright = "baseplate contributors"
release = "0.28.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]

# No network inventories: the build must work offline.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_typehints_description_target = "documented_params"
html_theme = "alabaster"
html_static_path = ["_static"]
# Code blocks and wide tables scroll in their own box, long literals wrap: nothing is clipped
# on a narrow screen.
html_css_files = ["narrow-screens.css"]
html_title = "baseplate on OpenTelemetry"

# Names every executed example may use.
doctest_global_setup = f"""
DOCS_DIR = {DOCS!r}
REPO_DIR = {REPO!r}
"""

# Type names in string annotations that two documented modules define, resolved by the module
# the annotation appears in (autodoc cannot evaluate annotations of __init__ parameters).
AMBIGUOUS_TYPE_NAMES = {
    ("baseplate.events", "MessageQueue"): "baseplate.message_queue.MessageQueue",
}


def resolve_ambiguous_type_names(app: Any, doctree: Any) -> None:
    """Point ambiguous type names of annotations at the class the module means."""
    for node in doctree.findall(addnodes.pending_xref):
        target = AMBIGUOUS_TYPE_NAMES.get((node.get("py:module"), node.get("reftarget")))
        if node.get("refdomain") == "py" and target is not None:
            node["reftarget"] = target
            node["refspecific"] = False


def setup(app: Any) -> None:
    app.connect("doctree-read", resolve_ambiguous_type_names)
