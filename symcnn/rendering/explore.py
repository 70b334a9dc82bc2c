"""The explorable page's data: every panel as a shared MathML template plus its slots, printed by the
page's own MathML printer; and the same panel built here in Python (the reference the page's script
must reproduce digit for digit).

Data layout (JSON, in a ``<script type="application/json">``):
``{"templates": [MathML with <mi data-slot="n"/>], "symbols": [MathML], "numbers": [number text],
"atoms": [[symbol, number, path]], "panels": {path: [value as `symcnn values` prints it, symbol,
template, [atom per slot], value number, "=" or "≈", gradient 0/1]}}``. A number text is what
``format_number`` writes (``-0.5``, ``\\frac{1}{3}``, ``1.2 \\times 10^{-5}``); the script turns it into
MathML as ``SymcnnMathMLPrinter.number`` does.
"""

from __future__ import annotations

import json

from ..document.model import Document
from ..document.numbers import format_number
from ..document.panels import Panel, slot, slot_number
from ..engine.algebra import substitute
from .mathml import SymcnnMathMLPrinter


class SlotPrinter(SymcnnMathMLPrinter):
    """Prints a panel's template: a slot placeholder as an empty ``<mi data-slot="n"/>``."""

    def _print_Symbol(self, sym, style="plain"):
        n = slot_number(sym)
        if n is None:
            return super()._print_Symbol(sym, style)
        node = self.el("mi")
        node.setAttribute("data-slot", str(n))
        return node


def markup(node) -> str:
    return node.toxml().encode("ascii", "xmlcharrefreplace").decode()


class Table:
    """Strings kept once, referred to by index."""

    def __init__(self) -> None:
        self.items: list = []
        self.index: dict = {}

    def __call__(self, item) -> int:
        n = self.index.get(item)
        if n is None:
            n = self.index[item] = len(self.items)
            self.items.append(item)
        return n


def float_text(value) -> str:
    """The value as `symcnn values` prints it (a JSON float: Python's shortest repr)."""
    return json.dumps(float(value))


def panel_data(doc: Document, settings: dict) -> dict:
    printer = SymcnnMathMLPrinter(settings)
    slots = SlotPrinter(settings)
    precision, fractions = doc.settings.precision, doc.settings.fractions
    templates, symbols, numbers, atoms = Table(), Table(), Table(), Table()
    symbol_text: dict = {}

    def symbol(expr) -> int:
        if expr not in symbol_text:
            symbol_text[expr] = symbols(markup(printer._print(expr)))
        return symbol_text[expr]

    paths = {p.path for p in doc.panels}
    panels = {}
    for p in doc.panels:
        template = templates(markup(slots._print(p.form)))
        slot_atoms = [
            atoms(
                (
                    symbol(s.symbol),
                    numbers(format_number(s.value, precision, fractions)[0]),
                    s.path if s.path in paths else "",
                )
            )
            for s in p.slots
        ]
        text, exact = format_number(p.value, precision, fractions)
        panels[p.path] = [
            float_text(p.value if p.number is None else p.number),
            symbol(p.symbol),
            template,
            slot_atoms,
            numbers(text),
            "=" if exact else "\N{ALMOST EQUAL TO}",
            int(p.gradient),
        ]
    return {
        "templates": templates.items,
        "symbols": symbols.items,
        "numbers": numbers.items,
        "atoms": [list(a) for a in atoms.items],
        "panels": panels,
    }


def data_json(doc: Document, settings: dict) -> str:
    """The data as JSON safe inside a <script> element (no ``<``, ``>`` or ``&`` left)."""
    text = json.dumps(panel_data(doc, settings), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def reference_panel(panel: Panel, settings: dict) -> dict:
    """The panel built in Python with the page's printer, as MathML (what the page's script must build)."""
    printer = SymcnnMathMLPrinter(settings)
    symbols = {slot(n): s.symbol for n, s in enumerate(panel.slots)}
    numbers = {slot(n): s.value for n, s in enumerate(panel.slots)}
    text, exact = format_number(panel.value, settings.get("precision", 3), settings.get("fractions", False))
    return {
        "symbol": printer.doprint(panel.symbol),
        "general": printer.doprint(substitute(panel.form, symbols)),
        "substituted": printer.doprint(substitute(panel.form, numbers)),
        "value": printer.doprint(panel.value),
        "rel": "=" if exact else "\N{ALMOST EQUAL TO}",
        "data-value": float_text(panel.value if panel.number is None else panel.number),
    }
