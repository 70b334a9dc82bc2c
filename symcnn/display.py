"""Jupyter display for the core's objects, without the core importing display code.

A class that mixes in ``Displayable`` (``Derivation``, ``Report``) answers Jupyter's ``_repr_*_`` calls
through the one function registered here; ``symcnn/__init__`` registers ``symcnn.jupyter.show``, which
is imported only when a notebook first asks. The model is SymPy's ``core/_print_helpers.Printable``.
"""

from __future__ import annotations

from collections.abc import Callable

_show: list[Callable[[object, str], str]] = []  # (object, "html" | "markdown" | "latex") -> text


def register(show: Callable[[object, str], str]) -> None:
    _show[:] = [show]


def shown(obj: object, fmt: str) -> str | None:
    """The registered display of ``obj`` in ``fmt``; None (Jupyter then tries the next format) when none is."""
    return _show[0](obj, fmt) if _show else None


class Displayable:
    """Jupyter's rich display: HTML, Markdown and LaTeX, each from the registered function."""

    def _repr_html_(self) -> str | None:
        return shown(self, "html")

    def _repr_markdown_(self) -> str | None:
        return shown(self, "markdown")

    def _repr_latex_(self) -> str | None:
        return shown(self, "latex")
