"""Where our templates come from: the one Jinja environment every format starts from (packaged
folder, strict about undefined names, compiled templates cached) and what every printer of a document
is told. A leaf of ``rendering``: the formats, the pictures, the HTML page and Jupyter import it."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from ..version import __version__

if TYPE_CHECKING:
    from ..document.model import Document

LATEX_DELIMITERS = dict(
    block_start_string=r"\BLOCK{",
    block_end_string="}",
    variable_start_string=r"\VAR{",
    variable_end_string="}",
    comment_start_string=r"\#{",
    comment_end_string="}",
    line_comment_prefix="%#",
)


def template_dir() -> Path:
    packaged = resources.files("symcnn") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "templates"  # a source checkout


def cache_folder() -> Path:
    """Where compiled templates are kept: $XDG_CACHE_HOME (else ~/.cache)/symcnn/VERSION/templates."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "symcnn" / __version__ / "templates"


@cache
def template_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between runs (as Python keeps __pycache__), in the user's cache folder;
    Jinja checks each against its template's source. None where that folder cannot be written."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    return jinja2.FileSystemBytecodeCache(str(folder))


def jinja_environment(autoescape=False, **options) -> jinja2.Environment:
    """The one way our templates are loaded: the packaged folder, strict about undefined names, compiled
    templates cached. ``autoescape`` for HTML and SVG; LaTeX passes its own delimiters in ``options``."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        bytecode_cache=template_cache(),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=autoescape,
        **options,
    )


def printer_settings(doc: Document) -> dict:
    """What every printer of a document needs to know (its symbols, rounding, fractions, sample tags)."""
    return {
        "notation": doc.notation,
        "precision": doc.settings.precision,
        "fractions": doc.settings.fractions,
        "show_sample": doc.show_sample,
    }
