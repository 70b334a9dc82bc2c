"""Jupyter display: what ``Derivation._repr_*_`` and ``Report._repr_*_`` return (``show``, which
``symcnn/__init__`` registers with ``symcnn.display``; the engine and the checker never import this module).

A Derivation shows its worked solution (the HTML page's content, the Markdown with its pictures as
data URIs, or maths-only LaTeX for MathJax and nbconvert); a Report shows its check table. The document
is built the public way (check, then build_document), once per object however many reprs ask.
"""

from __future__ import annotations

import base64

import jinja2

import symcnn.escape as escape

from .document.model import Document
from .rendering import drawing
from .verify import Report

_last: list = []  # (object, document) of the last Derivation displayed: Jupyter asks for each format in turn


def document(derivation) -> Document:
    if _last and _last[0][0] is derivation:
        return _last[0][1]
    from .rendering.formats import document_for

    doc = document_for(derivation.scenario)
    _last[:] = [(derivation, doc)]
    return doc


def solution_html(derivation) -> str:
    from .rendering.html import fragment

    return fragment(document(derivation))


def solution_markdown(derivation) -> str:
    """The Markdown document, its pictures inline as SVG data URIs (a notebook has no files next to it)."""
    from .rendering.formats import environment

    doc = document(derivation)
    env = environment("markdown", doc)
    inline = {}
    for f in drawing.figures(doc):
        for i, panel in enumerate(f.panels):
            data = base64.b64encode(drawing.svg(panel).encode("utf-8")).decode("ascii")
            inline[f.key, i] = f"data:image/svg+xml;base64,{data}"
    env.globals["figure_file"] = lambda key, i: inline[key, i]
    return env.get_template("markdown/document.md.j2").render(doc=doc)


def solution_latex(derivation) -> str:
    """Maths for MathJax (and nbconvert's LaTeX): each step a $$ display, titles and text as plain lines."""
    from .rendering.formats import environment

    doc = document(derivation)
    env = environment("markdown", doc)  # maths as the Markdown has it (MathJax-safe \text{})
    env.filters.update(esc=escape.latex, mtext=escape.math_text)
    return env.get_template("notebook/solution.tex.j2").render(doc=doc)


def _report_env() -> jinja2.Environment:
    from .rendering.templates import jinja_environment

    return jinja_environment(autoescape=jinja2.select_autoescape(["html.j2"]))


def report(report, fmt: str) -> str:
    """The table `symcnn check` prints, as HTML, Markdown or LaTeX (an array for MathJax)."""
    env = _report_env()
    env.filters.update(md=escape.markdown, tex=escape.math_text)
    suffix = {"html": "html", "markdown": "md", "latex": "tex"}[fmt]
    return env.get_template(f"notebook/report.{suffix}.j2").render(report=report, sc=report.scenario)


SOLUTION = {"html": solution_html, "markdown": solution_markdown, "latex": solution_latex}


def show(obj, fmt: str) -> str:
    """``obj`` (a Derivation or a Report) as ``fmt``: "html", "markdown" or "latex"."""
    if isinstance(obj, Report):
        return report(obj, fmt)
    return SOLUTION[fmt](obj)
