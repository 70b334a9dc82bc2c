"""SymPy -> presentation MathML through one printer class, the sibling of latex.py's: the same symbol
names, the same numbers (``format_number``), terms in written order, and our ``Sub``/``MaxOf``/``Dots``."""

from __future__ import annotations

import re
from xml.dom.minidom import Text

import sympy
from sympy.printing.mathml import MathMLPresentationPrinter

from ..document.numbers import format_number
from ..engine.algebra import Sub
from ..engine.notation import Notation, SymbolInfo
from .latex import NumbersPrinted

BASE_MATHML = {
    "eta": "\N{GREEK SMALL LETTER ETA}",
    "mu": "\N{GREEK SMALL LETTER MU}",
    "beta": "\N{GREEK SMALL LETTER BETA}",
    "epsilon": "\N{GREEK SMALL LETTER EPSILON}",
}
HATS = {"mhat": "m", "vhat": "v"}  # Adam's bias-corrected moments
MINUS = "\N{MINUS SIGN}"
FRACTION = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")
SCIENTIFIC = re.compile(r"(-?)([\d.]+) \\times 10\^\{(-?\d+)\}")


class SymcnnMathMLPrinter(NumbersPrinted, MathMLPresentationPrinter):
    """MathMLPresentationPrinter with symcnn's symbol names, number style and a ``Sub`` node."""

    printmethod = "_symcnn_mathml"
    _default_settings = {
        **MathMLPresentationPrinter._default_settings,
        "order": "none",
        "precision": 3,
        "fractions": False,
        "notation": None,
        "show_sample": False,
        "scientific": True,
    }

    # elements --------------------------------------------------------------------------
    def el(self, tag: str, *children, text: str | None = None):
        """An element; its text escaped (SymPy's own ``createTextNode`` writes text raw, for entities)."""
        node = self.dom.createElement(tag)
        if text is not None:
            escaped = Text()
            escaped.data, escaped.ownerDocument = text, self.dom
            node.appendChild(escaped)
        for child in children:
            node.appendChild(child)
        return node

    def row(self, *children):
        return self.el("mrow", *children)

    def mo(self, text: str):
        return self.el("mo", text=text)

    def fence(self, text: str, stretchy: bool = False):
        """A parenthesis; stretchy ones only around tall content (Chromium pads stretchy fences)."""
        node = self.mo(text)
        if not stretchy:
            node.setAttribute("stretchy", "false")
        return node

    def fenced(self, node):
        tall = any(node.getElementsByTagName(tag) for tag in ("mfrac", "munder", "munderover", "mtable"))
        return self.row(self.fence("(", tall), node, self.fence(")", tall))

    # symbols ---------------------------------------------------------------------------
    def _print_Symbol(self, sym, style="plain"):
        notation: Notation | None = self._settings["notation"]
        info = notation.info.get(sym) if notation is not None else None
        if info is None:
            return super()._print_Symbol(sym, style)
        return self.symbol(info)

    def symbol(self, info: SymbolInfo):
        letter, above, below = info.scripts()
        base = self.el("mi", text=BASE_MATHML.get(letter, HATS.get(letter, letter)))
        if letter in HATS:
            base = self.el("mover", base, self.mo("^"))
            base.setAttribute("accent", "true")
        prime = self.mo("\N{PRIME}") if info.new else None  # the parameter after an update: W'
        sup = self.el("mtext", text=above) if above is not None else None
        sub = []
        for n, part in enumerate(below):
            sub += ([self.mo(",")] if n else []) + [self.el("mtext" if isinstance(part, str) else "mn", text=str(part))]
        if info.time is not None:  # optimizer state: t or t-1
            sub += ([self.mo(",")] if sub else []) + [self.el("mi", text="t")]
            sub += [self.mo(MINUS), self.el("mn", text="1")] if info.time != "t" else []
        if prime is not None:
            sup = prime if sup is None else self.row(prime, sup)
        node = base
        if sup is not None and sub:
            node = self.el("msubsup", base, self.row(*sub), sup)
        elif sup is not None:
            node = self.el("msup", base, sup)
        elif sub:
            node = self.el("msub", base, self.row(*sub))
        if not info.grad:
            return node
        loss = self.el("mi", text="L")
        if self._settings["show_sample"] and info.sample is not None:
            sample = self.el("mtext", text=info.sample)
            loss = self.el("msup", loss, self.row(self.fence("("), sample, self.fence(")")))
        d = "\N{PARTIAL DIFFERENTIAL}"
        return self.el("mfrac", self.row(self.mo(d), loss), self.row(self.mo(d), node))

    # numbers ---------------------------------------------------------------------------
    def number(self, expr):
        s = self._settings
        text = format_number(expr, s["precision"], s["fractions"], s["scientific"])[0]
        sign = []
        if m := FRACTION.fullmatch(text):
            sign = [self.mo(MINUS)] if m.group(1) else []
            node = self.el("mfrac", self.el("mn", text=m.group(2)), self.el("mn", text=m.group(3)))
        elif m := SCIENTIFIC.fullmatch(text):
            sign = [self.mo(MINUS)] if m.group(1) else []
            power = self.el("msup", self.el("mn", text="10"), self.el("mn", text=m.group(3).replace("-", MINUS)))
            node = self.row(self.el("mn", text=m.group(2)), self.mo("\N{MULTIPLICATION SIGN}"), power)
        else:
            sign = [self.mo(MINUS)] if text.startswith("-") else []
            node = self.el("mn", text=text.lstrip("-"))
        return self.row(*sign, node) if sign else node

    # structure -------------------------------------------------------------------------
    def starts_with_minus(self, node) -> bool:
        while node.tagName == "mrow" and node.firstChild is not None:
            node = node.firstChild
        return node.tagName == "mo" and node.firstChild is not None and node.firstChild.data in ("-", MINUS)

    def without_minus(self, node):
        """The node of a term printed with a leading minus, that minus removed."""
        first = node
        while first.tagName == "mrow":
            parent, first = first, first.firstChild
            if first.tagName == "mo" and first.firstChild.data in ("-", MINUS):
                parent.removeChild(first)
                return node
        return node

    def _factor(self, arg):
        node = self._print(arg)
        if isinstance(arg, (sympy.Add, Sub)) or (arg.is_Number and arg < 0) or self.starts_with_minus(node):
            return self.fenced(node)
        return node

    def _print_Mul(self, expr):
        """Substituted products (numbers as factors) as ``a · b``; symbolic ones as SymPy does."""
        args = list(expr.args)
        numbers = [i for i, a in enumerate(args) if a.is_Number]
        if len(args) == 2 and isinstance(args[1], sympy.Pow) and args[1].exp == -1:  # a / b as written
            return self.el("mfrac", self._print(args[0]), self._print(args[1].base))
        if len(args) == 2 and args[0].is_Rational and args[0].p == 1 and isinstance(args[1], sympy.Add):
            one_over = self.el("mfrac", self.el("mn", text="1"), self.el("mn", text=str(args[0].q)))
            return self.row(one_over, self.mo("\N{MIDDLE DOT}"), self.fenced(self._print(args[1])))
        if args[0] == -1 and len(args) == 2 and not args[1].is_Number:
            return self.row(self.mo(MINUS), self._factor(args[1]))
        if len(numbers) >= 2 or (numbers and numbers != [0]):
            children = []
            for n, a in enumerate(args):
                children += ([self.mo("\N{MIDDLE DOT}")] if n else []) + [self._factor(a)]
            return self.row(*children)
        if all(a.is_Symbol or isinstance(a, (sympy.Indexed, sympy.Add, Sub)) for a in args):  # written order
            children = []
            for n, a in enumerate(args):
                children += ([self.mo("\N{INVISIBLE TIMES}")] if n else []) + [self._factor(a)]
            return self.row(*children)
        return super()._print_Mul(expr)

    def _print_Add(self, expr, order=None):
        """Terms in the order written; a term printed with a leading minus is subtracted."""
        children = []
        for i, term in enumerate(expr.args):
            node = self._print(term)
            if isinstance(term, (sympy.Add, Sub)):
                node = self.fenced(node)
            if i and self.starts_with_minus(node):
                children += [self.mo(MINUS), self.without_minus(node)]
            else:
                children += ([self.mo("+")] if i else []) + [node]
        return self.row(*children)

    def _print_Indexed(self, expr):
        indices = []
        for n, i in enumerate(expr.indices):
            indices += ([self.mo(",")] if n else []) + [self._print(i)]
        return self.el("msub", self._print(expr.base), self.row(*indices))

    def _print_Sum(self, expr):
        """One sum sign over all limits, as the LaTeX printer does (SymPy's MathML keeps only the first)."""
        sigma = self.mo("\N{N-ARY SUMMATION}")
        limits = expr.limits
        if len(limits) == 1:
            var, low, high = limits[0]
            under = self.row(self._print(var), self.mo("="), self._print(low))
            sign = self.el("munderover", sigma, under, self._print(high))
        else:
            rows = [
                self.el(
                    "mtr",
                    self.el(
                        "mtd",
                        self.row(
                            self._print(low),
                            self.mo("\N{LESS-THAN OR EQUAL TO}"),
                            self._print(var),
                            self.mo("\N{LESS-THAN OR EQUAL TO}"),
                            self._print(high),
                        ),
                    ),
                )
                for var, low, high in limits
            ]
            sign = self.el("munder", sigma, self.el("mtable", *rows))
        term = self._print(expr.function)
        return self.row(sign, self.fenced(term) if isinstance(expr.function, sympy.Add) else term)

    def _print_Dots(self, expr):
        return self.mo("\N{MIDLINE HORIZONTAL ELLIPSIS}")

    def _print_MaxOf(self, expr):
        children = [self.el("mi", text="max"), self.fence("(")]
        for n, a in enumerate(expr.args):
            children += ([self.mo(",")] if n else []) + [self._print(a)]
        return self.row(*children, self.fence(")"))

    def _print_Sub(self, expr):
        a, b = expr.args
        return self.row(self._print(a), self.mo(MINUS), self._factor(b))

    def _print_exp(self, expr):
        return self.el("msup", self.el("mi", text="e"), self._print(expr.args[0]))
