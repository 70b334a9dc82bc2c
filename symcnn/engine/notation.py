"""Named SymPy symbols for every input, weight, bias and intermediate value, built once.

The notation lives in ``NOTATION`` (rules as data). Each symbol remembers its parts (base letter,
owner such as a filter or class name, 1-based indices, sample tag) so that a printer can typeset it
(``w^{A}_{1,2}``, ``W_{cat,5}``) and escape the user's names.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

# kind -> (base letter, where the owner goes: "sup" (w^{A}), "sub" (W_{cat,...}) or None)
NOTATION: dict[str, tuple[str, str | None]] = {
    "input": ("x", None),
    "filter": ("w", "sup"),
    "filter_bias": ("b", "sup"),
    "conv": ("z", "sup"),
    "activated": ("a", "sup"),
    "pooled": ("m", "sup"),
    "feature": ("f", None),
    "dense_weight": ("W", "sub"),
    "dense_bias": ("b", "sub"),
    "logit": ("o", "sub"),
    "prob": ("p", "sub"),
    "label": ("y", "sub"),
    "loss": ("L", None),
    "learning_rate": ("eta", None),
    "count": ("N", None),
    # the optimizer's step (one representative parameter at a time; ``time`` is t or t-1)
    "opt_grad": ("g", None),
    "velocity": ("b", None),
    "adam_m": ("m", None),
    "adam_v": ("v", None),
    "adam_m_hat": ("mhat", None),
    "adam_v_hat": ("vhat", None),
    "momentum": ("mu", None),
    "beta": ("beta", None),
    "eps": ("epsilon", None),
    "step": ("t", None),
    # hidden dense layers of a stack (owner: the layer's name)
    "hidden": ("h", "sup"),
    "weight": ("W", "sup"),
    "bias": ("b", "sup"),
}


@dataclass(frozen=True)
class SymbolInfo:
    kind: str
    owner: str | None  # filter or class name (user text)
    index: tuple[int, ...]  # 1-based
    sample: str | None = None  # sample tag (user text) for per-sample gradients
    grad: bool = False  # True: this is dL/d(kind owner index)
    new: bool = False  # True: the parameter after an update (W')
    time: str | None = None  # optimizer state: "t" or "t-1", a subscript

    def scripts(self) -> tuple[str, str | None, tuple]:
        """Where the printers put each part: (letter, the owner written above or None, what is written
        below: the owner when not above, then the indices). w^{A}_{1,2}; W_{cat,1,5}."""
        letter, owner_at = NOTATION[self.kind]
        if owner_at == "sup" and self.owner is not None:
            return letter, self.owner, self.index
        return letter, None, self.index if self.owner is None else (self.owner, *self.index)


class Notation:
    """Creates and remembers symbols; ``info[symbol]`` tells a printer what the symbol means."""

    def __init__(self) -> None:
        self.info: dict[sympy.Symbol, SymbolInfo] = {}
        self._cache: dict[SymbolInfo, sympy.Symbol] = {}

    def __call__(self, kind: str, owner: str | None = None, *index: int, **tags) -> sympy.Symbol:
        key = SymbolInfo(kind, owner, tuple(index), **tags)
        symbol = self._cache.get(key)
        if symbol is None:
            symbol = sympy.Symbol(plain_name(key), real=True)
            self._cache[key] = symbol
            self.info[symbol] = key
        return symbol

    def grad(self, kind: str, owner: str | None = None, *index: int, sample: str | None = None) -> sympy.Symbol:
        return self(kind, owner, *index, sample=sample, grad=True)


def plain_name(info: SymbolInfo) -> str:
    """A readable, unique plain-text name: w[A][1,2], dL/dW[cat][1,5]@img1."""
    base = NOTATION[info.kind][0]
    name = base
    if info.owner is not None:
        name += f"[{info.owner}]"
    if info.index:
        name += "[" + ",".join(str(i) for i in info.index) + "]"
    if info.time is not None:
        name += f"_{info.time}"
    if info.new:
        name += "'"
    if info.grad:
        name = f"dL/d{name}"
    if info.sample is not None:
        name += f"@{info.sample}"
    return name
