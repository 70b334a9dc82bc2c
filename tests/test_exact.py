"""The bulk exact engine and the per-cell quantities built on demand: they must agree, exactly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy

import symcnn
from symcnn.cli import main
from symcnn.engine.algebra import MaxOf, Sub, evaluate, exact, to_exact
from symcnn.engine.exact import Group, derive
from symcnn.errors import VerificationError


@pytest.mark.parametrize("name", ["four-images", "zebra-cat"])
def test_every_cell_expression_gives_the_bulk_value(name):
    derivation = derive(symcnn.load(name))
    count = 0
    for q in derivation.quantities():  # each one is checked as it is built
        assert q.substituted.doit() == q.value or abs(q.substituted.doit().evalf(40) - q.value) < 1e-35, q.path
        count += 1
    assert count == len(dict(derivation.numbers()))


def test_rational_layers_stay_exact_and_irrational_ones_carry_50_digits():
    derivation = derive(symcnn.load("zebra-cat"))
    step = derivation.steps[0]
    assert step.values["conv"][0, 0, 0] == Fraction(7, 10)
    assert isinstance(step.values["probs"][0], mpmath.mpf)
    p = step.groups["probs"][0].value
    assert isinstance(p, sympy.Float) and p._prec >= 160  # 50 decimal digits
    o = [derivation.steps[0].values["logits"][c] for c in range(2)]
    with mpmath.workdps(60):
        expected = mpmath.exp(o[0]) / (mpmath.exp(o[0]) + mpmath.exp(o[1]))
    assert abs(step.values["probs"][0] - expected) < mpmath.mpf(10) ** -50


def test_groups_build_quantities_only_when_asked():
    derivation = derive(symcnn.load("four-images"))
    conv = derivation.steps[0].groups["conv"]
    assert isinstance(conv, Group) and conv.shape == (2, 3, 3) and not conv._cache
    filter_b = conv[1]
    assert filter_b.shape == (3, 3)
    q = filter_b[0, 2]
    assert q.path == "steps[0].conv[1][0][2]" and q is conv[1, 0, 2]
    assert len(conv._cache) == 1
    assert [x.path for x in conv[0][0]] == [f"steps[0].conv[0][0][{j}]" for j in range(3)]


def test_a_cell_that_disagrees_with_the_bulk_value_is_an_error():
    derivation = derive(symcnn.load("zebra-cat"))
    step = derivation.steps[0]
    step.values["conv"][0, 0, 0] = Fraction(71, 100)  # as if the layer rule had a bug
    with pytest.raises(VerificationError, match=r"steps\[0\]\.conv\[0\]\[0\]\[0\]"):
        step.groups["conv"][0, 0, 0]


def test_evaluate_walks_our_expressions_exactly():
    x, y = sympy.symbols("x y", real=True)
    env = {x: Fraction(3, 10), y: Fraction(-1, 5)}
    ordered = sympy.Add(sympy.Mul(x, y, evaluate=False), x, evaluate=False)
    assert evaluate(ordered, env) == Fraction(3, 10) * Fraction(-1, 5) + Fraction(3, 10)
    assert evaluate(Sub(x, y), env) == Fraction(1, 2)
    assert evaluate(MaxOf(x, y, 0), env) == Fraction(3, 10)
    relu = sympy.Piecewise((y, y > 0), (0, True))
    assert evaluate(relu, env) == 0
    soft = sympy.exp(x) / (sympy.exp(x) + sympy.exp(y))
    value = evaluate(soft, env)
    assert isinstance(value, mpmath.mpf)
    assert abs(value - to_exact(soft.xreplace({x: exact(0.3), y: exact(-0.2)}).evalf(60))) < mpmath.mpf(10) ** -50
    assert evaluate(sympy.Mul(0, sympy.exp(x), evaluate=False), env) == 0  # an exact 0 stays exact


def test_check_thorough_on_the_command_line(capsys):
    assert main(["check", "zebra-cat", "--thorough"]) == 0
    assert "all agree" in capsys.readouterr().out


def test_render_writes_several_formats_from_one_check(capsys, tmp_path):
    assert main(["render", "zebra-cat", "--format", "markdown,latex", "--out", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    documents = [p for p in written if not p.endswith(".svg")]  # the Markdown's pictures are SVG files
    assert sorted(p.rsplit("/", 1)[1] for p in documents) == ["zebra-cat.md", "zebra-cat.tex"]
    assert {p.rsplit("/", 2)[1] for p in written if p.endswith(".svg")} == {"zebra-cat-figures"}
    with pytest.raises(SystemExit) as info:
        main(["render", "zebra-cat", "--format", "markdown,docx", "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    assert "invalid choice: 'docx'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_float_conv_snaps_rounding_to_exact_zero():
    """After filters learn (50-digit values), a sum that is 0 in exact arithmetic is 0, as NumPy's."""
    report = symcnn.check(Path(__file__).parent / "golden" / "hostile.yaml", thorough=True)
    assert report.ok, report.table()
    derivation = report.derivation
    assert any(isinstance(v, mpmath.mpf) for v in derivation.steps[1].values["filters"].flat)
    assert np.all([isinstance(v, (Fraction, mpmath.mpf)) for v in derivation.steps[1].values["conv"].flat])
