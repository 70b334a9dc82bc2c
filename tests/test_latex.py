"""The printer: (expression, expected LaTeX) tables, as sympy's own test_latex.py does."""

from __future__ import annotations

import pytest
import sympy
from sympy import Integer, Rational

from symcnn.engine.algebra import MaxOf, Sub, plus, times
from symcnn.engine.notation import Notation
from symcnn.rendering.latex import format_number, to_latex

N = Notation()
x11 = N("input", None, 1, 1)
wA = N("filter", "A", 1, 2)
W = N("dense_weight", "cat", 5)
f5 = N("feature", None, 5)
o_cat = N("logit", "cat")
gW = N.grad("dense_weight", "cat", 5, sample="img1")
hostile = N("logit", "$\\input{x}_%&#{}~^")


@pytest.mark.parametrize(
    "value,expected",
    [
        (Rational(7, 10), ("0.7", True)),
        (Integer(-2), ("-2", True)),
        (Rational(1, 8), ("0.125", True)),
        (Rational(1, 3), ("0.333", False)),
        (Rational(2, 3), ("0.667", False)),
        (sympy.Float("0.0799999999"), ("0.080", False)),
        (sympy.Float("-0.2141650169"), ("-0.214", False)),
        (sympy.Float("0.0004"), (r"4.00 \times 10^{-4}", False)),
        (sympy.Float("-0.0000001"), (r"-1.00 \times 10^{-7}", False)),
        (Integer(0), ("0", True)),
        (sympy.Float("-0.0001"), (r"-1.00 \times 10^{-4}", False)),
        (Rational(-1, 1024), ("-0.001", False)),
        (Rational(1, 2**40), (r"9.09 \times 10^{-13}", False)),  # exact, but 40 decimals long
        (Rational(123456789, 1000), ("123456.789", True)),
    ],
)
def test_format_number(value, expected):
    assert format_number(value, 3) == expected


def test_fractions_on_request():
    assert format_number(Rational(1, 3), 3, fractions=True) == (r"\frac{1}{3}", True)
    assert format_number(Rational(-2, 3), 3, fractions=True) == (r"-\frac{2}{3}", True)
    assert format_number(Rational(1, 2), 3, fractions=True) == ("0.5", True)


def test_rounding_never_contradicts_the_value():
    for k in range(1, 400):
        value = Rational(k, 397)
        text, _ = format_number(value, 3)
        assert abs(float(text) - float(value)) <= 0.0005 + 1e-12


@pytest.mark.parametrize(
    "expr,expected",
    [
        (x11, "x_{1,1}"),
        (wA, r"w^{\text{A}}_{1,2}"),
        (W, r"W_{\text{cat},5}"),
        (N("dense_weight", "cat", 5, new=True), r"{W'}_{\text{cat},5}"),
        (gW, r"\frac{\partial L}{\partial W_{\text{cat},5}}"),
        (N("learning_rate"), r"\eta"),
        (hostile, r"o_{\text{\$\textbackslash{}input\{x\}\_\%\&\#\{\}\textasciitilde{}\textasciicircum{}}}"),
        (plus(times(W, f5), N("dense_bias", "cat")), r"W_{\text{cat},5} f_{5} + b_{\text{cat}}"),
        (
            sympy.Add(
                sympy.Mul(Integer(1), Integer(0), evaluate=False),
                sympy.Mul(Integer(-1), Integer(1), evaluate=False),
                Rational(-1, 20),
                evaluate=False,
            ),
            r"1 \cdot 0 + \left(-1\right) \cdot 1 - 0.05",
        ),
        (Sub(Rational(1, 10), times(Rational(1, 10), sympy.Float(-0.428, 30))), r"0.1 - 0.1 \cdot \left(-0.428\right)"),
        (
            Sub(W, times(N("learning_rate"), gW)),
            r"W_{\text{cat},5} - \eta \frac{\partial L}{\partial W_{\text{cat},5}}",
        ),
        (MaxOf(0, Integer(-2)), r"\max\left(0, -2\right)"),
        (MaxOf(Integer(0), Integer(0)), r"\max\left(0, 0\right)"),
        (
            sympy.Mul(
                sympy.exp(o_cat, evaluate=False),
                sympy.Pow(plus(sympy.exp(o_cat, evaluate=False), Integer(1)), -1, evaluate=False),
                evaluate=False,
            ),
            r"\frac{e^{o_{\text{cat}}}}{e^{o_{\text{cat}}} + 1}",
        ),
        (
            sympy.Mul(-1, sympy.log(N("prob", "cat"), evaluate=False), evaluate=False),
            r"-\log{\left(p_{\text{cat}} \right)}",
        ),
    ],
)
def test_printer(expr, expected):
    assert to_latex(expr, notation=N) == expected


def test_sample_tags_only_when_asked():
    assert to_latex(gW, notation=N, show_sample=True) == (
        r"\frac{\partial L^{(\text{img1})}}{\partial W_{\text{cat},5}}"
    )


def test_fixed_point_for_matrix_cells():
    assert format_number(sympy.Float("0.0000222"), 3, scientific=False) == ("0.000", False)
    assert format_number(sympy.Float("-0.0000222"), 3, scientific=False) == ("-0.000", False)
    assert format_number(sympy.Float("0.1234"), 3, scientific=False) == ("0.123", False)


def test_shorten_cuts_long_sums_and_denominators_for_display():
    from symcnn.engine.algebra import shorten

    terms = [N("feature", None, n) for n in range(1, 31)]
    assert (
        to_latex(shorten(plus(*terms), 24), notation=N) == "f_{1} + f_{2} + f_{3} + f_{4} + \\cdots + f_{29} + f_{30}"
    )
    exps = [sympy.exp(N("logit", f"c{i}"), evaluate=False) for i in range(10)]
    p = sympy.Mul(exps[0], sympy.Pow(plus(*exps), -1, evaluate=False), evaluate=False)
    assert to_latex(shorten(p, 24), notation=N) == (
        r"\frac{e^{o_{\text{c0}}}}{e^{o_{\text{c0}}} + e^{o_{\text{c1}}} + \cdots + e^{o_{\text{c9}}}}"
    )
    short = plus(*terms[:3])
    assert shorten(short, 24) == short  # short sums stay whole
