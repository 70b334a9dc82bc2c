"""SymPy -> LaTeX through one printer class: our notation, our numbers, terms in written order."""

from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter

import symcnn.escape as escape

from ..document.numbers import format_number
from ..engine.algebra import Sub
from ..engine.notation import Notation, SymbolInfo

BASE_TEX = {
    "eta": r"\eta",
    "mu": r"\mu",
    "beta": r"\beta",
    "epsilon": r"\varepsilon",
    "mhat": r"\hat{m}",
    "vhat": r"\hat{v}",
}


class NumbersPrinted:
    """Every kind of SymPy number through the printer's own ``number`` (our rounding, exact decimals):
    mixed into the LaTeX and the MathML printer alike."""

    def _print_Integer(self, expr):
        return self.number(expr)

    _print_Rational = _print_Integer
    _print_Float = _print_Integer
    _print_Zero = _print_Integer
    _print_One = _print_Integer
    _print_NegativeOne = _print_Integer
    _print_Half = _print_Integer


class SymcnnLatexPrinter(NumbersPrinted, LatexPrinter):
    """LatexPrinter with symcnn's symbol names, number style and a ``Sub`` node; nothing else."""

    printmethod = "_symcnn_latex"
    _default_settings = {
        **LatexPrinter._default_settings,
        "order": "none",
        "precision": 3,
        "fractions": False,
        "notation": None,
        "show_sample": False,
        "text_escape": escape.latex,  # user text inside \text{...}
        "scientific": True,  # tiny and huge rounded numbers as a x 10^n (matrices: fixed point)
    }

    # symbols ---------------------------------------------------------------------------
    def _print_Symbol(self, expr, style="plain"):
        notation: Notation | None = self._settings["notation"]
        info = notation.info.get(expr) if notation is not None else None
        if info is None:
            return super()._print_Symbol(expr, style)
        return self.symbol_tex(info)

    def symbol_tex(self, info: SymbolInfo) -> str:
        letter, above, below = info.scripts()
        esc = self._settings["text_escape"]
        base = BASE_TEX.get(letter, letter)
        if info.new:
            base = "{" + base + "'}"
        sup = rf"\text{{{esc(above)}}}" if above is not None else ""
        sub = ",".join(rf"\text{{{esc(part)}}}" if isinstance(part, str) else str(part) for part in below)
        if info.time is not None:  # optimizer state: t or t-1, in math
            sub = ",".join(part for part in (sub, info.time) if part)
        tex = base + (f"^{{{sup}}}" if sup else "") + (f"_{{{sub}}}" if sub else "")
        if info.grad:
            loss = "L"
            if self._settings["show_sample"] and info.sample is not None:
                loss = rf"L^{{(\text{{{esc(info.sample)}}})}}"
            return rf"\frac{{\partial {loss}}}{{\partial {tex}}}"
        return tex

    # numbers ---------------------------------------------------------------------------
    def number(self, expr) -> str:
        settings = self._settings
        return format_number(expr, settings["precision"], settings["fractions"], settings["scientific"])[0]

    # structure -------------------------------------------------------------------------
    def _factor(self, arg) -> str:
        tex = self._print(arg)
        if isinstance(arg, (sympy.Add, Sub)):
            return f"({tex})"  # plain parentheses: TeX may break a long sum inside them
        if (arg.is_Number and arg < 0) or tex.startswith("-"):
            return rf"\left({tex}\right)"
        return tex

    def _print_Mul(self, expr):
        """Substituted products (numbers as factors) as ``a \\cdot b``; symbolic ones as SymPy does."""
        args = list(expr.args)
        numbers = [i for i, a in enumerate(args) if a.is_Number]
        if len(args) == 2 and isinstance(args[1], sympy.Pow) and args[1].exp == -1:  # a / b as written
            return rf"\frac{{{self._print(args[0])}}}{{{self._print(args[1].base)}}}"
        if len(args) == 2 and args[0].is_Rational and args[0].p == 1 and isinstance(args[1], sympy.Add):
            return rf"\frac{{1}}{{{args[0].q}}} \cdot ({self._print(args[1])})"  # a mean; breakable
        if args[0] == -1 and len(args) == 2 and not args[1].is_Number:
            return "-" + self._factor(args[1])
        if len(numbers) >= 2 or (numbers and numbers != [0]):
            return r" \cdot ".join(self._factor(a) for a in args)
        return super()._print_Mul(expr)

    def _print_Add(self, expr, order=None):
        """Terms in the order written; a term printed with a leading minus is subtracted."""
        tex = ""
        for i, term in enumerate(expr.args):
            term_tex = self._print(term)
            if isinstance(term, (sympy.Add, Sub)):
                term_tex = rf"\left({term_tex}\right)"
            if i == 0:
                tex = term_tex
            elif term_tex.startswith("-"):
                tex += " - " + term_tex[1:]
            else:
                tex += " + " + term_tex
        return tex

    def _print_Dots(self, expr):
        return r"\cdots"

    def _print_MaxOf(self, expr):
        return r"\max\left(" + ", ".join(self._print(a) for a in expr.args) + r"\right)"

    def _print_Sub(self, expr):
        a, b = expr.args
        return f"{self._print(a)} - {self._factor(b)}"

    def _print_exp(self, expr, exp=None):
        tex = rf"e^{{{self._print(expr.args[0])}}}"
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


def to_latex(expr, **settings) -> str:
    return SymcnnLatexPrinter(settings).doprint(expr)
