"""Slides say less twice: a matrix that a picture beside it shows with its numbers is left to the
picture, and a short derivation is written on one line. The article and the snippets keep every block."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from ..document.model import values_of
from ..engine.algebra import shorten

MATH_CHAR_PT = 6.2  # an average character of displayed maths at 11 pt (a conservative guess)
SCRIPT = 0.7  # sub- and superscripts
ONE_LINE_SHARE = 0.9  # of the frame's width
SLIDE_TERMS = 6  # summary slides: longer sums show their first 3 and last 2 terms around dots
TEXT_CHAR_PT, COLUMN_PT = 5.0, 12.0  # a character of 11 pt text; the space between table columns


@dataclass(frozen=True)
class OneLine:
    """An equation written lhs = general = substituted = value on one line (same overlays)."""

    equation: object
    kind: str = "equation"
    one_line: bool = True

    def __getattr__(self, name):  # lhs, general, substituted, value: the equation's
        return getattr(self.equation, name)


def pictured(blocks) -> list:
    """``blocks`` without the matrices a heatmap of the same section shows number for number, and
    without the text that introduced such a matrix ("Image img1 (label cat):")."""
    shown = [p.values for b in blocks if b.kind == "figure" for p in b.panels if getattr(p, "texts", None) is not None]
    out = []
    for block in blocks:
        if block.kind == "matrix" and not block.shape and any(same(block, values) for values in shown):
            if out and out[-1].kind == "text" and out[-1].text.endswith(":"):
                out.pop()
            continue
        out.append(block)
    return out


def same(matrix, values: np.ndarray) -> bool:
    cells = matrix.values
    if cells.shape != values.shape or any(v is None for v in cells.flat):
        return False
    return bool(np.allclose(values_of(cells), values, rtol=0, atol=1e-12))


SPACED = {"cdot", "times", "approx", "leq", "geq"}  # operators and relations: a character and space around
SILENT = {"left", "right", "displaystyle", "mathrm", "text", "operatorname", "mathbf", "boldsymbol"}


def group(tex: str, i: int) -> tuple[str, int]:
    """The argument starting at ``tex[i]`` (a {group} or one character) and the index after it."""
    if i < len(tex) and tex[i] == "{":
        depth = 0
        for j in range(i, len(tex)):
            depth += {"{": 1, "}": -1}.get(tex[j], 0)
            if depth == 0:
                return tex[i + 1 : j], j + 1
    return tex[i : i + 1], i + 1


def chars(tex: str) -> float:
    """Characters of displayed maths its LaTeX sets: a fraction as wide as its wider part, scripts smaller."""
    total, i = 0.0, 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            name = re.match(r"\\([a-zA-Z]+|.?)", tex[i:], re.DOTALL).group(1)  # (a lone \\ at the end: "")
            i += 1 + len(name)
            if name == "frac":
                top, i = group(tex, i)
                bottom, i = group(tex, i)
                total += max(chars(top), chars(bottom))
            elif name not in SILENT:
                total += 2 if name in SPACED else 1
        elif c in "_^":
            script, i = group(tex, i + 1)
            total += SCRIPT * chars(script)
        elif c == "{":
            inner, i = group(tex, i)
            total += chars(inner)
        else:
            total += 0 if c.isspace() or c == "}" else 2 if c in "+-=<>" else 1
            i += 1
    return total


def width(tex: str) -> float:
    """A guess of the width of displayed maths, in pt, from its LaTeX."""
    return chars(tex) * MATH_CHAR_PT


def one_line(block, printer, page_width: float):
    """An equation as OneLine when all of it fits on one line of the frame; any other block as it is."""
    if block.kind != "equation" or printer is None:
        return block
    parts = [block.lhs, block.general, block.substituted, block.value]
    total = sum(width(printer(p)) + 3 * MATH_CHAR_PT for p in parts if p is not None)
    return OneLine(block) if total <= ONE_LINE_SHARE * page_width else block


def shortened(block, detail: str):
    """At summary detail, an equation's long sums cut to their ends (display only: the full sums were
    checked and are in the article)."""
    if block.kind != "equation" or detail != "summary":
        return block
    general, substituted = (
        None if e is None else shorten(e, SLIDE_TERMS, 3, 2) for e in (block.general, block.substituted)
    )
    if general is block.general and substituted is block.substituted:
        return block
    return dataclasses.replace(block, general=general, substituted=substituted)


def narrowed(block, page_width: float):
    """A table too wide for the frame without its last text columns (the article keeps them)."""
    if block.kind != "table":
        return block
    while len(block.header) > 3 and table_width(block) > page_width:
        last = len(block.header) - 1
        if any(row[last].math for row in block.rows):
            break
        block = dataclasses.replace(block, header=block.header[:last], rows=tuple(row[:last] for row in block.rows))
    return block


def table_width(table) -> float:
    def cell(c) -> float:
        return 6 * TEXT_CHAR_PT if c.math else len(str(c.value)) * TEXT_CHAR_PT

    columns = zip(table.header, *table.rows)
    return sum(max(cell(c) for c in column) + COLUMN_PT for column in columns)


def for_slides(blocks, detail: str, printer, page_width: float) -> list:
    """A section's blocks as a slide shows them."""
    return [one_line(shortened(narrowed(b, page_width), detail), printer, page_width) for b in pictured(blocks)]
