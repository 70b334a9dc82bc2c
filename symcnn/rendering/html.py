"""The worked solution as one self-contained HTML page: inline CSS, inline SVG, maths as MathML.

Jinja autoescape is on, so every piece of user text is escaped; MathML and SVG come in as markup
only from our printer (``mathml.py``) and our SVG template (``drawing.py``), which escape text themselves.
"""

from __future__ import annotations

import base64
import hashlib

from markupsafe import Markup, escape

from ..document.model import Document, Matrix, Section
from ..document.numbers import format_number
from . import drawing
from .mathml import SymcnnMathMLPrinter
from .templates import jinja_environment, printer_settings


def chapters(sections) -> list[tuple[Section, list[Section]]]:
    """Each level-1 section with the level-2 sections that follow it (one collapsible part each)."""
    out: list[tuple[Section, list[Section]]] = []
    for section in sections:
        if section.level == 1 or not out:
            out.append((section, []))
        else:
            out[-1][1].append(section)
    return out


MATHML_DOTS = {
    "diagonal": "\N{DOWN RIGHT DIAGONAL ELLIPSIS}",
    "vertical": "\N{VERTICAL ELLIPSIS}",
    "horizontal": "\N{MIDLINE HORIZONTAL ELLIPSIS}",
}


def explorable(node, path: str | None):
    """A number the reader can open, by its `symcnn values` path (the page's script makes it focusable
    and names it by its path, for the 1,000s of cells of a large page)."""
    if path is not None:
        node.setAttribute("data-path", path)
    return node


def explorable_markup(markup: str, path: str | None) -> Markup:
    """MathML markup wrapped in an explorable <mrow> (as ``explorable``)."""
    if path is None:
        return Markup(markup)
    return Markup(f'<mrow data-path="{escape(path)}">{markup}</mrow>')


def matrix_mathml(m: Matrix, printer: SymcnnMathMLPrinter) -> str:
    """name = [cells], elided cells as dots, marked cells (max-pool winners) with class ``win``."""
    rows = []
    for i, row in enumerate(m.values):
        cells = []
        for j, value in enumerate(row):
            if value is None:
                cell = printer.el("mtd", printer.mo(MATHML_DOTS[m.dots(i, j)]))
            else:
                path = None if m.paths is None else m.paths[i, j]
                cell = printer.el("mtd", explorable(printer.row(printer._print(value)), path))
                if (i, j) in m.marks:
                    cell.setAttribute("class", "win")
            cells.append(cell)
        rows.append(printer.el("mtr", *cells))
    table = printer.row(printer.mo("["), printer.el("mtable", *rows), printer.mo("]"))
    node = printer.row(printer._print(m.name), printer.mo("="), table)
    return node.toxml().encode("ascii", "xmlcharrefreplace").decode()


def environment(doc: Document):
    env = jinja_environment(autoescape=True)
    settings = printer_settings(doc)
    printer = SymcnnMathMLPrinter(settings)
    fixed = SymcnnMathMLPrinter({**settings, "scientific": False})
    env.filters.update(
        mml=lambda expr: Markup(printer.doprint(expr)),
        rel=lambda value: "=" if format_number(value, doc.settings.precision, doc.settings.fractions)[1] else "≈",
        matrix=lambda m: Markup(matrix_mathml(m, fixed)),
        cell=lambda value: Markup(fixed.doprint(value)),
        explore=explorable_markup,
        svg=lambda panel: Markup(drawing.svg(panel)),
    )
    env.globals["chapters"] = chapters
    return env


def source_hash(text: str) -> str:
    """A Content-Security-Policy source for one inline script or style: its SHA-256."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def page(doc: Document) -> str:
    """The whole page: <!DOCTYPE html> with inline style, script, the panels' data and content; a
    Content-Security-Policy allowing only that style and script (no network, no eval)."""
    from .explore import data_json

    env = environment(doc)
    style, script = (env.loader.get_source(env, f"html/{name}")[0] for name in ("style.css", "explore.js"))
    policy = (
        f"default-src 'none'; script-src {source_hash(script)}; style-src {source_hash(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    data = data_json(doc, printer_settings(doc)) if doc.panels else None
    return env.get_template("html/page.html.j2").render(
        doc=doc, style=Markup(style), script=Markup(script), policy=policy, data=Markup(data) if data else None
    )


def fragment(doc: Document) -> str:
    """The content with its (scoped) style, for a Jupyter cell."""
    return environment(doc).get_template("html/fragment.html.j2").render(doc=doc)
