"""Panels of the explorable HTML page: for a number shown with its `symcnn values` path, its symbol,
general form, substituted form and value, and (a gradient's chain rule) the path of each factor.

A panel's general form is kept as a *template*: the symbols (and a ReLU derivative's Piecewise) become
numbered slots, so cells of one kind share one printed template, and the page fills a slot with the
slot's symbol (general form) or number (substituted form). Each slot's number is the exact value the
quantity was checked with (``Quantity.env``); the panel's value is the checked quantity's.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from ..engine.algebra import Quantity, evaluate, exact, shorten, to_exact, to_sympy
from ..engine.exact import GRADIENT_GROUP, VALUE_GROUP, UpdateDerivation, agrees
from ..errors import VerificationError
from .model import MAX_TERMS, relu_display

SLOT = "\N{SECTION SIGN}slot"  # placeholder symbols' names: a notation symbol never starts with §
MORE_PANELS = 1000  # beyond the numbers shown, panels of their factors (then theirs...), this many at most


@dataclass(frozen=True)
class Slot:
    symbol: sympy.Expr  # a notation symbol, or a Piecewise (a ReLU derivative: its branch's value shown)
    value: sympy.Expr  # exact
    path: str | None  # the slot's own `symcnn values` path, when it has one


@dataclass(frozen=True)
class Panel:
    path: str
    symbol: sympy.Expr
    form: sympy.Expr  # the general form, slots as placeholders slot(n)
    slots: tuple[Slot, ...]
    value: sympy.Expr
    gradient: bool
    number: float | None = None  # the value as `symcnn values` (NumPy) prints it


def slot(n: int) -> sympy.Symbol:
    return sympy.Symbol(f"{SLOT}{n}")


def slot_number(symbol) -> int | None:
    name = getattr(symbol, "name", "")
    return int(name[len(SLOT) :]) if name.startswith(SLOT) else None


def slotted(expr: sympy.Expr, found: dict) -> sympy.Expr:
    """``expr`` with each symbol and Piecewise replaced by slot(n), n in order of first appearance."""
    if expr.is_Symbol or isinstance(expr, sympy.Piecewise):
        if expr not in found:
            found[expr] = len(found)
        return slot(found[expr])
    if not expr.args:
        return expr
    args = [slotted(a, found) for a in expr.args]
    try:
        return expr.func(*args, evaluate=False)
    except TypeError:
        return expr.func(*args)


class Panels:
    """Panels for the quantities shown, then for their factors (breadth first) up to MAX_PANELS."""

    def __init__(self, derivation, elide: bool, numeric: dict | None = None) -> None:
        self.d = derivation
        self.elide = elide
        self.numeric = numeric

    def number(self, path: str) -> float | None:
        """NumPy's value at ``path`` (what `symcnn values` prints), if known: the intermediate steps of an
        optimizer update (``updates[0].dense_weights[0][0].g``) have none."""
        from ..scenario.model import parse_path

        node = self.numeric
        if node is None:
            return None
        for part in parse_path(path):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):  # a step of a worked optimizer update (….g, ….m): not in the JSON
                return None
        return node if isinstance(node, (int, float)) else None

    def record(self, path: str):
        part, n = path.split(".", 1)[0].rstrip("]").split("[")
        return {"steps": self.d.steps, "updates": self.d.updates, "final": self.d.final}[part][int(n)]

    def quantity(self, path: str) -> Quantity:
        from ..scenario.model import parse_path

        part, n, key, *index = parse_path(path)
        record = self.record(path)
        if key in ("filters", "grad_filters") and len(index) == 3:
            index = [index[0], 0, *index[1:]]
        return record.groups[key][tuple(index)]

    def symbol_path(self, record, symbol) -> str | None:
        """The `symcnn values` path of a symbol of ``record``'s quantities (parameters: none)."""
        info = self.d.notation.info.get(symbol)
        if info is None:
            return None
        D, kind = self.d.deriver, info.kind
        index = tuple(i - 1 for i in info.index)
        if info.grad:
            steps = record.steps if isinstance(record, UpdateDerivation) else [record]
            source = next((s for s in steps if s.sample == info.sample), None)
            group = GRADIENT_GROUP.get(kind)
        else:
            params = kind in ("filter", "filter_bias", "dense_weight", "dense_bias")
            source = None if params or isinstance(record, UpdateDerivation) else record
            group = VALUE_GROUP.get(kind)
        if source is None or group not in source.groups:
            return None
        return D.path(source, group, D._owner_index(info, index, kind))

    def panel(self, q: Quantity) -> Panel:
        record = self.record(q.path)
        key = q.path.split(".")[1].split("[")[0]
        general = q.general
        if key == "activated":  # max(0, z) as the page shows it, checked like the page's equation
            activation = self.d.scenario.activation
            (z,) = q.general.free_symbols
            general = relu_display(activation.kind, z, exact(activation.slope)) or general
            shown = evaluate(general, q.env)
            if not agrees(shown, to_exact(q.value)):
                raise VerificationError(f"{q.path}: the panel's form evaluates to {shown}, not {q.value}")
        if self.elide:
            general = shorten(general, MAX_TERMS)
        found: dict = {}
        form = slotted(general, found)
        env = {s: to_sympy(v) for s, v in q.env.items()}
        slots = []
        for symbol in found:
            if isinstance(symbol, sympy.Piecewise):
                value = to_sympy(evaluate(symbol, q.env))
                slots.append(Slot(symbol, value, None))
            else:
                slots.append(Slot(symbol, env[symbol], self.symbol_path(record, symbol)))
        gradient = key.startswith("grad_")
        return Panel(q.path, q.symbol, form, tuple(slots), q.value, gradient, self.number(q.path))

    def build(self, shown: dict) -> tuple[Panel, ...]:
        out: dict[str, Panel] = {}
        queue = list(shown)
        quantities = dict(shown)
        while queue and len(out) < len(shown) + MORE_PANELS:
            path = queue.pop(0)
            if path in out:
                continue
            q = quantities.get(path) or self.quantity(path)
            out[path] = panel = self.panel(q)
            queue += [s.path for s in panel.slots if s.path is not None and s.path not in out]
        return tuple(out.values())


def build_panels(derivation, shown: dict, elide: bool, numeric: dict | None = None) -> tuple[Panel, ...]:
    return Panels(derivation, elide, numeric).build(shown)
