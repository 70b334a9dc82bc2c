"""The worked solution as one self-contained HTML page: inline CSS, inline SVG, maths as MathML.

Jinja autoescape is on, so every piece of user text is escaped; MathML and SVG come in as markup
only from our printer (``mathml.py``) and our SVG template (``drawing.py``), which escape text themselves.
"""

from __future__ import annotations

from markupsafe import Markup

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


def matrix_mathml(m: Matrix, printer: SymcnnMathMLPrinter) -> str:
    """name = [cells], elided cells as dots, marked cells (max-pool winners) with class ``win``."""
    rows = []
    for i, row in enumerate(m.values):
        cells = []
        for j, value in enumerate(row):
            if value is None:
                cell = printer.el("mtd", printer.mo(MATHML_DOTS[m.dots(i, j)]))
            else:
                cell = printer.el("mtd", printer._print(value))
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
        svg=lambda panel: Markup(drawing.svg(panel)),
    )
    env.globals["chapters"] = chapters
    return env


def page(doc: Document) -> str:
    """The whole page: <!DOCTYPE html> with inline style and content."""
    return environment(doc).get_template("html/page.html.j2").render(doc=doc)


def fragment(doc: Document) -> str:
    """The content with its (scoped) style, for a Jupyter cell."""
    return environment(doc).get_template("html/fragment.html.j2").render(doc=doc)
