"""Network stacks (`layers`): every number of random stacks and of the stack built-ins against four
oracles: PyTorch float64 autograd (retain_grad on every layer output, the input's .grad), the loop
reference in tests/reference.py, central finite differences of the loss, and sympy.diff of a tiny
stack's fully composed loss. The conv input gradient with stride and padding is also checked against
the textbook rule, computed here: the full correlation of the dilated, padded upstream gradient with the
filter rotated by 180 degrees. Parsing and the legacy keys: test_stacks_parsing.py.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symcnn.scenario.sources import read_source

try:
    from reference import conv_input_gradient_scatter, reference_stack_run
    from stack_oracles import degenerate, engine_values, stacks, torch_stack_run
    from test_properties import assert_same
except ImportError:  # tests/ imported as a package
    from tests.reference import conv_input_gradient_scatter, reference_stack_run
    from tests.stack_oracles import degenerate, engine_values, stacks, torch_stack_run
    from tests.test_properties import assert_same

TWO_CONV: dict = read_source("two-conv")[0]
LEGACY = ("four-images", "zebra-cat", "mnist-like")
STACK_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def with_training(scenario: dict, **training: Any) -> dict:
    data = copy.deepcopy(scenario)
    data["training"] = {**data["training"], **training}
    return data


# ============================================================================= against the oracles

STACK_RTOL, STACK_ATOL = 1e-9, 1e-11


@STACK_SETTINGS
@given(stacks())
def test_random_stacks_match_pytorch(scenario: dict) -> None:
    expected_ref = reference_stack_run(scenario)
    assume(not degenerate(scenario, expected_ref, 1e-9))
    assert_same(engine_values(scenario), torch_stack_run(scenario), STACK_RTOL, STACK_ATOL)


@STACK_SETTINGS
@given(stacks())
def test_random_stacks_match_the_reference(scenario: dict) -> None:
    expected = reference_stack_run(scenario)
    assume(not degenerate(scenario, expected, 1e-9))
    assert_same(engine_values(scenario), expected, STACK_RTOL, STACK_ATOL)


@pytest.mark.parametrize("update", ["per_sample", "batch_mean", "batch_sum"])
@pytest.mark.parametrize("update_filters", [True, False])
def test_two_conv_matches_pytorch_and_the_reference(update: str, update_filters: bool) -> None:
    scenario = with_training(TWO_CONV, update=update, update_filters=update_filters, iterations=2)
    expected = reference_stack_run(scenario)
    assert not degenerate(scenario, expected, 1e-6)
    actual = engine_values(scenario)
    assert_same(actual, expected, STACK_RTOL, STACK_ATOL)
    assert_same(actual, torch_stack_run(scenario), STACK_RTOL, STACK_ATOL)
    assert len(actual["updates"][0]["layers"]) == (4 if update_filters else 2)


def test_lenet_like_matches_pytorch() -> None:
    scenario = read_source("lenet-like")[0]
    assert_same(engine_values(scenario), torch_stack_run(scenario, grid=1e-9), STACK_RTOL, STACK_ATOL)


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_builtins_layer_keys_match_pytorch(name: str) -> None:
    scenario = read_source(name)[0]
    assert_same(engine_values(scenario), torch_stack_run(scenario, grid=1e-9), STACK_RTOL, STACK_ATOL)


def test_the_pytorch_oracle_agrees_with_the_reference_on_a_rich_stack() -> None:
    """Guards the oracle itself: stride 2, padding, 3 channels, leaky ReLU, overlapping max pool,
    avg pool, global pool, two hidden layers, batch updates."""
    rng = np.random.default_rng(13)
    u = lambda *shape: rng.uniform(-1, 1, shape).tolist()  # noqa: E731
    scenario = {
        "name": "rich",
        "classes": ["a", "b", "c"],
        "inputs": [{"name": f"x{i}", "label": "abc"[i], "pixels": u(3, 9, 8)} for i in range(3)],
        "layers": [
            {
                "conv": {
                    "stride": 2,
                    "padding": 1,
                    "filters": [{"name": n, "weights": u(3, 3, 2), "bias": 0.1} for n in "AB"],
                }
            },
            {"activation": {"kind": "leaky_relu", "slope": 0.2}},
            {"pool": {"kind": "max", "size": [2, 2], "stride": 1}},
            {"conv": {"padding": 1, "filters": [{"name": n, "weights": u(2, 2, 2)} for n in "PQR"]}},
            {"activation": "sigmoid"},
            {"pool": {"kind": "avg", "size": 2}},
            {"conv": {"filters": [{"name": "S", "weights": u(3, 1, 1), "bias": -0.2}]}},
            {"pool": {"kind": "max", "size": "global"}},
            {"dense": {"weights": u(4, 1), "biases": u(4)}},
            {"activation": "tanh"},
            {"dense": {"weights": u(3, 4), "biases": u(3)}},
            {"activation": "relu"},
            {"dense": {"weights": u(3, 3), "biases": u(3)}},
        ],
        "training": {"learning_rate": 0.3, "iterations": 2, "update": "batch_mean", "update_filters": True},
    }
    expected = reference_stack_run(scenario)
    assert not degenerate(scenario, expected, 1e-6)
    assert_same(torch_stack_run(scenario), expected, STACK_RTOL, STACK_ATOL)
    assert_same(engine_values(scenario), expected, STACK_RTOL, STACK_ATOL)


# ============================================================================= finite differences


def _loss(scenario: dict, x: np.ndarray, layers: list[dict]) -> float:
    data = copy.deepcopy(scenario)
    data["inputs"] = [{**data["inputs"][0], "pixels": x.tolist()}]
    data["layers"] = layers
    data["training"] = {**data["training"], "iterations": 1}
    return engine_values(data)["steps"][0]["loss"]


def _central(scenario: dict, x: np.ndarray, layers: list[dict], bump, h: float = 1e-6) -> float:
    up_x, up_layers = bump(x.copy(), copy.deepcopy(layers), h)
    down_x, down_layers = bump(x.copy(), copy.deepcopy(layers), -h)
    return (_loss(scenario, up_x, up_layers) - _loss(scenario, down_x, down_layers)) / (2 * h)


def _bump_pixel(index):
    def bump(x, layers, h):
        x[index] += h
        return x, layers

    return bump


def _bump_weight(n: int, path: tuple):
    """Bump entry ``path`` of layer ``n``'s weights (conv: filter, then its index; dense: row, column)
    or its biases (path[0] == 'b')."""

    def bump(x, layers, h):
        ((kind, body),) = layers[n].items()
        if kind == "conv":
            flt = body["filters"][path[1]]
            if path[0] == "b":
                flt["bias"] = flt.get("bias", 0) + h
            else:
                w = np.array(flt["weights"], dtype=np.float64)
                w[path[2]] += h
                flt["weights"] = w.tolist()
        elif path[0] == "b":
            body["biases"] = (
                np.array(body["biases"], dtype=np.float64) + h * np.eye(len(body["biases"]))[path[1]]
            ).tolist()
        else:
            w = np.array(body["weights"], dtype=np.float64)
            w[path[1:]] += h
            body["weights"] = w.tolist()
        return x, layers

    return bump


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stacks(), st.randoms(use_true_random=False))
def test_random_stack_gradients_match_finite_differences(scenario: dict, rnd) -> None:
    """Central differences of the first sample's loss for grad_input and, per conv or dense layer, a few
    weights and a bias; the engine's gradients of steps[0]."""
    scenario = with_training(scenario, iterations=1)
    scenario["inputs"] = scenario["inputs"][:1]
    assume(not degenerate(scenario, reference_stack_run(scenario), 1e-4))
    step = engine_values(scenario)["steps"][0]
    x = np.array(scenario["inputs"][0]["pixels"], dtype=np.float64)
    layers = scenario["layers"]
    checks = []
    indices = list(np.ndindex(x.shape))
    for index in rnd.sample(indices, min(6, len(indices))):
        checks.append((np.array(step["grad_input"])[index], _bump_pixel(index), f"grad_input{list(index)}"))
    for n, item in enumerate(layers):
        ((kind, body),) = item.items()
        entry = step["layers"][n]
        if kind == "conv":
            k = rnd.randrange(len(body["filters"]))
            w = np.array(body["filters"][k]["weights"])
            for index in rnd.sample(list(np.ndindex(w.shape)), min(3, w.size)):
                checks.append(
                    (
                        np.array(entry["grad_weights"][k])[index],
                        _bump_weight(n, ("w", k, index)),
                        f"layers[{n}].grad_weights[{k}]{list(index)}",
                    )
                )
            checks.append((entry["grad_biases"][k], _bump_weight(n, ("b", k)), f"layers[{n}].grad_biases[{k}]"))
        elif kind == "dense":
            w = np.array(body["weights"])
            for index in rnd.sample(list(np.ndindex(w.shape)), min(3, w.size)):
                checks.append(
                    (
                        np.array(entry["grad_weights"])[index],
                        _bump_weight(n, ("w", *index)),
                        f"layers[{n}].grad_weights{list(index)}",
                    )
                )
            r = rnd.randrange(w.shape[0])
            checks.append((entry["grad_biases"][r], _bump_weight(n, ("b", r)), f"layers[{n}].grad_biases[{r}]"))
    for analytic, bump, where in checks:
        numeric = _central(scenario, x, layers, bump)
        assert abs(analytic - numeric) <= 1e-6 + 1e-5 * abs(numeric), (where, analytic, numeric)


def test_two_conv_gradients_match_finite_differences() -> None:
    """Every entry of grad_input and of every conv and dense weight of two-conv's first step."""
    scenario = with_training(TWO_CONV, iterations=1)
    scenario["inputs"] = scenario["inputs"][:1]
    step = engine_values(scenario)["steps"][0]
    x = np.array(scenario["inputs"][0]["pixels"], dtype=np.float64)
    layers = scenario["layers"]
    numeric = np.array([_central(scenario, x, layers, _bump_pixel(i)) for i in np.ndindex(x.shape)])
    np.testing.assert_allclose(np.array(step["grad_input"]).ravel(), numeric, rtol=1e-5, atol=1e-8)
    for n, item in enumerate(layers):
        ((kind, body),) = item.items()
        if kind == "conv":
            for k, flt in enumerate(body["filters"]):
                w = np.array(flt["weights"])
                fd = [_central(scenario, x, layers, _bump_weight(n, ("w", k, i))) for i in np.ndindex(w.shape)]
                np.testing.assert_allclose(np.ravel(step["layers"][n]["grad_weights"][k]), fd, rtol=1e-5, atol=1e-8)
        elif kind == "dense":
            w = np.array(body["weights"])
            fd = [_central(scenario, x, layers, _bump_weight(n, ("w", *i))) for i in np.ndindex(w.shape)]
            np.testing.assert_allclose(np.ravel(step["layers"][n]["grad_weights"]), fd, rtol=1e-5, atol=1e-8)


# ============================================================================= the flipped kernel


def full_correlation_with_rot180(
    g: np.ndarray, w: np.ndarray, stride: int, padding: int, shape: tuple[int, int, int]
) -> np.ndarray:
    """dL/dx by the textbook rule: dilate the upstream gradient g (K x H' x W') by the stride, pad it
    by kernel - 1 on every side, correlate it with each filter rotated by 180 degrees, summing over the
    filters; rows and columns of the padded input that no window reached (the stride's leftovers) get 0;
    then the padding is cut off."""
    n_filters, channels, kh, kw = w.shape
    dilated = np.zeros((n_filters, (g.shape[1] - 1) * stride + 1, (g.shape[2] - 1) * stride + 1))
    dilated[:, ::stride, ::stride] = g
    padded = np.pad(dilated, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    rotated = w[:, :, ::-1, ::-1]
    full = np.zeros((channels, dilated.shape[1] + kh - 1, dilated.shape[2] + kw - 1))
    for c in range(channels):
        for r in range(full.shape[1]):
            for q in range(full.shape[2]):
                full[c, r, q] = np.sum(padded[:, r : r + kh, q : q + kw] * rotated[:, c])
    height, width = shape[1] + 2 * padding, shape[2] + 2 * padding
    assert full.shape[1] <= height and full.shape[2] <= width
    dxp = np.zeros((channels, height, width))
    dxp[:, : full.shape[1], : full.shape[2]] = full
    return dxp[:, padding : padding + shape[1], padding : padding + shape[2]]


GEOMETRIES = [  # channels, H, W, filters, kh, kw, stride, padding
    (1, 7, 6, 2, 3, 3, 2, 1),
    (2, 6, 6, 3, 3, 2, 2, 1),
    (1, 5, 8, 1, 2, 2, 2, 1),
    (2, 8, 7, 2, 3, 3, 3, 1),
    (1, 6, 5, 2, 1, 1, 2, 1),
    (3, 5, 5, 2, 3, 3, 2, 2),
    (1, 9, 9, 2, 2, 2, 4, 0),  # leftovers: rows and columns 6-8 unreached
    (1, 10, 6, 1, 2, 2, 4, 1),
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["x".join(map(str, g)) for g in GEOMETRIES])
def test_conv_input_gradient_is_the_full_correlation_with_the_flipped_filter(geometry) -> None:
    channels, height, width, filters, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(sum(geometry))
    out_h, out_w = (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
    scenario = {
        "name": "flip",
        "classes": ["a", "b"],
        "inputs": [{"name": "x", "label": "b", "pixels": rng.uniform(-1, 1, (channels, height, width)).tolist()}],
        "layers": [
            {
                "conv": {
                    "stride": stride,
                    "padding": padding,
                    "filters": [
                        {"name": f"f{k}", "weights": rng.uniform(-1, 1, (channels, kh, kw)).tolist(), "bias": 0.1}
                        for k in range(filters)
                    ],
                }
            },
            {"dense": {"weights": rng.uniform(-1, 1, (2, filters * out_h * out_w)).tolist(), "biases": [0, 0]}},
        ],
        "training": {"learning_rate": 0.1},
    }
    step = engine_values(scenario)["steps"][0]
    w = np.array([f["weights"] for f in scenario["layers"][0]["conv"]["filters"]])
    g = np.array(step["layers"][0]["grad_output"])
    assert g.shape == (filters, out_h, out_w) and np.all(g != 0)
    expected = full_correlation_with_rot180(g, w, stride, padding, (channels, height, width))
    np.testing.assert_allclose(step["grad_input"], expected, rtol=1e-12, atol=1e-14)
    # and the plain chain rule (the reference's scatter) agrees with the textbook rule
    np.testing.assert_allclose(
        conv_input_gradient_scatter(g, w, stride, padding, (channels, height, width)), expected, rtol=1e-12, atol=1e-14
    )
    # rows and columns that no window reached (the stride's leftovers) pass no gradient
    dx = np.array(step["grad_input"])
    row = height + padding - (height + 2 * padding - kh) % stride
    col = width + padding - (width + 2 * padding - kw) % stride
    assert np.all(dx[:, row:, :] == 0) and np.all(dx[:, :, col:] == 0)


def test_two_conv_gradients_into_each_conv_input_are_the_flipped_correlation() -> None:
    """In two-conv, dL/d(pool1 output) comes from conv2 (stride 1, no padding) and dL/dx from conv1
    (padding 1): both are the full correlation with the rot180 filters."""
    trace = engine_values(TWO_CONV)
    layers = TWO_CONV["layers"]
    w1 = np.array([np.array(f["weights"])[None] for f in layers[0]["conv"]["filters"]])
    w2 = np.array([f["weights"] for f in layers[3]["conv"]["filters"]])
    for step in trace["steps"][:1]:  # the first step: the scenario's own weights
        entries = step["layers"]
        into_conv2 = full_correlation_with_rot180(np.array(entries[3]["grad_output"]), w2, 1, 0, (2, 3, 3))
        np.testing.assert_allclose(entries[2]["grad_output"], into_conv2, rtol=1e-12, atol=1e-15)
        into_conv1 = full_correlation_with_rot180(np.array(entries[0]["grad_output"]), w1, 1, 1, (1, 6, 6))
        np.testing.assert_allclose(step["grad_input"], into_conv1[0], rtol=1e-12, atol=1e-15)
        assert np.count_nonzero(step["grad_input"]) > 10


# ============================================================================= sympy.diff of the composed loss

TINY = {
    "name": "tiny-two-conv",
    "classes": ["a", "b"],
    "inputs": [
        {
            "name": "x",
            "label": "b",
            "pixels": [[0.1, 0.9, 0.4, 0.2], [0.7, 0.3, 0.8, 0.6], [0.5, 0.2, 0.9, 0.1], [0.3, 0.6, 0.4, 0.7]],
        }
    ],
    "layers": [
        {
            "conv": {
                "stride": 2,
                "padding": 1,
                "filters": [
                    {"name": "A", "weights": [[0.5, -0.3], [0.2, 0.8]], "bias": 0.1},
                    {"name": "B", "weights": [[-0.4, 0.6], [0.9, -0.2]], "bias": -0.05},
                ],
            }
        },
        {"activation": "relu"},
        {
            "conv": {
                "filters": [
                    {"name": "P", "weights": [[[0.3, -0.6], [0.7, 0.2]], [[-0.5, 0.4], [0.1, 0.6]]], "bias": 0.02}
                ]
            }
        },
        {"activation": "relu"},
        {"pool": {"kind": "max", "size": 2}},
        {"dense": {"weights": [[0.8], [-0.6], [0.3]], "biases": [0.1, 0.0, -0.2]}},
        {"activation": "tanh"},
        {"dense": {"weights": [[0.5, -0.7, 0.2], [-0.3, 0.4, 0.9]], "biases": [0.05, -0.05]}},
    ],
    "training": {"learning_rate": 0.1, "update_filters": True},
}


def test_sympy_diff_of_the_composed_loss_of_a_tiny_two_conv_stack_is_the_chain_rule() -> None:
    """The whole loss as one SymPy expression of the pixels and every parameter, differentiated by
    sympy.diff and evaluated at the scenario's exact values: every gradient of the engine, grad_input
    included. ReLU and the max of two are SymPy functions whose derivative is the step function (the
    values keep away from kinks and ties, where it is defined by convention); the max pool is a max of
    maxes of two."""
    sympy = pytest.importorskip("sympy")
    assert not degenerate(TINY, reference_stack_run(TINY), 0.01)
    values: dict = {}

    def symbols(prefix: str, data) -> np.ndarray:
        array = np.array(data, dtype=object)
        out = np.empty(array.shape, dtype=object)
        for index in np.ndindex(array.shape):
            s = sympy.Symbol(prefix + "_".join(map(str, index)))
            values[s] = sympy.Rational(str(array[index]))
            out[index] = s
        return out

    def conv(x, w, b, stride, padding):
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding)), constant_values=sympy.Integer(0))
        k, _, kh, kw = w.shape
        oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
        z = np.empty((k, oh, ow), dtype=object)
        for f, i, j in np.ndindex(z.shape):
            window = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw]
            z[f, i, j] = sum((window * w[f]).ravel()) + b[f]
        return z

    layers = TINY["layers"]
    params = {
        "x": symbols("x", [TINY["inputs"][0]["pixels"]]),
        "w1": symbols("w1_", [[f["weights"]] for f in layers[0]["conv"]["filters"]]),
        "b1": symbols("b1_", [f["bias"] for f in layers[0]["conv"]["filters"]]),
        "w2": symbols("w2_", [f["weights"] for f in layers[2]["conv"]["filters"]]),
        "b2": symbols("b2_", [f["bias"] for f in layers[2]["conv"]["filters"]]),
        "W1": symbols("W1_", layers[5]["dense"]["weights"]),
        "B1": symbols("B1_", layers[5]["dense"]["biases"]),
        "W2": symbols("W2_", layers[7]["dense"]["weights"]),
        "B2": symbols("B2_", layers[7]["dense"]["biases"]),
    }

    class Step(sympy.Function):
        @classmethod
        def eval(cls, t):
            return (sympy.Integer(1) if t > 0 else sympy.Integer(0)) if t.is_Number else None

    class Relu(sympy.Function):
        @classmethod
        def eval(cls, t):
            return (t if t > 0 else sympy.Integer(0)) if t.is_Number else None

        def fdiff(self, argindex=1):
            return Step(self.args[0])

    class Max2(sympy.Function):
        @classmethod
        def eval(cls, a, b):
            return (a if a >= b else b) if a.is_Number and b.is_Number else None

        def fdiff(self, argindex=1):
            a, b = self.args
            return Step(a - b) if argindex == 1 else 1 - Step(a - b)

    relu = np.vectorize(Relu, otypes=[object])

    def composed_loss(x, w1, b1, w2, b2, W1, B1, W2, B2):
        a1 = relu(conv(x, w1, b1, 2, 1))
        a2 = relu(conv(a1, w2, b2, 1, 0))
        pooled = [functools.reduce(Max2, a2[0].ravel())]  # the 2x2 max pool of the 2x2 map
        hidden = [sympy.tanh(W1[r, 0] * pooled[0] + B1[r]) for r in range(3)]
        logits = [sum(W2[c, n] * hidden[n] for n in range(3)) + B2[c] for c in range(2)]
        return sympy.log(sum(sympy.exp(o) for o in logits)) - logits[1]

    def loss_in(free=None):
        """The composed loss with every symbol but ``free`` at its value: a function of ``free`` alone."""
        at = np.vectorize(lambda t: t if t == free else values[t], otypes=[object])
        return composed_loss(**{name: at(array) for name, array in params.items()})

    def gradient(name: str) -> np.ndarray:
        array = params[name]
        out = [float(sympy.diff(loss_in(s), s).xreplace({s: values[s]}).evalf(30)) for s in array.ravel()]
        return np.array(out).reshape(array.shape)

    step = engine_values(TINY)["steps"][0]
    assert step["loss"] == pytest.approx(float(loss_in().evalf(30)), rel=1e-12)
    entries = step["layers"]
    checks = [
        (step["grad_input"], gradient("x")[0]),
        (entries[0]["grad_weights"], gradient("w1")[:, 0]),
        (entries[0]["grad_biases"], gradient("b1")),
        (entries[2]["grad_weights"], gradient("w2")),
        (entries[2]["grad_biases"], gradient("b2")),
        (entries[5]["grad_weights"], gradient("W1")),
        (entries[5]["grad_biases"], gradient("B1")),
        (entries[7]["grad_weights"], gradient("W2")),
        (entries[7]["grad_biases"], gradient("B2")),
    ]
    for actual, expected in checks:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-14)
    assert np.count_nonzero(step["grad_input"]) >= 8 and np.count_nonzero(entries[0]["grad_weights"]) >= 4
