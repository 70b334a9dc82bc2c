"""The symbolic engine: SymPy's own derivatives, exact values, order-keeping substitution."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import sympy

import symcnn
from symcnn.engine.algebra import exact, substitute
from symcnn.engine.exact import Deriver, softmax_derivation

INTERMEDIATE = {"conv", "activated", "pooled", "feature", "logit", "prob", "loss"}
PARAMETERS = {"filter", "filter_bias", "dense_weight", "dense_bias"}


def composed_loss(derivation, step):
    """Step ``step``'s loss as ONE expression in the parameter symbols (inputs put in)."""
    info = derivation.notation.info
    general = {}
    for array in step.groups.values():
        for q in array.flat:
            if info[q.symbol].kind in INTERMEDIATE and not info[q.symbol].grad:
                general[q.symbol] = q.general
    loss = step.groups["loss"].item().general
    for _ in range(12):  # the network has fewer layers than this
        loss = loss.xreplace(general)
    assert not (loss.free_symbols & set(general)), "composition left an intermediate symbol"
    return loss.doit()  # our display nodes (ordered sums, MaxOf) become plain SymPy


def sample_env(derivation, step):
    """Input pixel and label values of the step's sample."""
    sc = derivation.scenario
    sample = next(x for x in sc.inputs if x.name == step.sample)
    deriver = Deriver(sc)
    env = {deriver.x(*index): exact(sample.pixels[index]) for index in np.ndindex(*sample.pixels.shape)}
    for name in sc.classes:
        env[derivation.notation("label", name)] = sympy.Integer(int(name == sample.label))
    return env


SMALL = {
    "name": "small",
    "classes": ["a", "b", "c"],
    "inputs": [
        {
            "name": "u",
            "label": "b",
            "pixels": [
                [[0.3, -0.2, 0.5], [0.1, 0.9, -0.4], [0.7, 0.2, 0.6]],
                [[0.0, 0.4, -0.3], [0.8, -0.1, 0.2], [0.5, 0.3, -0.6]],
            ],
        },
    ],
    "conv": {
        "stride": 1,
        "padding": 0,
        "filters": [
            {"name": "F", "weights": [[[0.2, -0.5], [0.4, 0.1]], [[-0.3, 0.6], [0.25, -0.15]]], "bias": 0.05},
            {"name": "G", "weights": [[[-0.1, 0.3], [0.2, 0.45]], [[0.35, -0.2], [-0.4, 0.1]]], "bias": -0.02},
        ],
    },
    "activation": "relu",
    "pool": {"kind": "max", "size": 2, "stride": 2},
    "dense": {
        "weights": [
            [0.1, -0.2, 0.3, 0.05, -0.15, 0.25, 0.2, -0.1],
            [-0.3, 0.2, 0.1, -0.25, 0.35, -0.05, 0.15, 0.3],
            [0.2, 0.1, -0.2, 0.3, -0.1, 0.05, -0.3, 0.2],
        ],
        "biases": [0.1, -0.1, 0.0],
    },
    "training": {"learning_rate": 0.5, "iterations": 1, "update": "per_sample", "update_filters": True},
}


@pytest.mark.parametrize(
    "change,features",
    [
        ({}, 2),
        ({"activation": "sigmoid", "pool": {"kind": "avg", "size": [2, 1], "stride": 1}}, 4),
        ({"activation": "tanh", "pool": "none"}, 8),
        ({"activation": {"kind": "leaky_relu", "slope": 0.1}, "pool": {"kind": "max", "size": "global"}}, 2),
    ],
    ids=["relu-max", "sigmoid-avg", "tanh-none", "leaky-global"],
)
def test_diff_of_composed_loss_equals_chain_rule(change, features):
    data = copy.deepcopy(SMALL)
    data.update(change)
    data["dense"]["weights"] = [[0.1 * ((3 * c + n) % 7 - 3) for n in range(features)] for c in range(3)]
    sc = symcnn.load(data)
    derivation = symcnn.derive(sc)
    step = derivation.steps[0]
    loss = composed_loss(derivation, step).xreplace(sample_env(derivation, step))
    params = derivation.parameters
    info = derivation.notation.info
    grads = {}
    for key in ("grad_dense_weights", "grad_dense_biases", "grad_filters", "grad_filter_biases"):
        for q in step.groups[key].flat:
            meta = info[q.symbol]
            target = derivation.notation(meta.kind, meta.owner, *meta.index)
            grads[target] = q.value
    assert set(grads) == {s for s in params if info[s].kind in PARAMETERS}
    for symbol, chain_value in grads.items():
        # the composed loss as a function of this one parameter (the others at their values)
        others = {s: v for s, v in params.items() if s != symbol}
        direct = sympy.diff(loss.xreplace(others), symbol).xreplace(params).evalf(30)
        assert abs(direct - chain_value) < 1e-25, (symbol, direct, chain_value)


@pytest.mark.parametrize("classes,label", [(("cat", "dog"), 0), (("a", "b", "c"), 2), (("a", "b", "c", "d"), 1)])
def test_softmax_cross_entropy_derivative_is_p_minus_y(classes, label):
    d = softmax_derivation(classes, label)
    o = d.logits
    p = [sympy.exp(oc) / sum(sympy.exp(oj) for oj in o) for oc in o]
    for c in range(len(classes)):
        assert sympy.simplify(d.simplified[c] - (p[c] - int(c == label))) == 0
        # and numerically at a random point, straight from the unsimplified diff
        point = {oj: sympy.Rational(j + 1, 3) for j, oj in enumerate(o)}
        assert abs((d.derivatives[c] - (p[c] - int(c == label))).xreplace(point).evalf(30)) < 1e-25


def test_decimal_inputs_become_exact_rationals():
    derivation = symcnn.derive("zebra-cat")
    conv = derivation.steps[0].groups["conv"][0, 0, 0]
    assert conv.value == sympy.Rational(7, 10)  # not 0.7000000000000003
    assert derivation.steps[1].groups["conv"][0, 0, 0].value == sympy.Rational(-3, 10)


def test_substituted_keeps_term_order_and_reevaluates_to_value():
    derivation = symcnn.derive("four-images")
    q = derivation.steps[0].groups["conv"][0, 0, 0]
    # terms as written: w11 x11 + w12 x12 + w21 x21 + w22 x22 + b
    numbers = [[t.args[0], t.args[1]] if t.is_Mul else [t] for t in q.substituted.args]
    assert numbers == [[1, 0], [-1, 1], [1, 0], [-1, 1], [0]]
    for q in derivation.quantities():
        assert q.substituted.doit() == q.value or abs(q.substituted.doit().evalf(40) - q.value) < 1e-35, q.path


def test_substitute_does_not_evaluate():
    x, y = sympy.symbols("x y")
    expr = sympy.Add(sympy.Mul(x, y, evaluate=False), x, evaluate=False)
    shown = substitute(expr, {x: sympy.Integer(2), y: sympy.Integer(3)})
    assert shown != 8 and shown.doit() == 8


def test_derivation_values_cover_every_numeric_value():
    report = symcnn.check("four-images")
    # 1296 values under the legacy keys, 864 more under the per-layer keys and dL/dx
    assert report.derivation_values == 1296 and report.compared == 2160 and not report.missing
