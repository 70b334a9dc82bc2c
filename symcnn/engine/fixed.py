"""Sums of products of exact numbers in Python integers: the exact engines' convolutions and dense layers.

An array of Fractions is whole numbers over one common denominator; an array of 50-digit floats is whole
numbers times one power of two (every binary digit kept). A product-sum over such integers is exact, and is
scaled back once per result cell: tens of times faster than the same sums over Fraction or mpmath objects,
and never less exact (rational results stay Fractions, float results are rounded once, not per product).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import mpmath
import numpy as np

from .algebra import to_float


def integers(values: np.ndarray) -> tuple[np.ndarray, Fraction, int | None]:
    """(whole numbers, q, e) with values = ints * q (e None), or values = ints * q * 2^e."""
    values = np.asarray(values, dtype=object)
    if all(isinstance(v, (Fraction, int)) for v in values.flat):
        scale = math.lcm(*(Fraction(v).denominator for v in values.flat)) if values.size else 1
        ints = np.vectorize(lambda v: int(v * scale), otypes=[object])(values) if values.size else values
        return ints, Fraction(1, scale), None
    parts = [_binary(v) for v in values.flat]
    low = min((e for m, e in parts if m), default=0)
    ints = np.array([m << (e - low) if m else 0 for m, e in parts], dtype=object).reshape(values.shape)
    return ints, Fraction(1), low


def _binary(value) -> tuple[int, int]:
    """(m, e) with value = m * 2^e exactly (a Fraction without binary digits goes through its 50-digit float)."""
    if not value:
        return 0, 0
    if isinstance(value, (Fraction, int)):
        value = Fraction(value)
        if not value.denominator & (value.denominator - 1):
            return value.numerator, -(value.denominator.bit_length() - 1)
        value = to_float(value)
    sign, man, exp, _ = value._mpf_
    return (-man if sign else man), exp


def combine(function: Callable, *arrays: np.ndarray) -> np.ndarray:
    """``function`` (a product-sum: einsum, @, outer, the conv input gradient) of exact arrays, exactly:
    computed on their whole numbers and scaled back."""
    parts = [integers(a) for a in arrays]
    total = function(*(ints for ints, _, _ in parts))
    q = math.prod((scale for _, scale, _ in parts), start=Fraction(1))
    exponents = [e for _, _, e in parts if e is not None]
    if not exponents:
        return np.vectorize(lambda v: Fraction(v) * q, otypes=[object])(total)
    e = sum(exponents)
    return np.vectorize(lambda v: mpmath.ldexp(mpmath.mpf(v), e) * q if v else Fraction(0), otypes=[object])(total)
