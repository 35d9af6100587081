"""Griffe extension for the docs site: render ``Example:`` sections as code.

The package's Google-style docstrings head their doctests ``Example:``; griffe's Google parser
knows only ``Examples:`` as a code section and renders any other title as a prose admonition, in
which a ``>>>`` session reads as one run-on paragraph. Renaming the heading at load time keeps
the sources as they are (mkdocs.yml loads this file).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename every ``Example:`` heading of a loaded docstring to ``Examples:``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        if obj.docstring is not None:
            obj.docstring.value = HEADING.sub(r"\1Examples:", obj.docstring.value)
