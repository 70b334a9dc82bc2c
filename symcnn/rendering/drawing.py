"""Figures to SVG and TikZ: the filters the picture templates use, and the SVG files of a document.

``figures.layout`` decides where everything goes; templates/svg/panel.svg.j2 and
templates/latex/figure.tex.j2 only draw it. SVG is written with Jinja autoescape, so user text
(titles, sample names) is escaped; TikZ text goes through ``escape.latex``.
"""

from __future__ import annotations

from functools import cache

import jinja2

import symcnn.escape as escape

from ..document.layout import FONT, Box, layout
from ..document.model import Document, Figure
from .templates import jinja_environment

SVG_SCALE = 1.5  # px per layout unit in a standalone SVG (the HTML page scales it to fit)
TIKZ_ANCHORS = {"start": "left,base", "middle": "base", "end": "right,base"}  # \pgftext's


def n(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def baseline(box: Box) -> float:
    """Where a cell's number sits: centred in the cell."""
    return box.y + box.h / 2 + FONT * 0.35


def svg_colour(rgb: tuple) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def tikz_colour(rgb: tuple) -> str:
    r, g, b = rgb
    return f"rgb,255:red,{r};green,{g};blue,{b}"


def tikz_text(text: str) -> str:
    return escape.latex(text).replace("\N{MINUS SIGN}", r"\textminus{}").replace("\N{HORIZONTAL ELLIPSIS}", r"\ldots{}")


def tikz_dash(dash: str) -> str:
    r"""What goes inside \pgfsetdash{...}{0pt}: {4pt}{2pt}, or nothing for a solid line."""
    return "".join(f"{{{length}pt}}" for length in dash.split())


PICTURE_FILTERS = {
    "layout": layout,
    "n": n,
    "baseline": baseline,
    "svgcolour": svg_colour,
    "tikzcolour": tikz_colour,
    "tikztext": tikz_text,
    "tikzdash": tikz_dash,
    "tikzanchor": TIKZ_ANCHORS.get,
}


@cache
def svg_environment() -> jinja2.Environment:
    env = jinja_environment(autoescape=True)
    env.filters.update(PICTURE_FILTERS)
    return env


def svg(panel, scale: float = SVG_SCALE) -> str:
    """One panel (Heatmap or Chart) as an <svg> element."""
    return svg_environment().get_template("svg/panel.svg.j2").render(panel=panel, scale=scale)


def figures(doc: Document) -> list[Figure]:
    return [b for s in doc.sections for b in s.blocks if b.kind == "figure"]


def figure_folder(doc: Document) -> str:
    return f"{doc.name}-figures"


def panel_files(doc: Document) -> dict[tuple[str, int], str]:
    """(figure key, panel number) -> the SVG file's path relative to the Markdown file."""
    return {(f.key, i): f"{figure_folder(doc)}/{f.key}-{i + 1}.svg" for f in figures(doc) for i in range(len(f.panels))}


def svg_files(doc: Document) -> dict[str, str]:
    """Every panel of the document as a standalone SVG file (for Markdown)."""
    files = panel_files(doc)
    header = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return {files[f.key, i]: header + svg(p) for f in figures(doc) for i, p in enumerate(f.panels)}
