"""How a number is written: exact decimals exactly, others rounded half-even, tiny and huge ones in
scientific form. The printers (LaTeX, MathML) and the document's plain text (pictures, the setup) share it."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import sympy

MAX_EXACT_DECIMALS = 6


def format_number(value, precision: int = 3, fractions: bool = False, scientific: bool = True) -> tuple[str, bool]:
    """(LaTeX text, exact?) of a number. Exact decimals print exactly (0.7, -2, 0.125);
    other values are rounded half-even to ``precision`` decimals (tiny ones in scientific form)."""
    v = sympy.sympify(value)
    if v.is_Rational:
        if v.q == 1:
            return str(int(v.p)), True
        decimals = terminating_decimals(int(v.q))
        if fractions and (decimals is None or decimals > precision):
            sign = "-" if v.p < 0 else ""
            return rf"{sign}\frac{{{abs(int(v.p))}}}{{{int(v.q)}}}", True
        if decimals is not None and decimals <= max(precision, MAX_EXACT_DECIMALS):
            scaled = Decimal(int(v.p) * 10**decimals // int(v.q)).scaleb(-decimals)  # exact
            return _plain(scaled, strip=True), True
    number = Decimal(str(sympy.Float(v, 30)))
    if number == 0:
        return "0", True
    if scientific and (abs(number) < Decimal(10) ** -precision / 2 or abs(number) >= Decimal(10) ** 7):
        mantissa, exponent = f"{number:.{max(precision - 1, 1)}e}".split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}", False
    rounded = number.quantize(Decimal(10) ** -precision, rounding=ROUND_HALF_EVEN)
    if rounded == 0:  # only without scientific form: say it was rounded, keep the digits
        return ("-" if number < 0 else "") + _plain(rounded.copy_abs()), False
    return _plain(rounded), False


def terminating_decimals(q: int) -> int | None:
    """Decimals of p/q written out exactly (q = 2^a 5^b needs max(a, b)); None if it never ends."""
    counts = []
    for prime in (2, 5):
        n = 0
        while q % prime == 0:
            q //= prime
            n += 1
        counts.append(n)
    return max(counts) if q == 1 else None


def _plain(number: Decimal, strip: bool = False) -> str:
    """Fixed-point text; exact values lose trailing zeros, rounded ones keep them (0.080)."""
    text = f"{number:f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if strip and text.lstrip("-").strip("0.") == "" else text


def plain_number(value, precision: int) -> str:
    """A number in the document's prose and picture captions, as the printers write it."""
    return format_number(value, precision)[0]
