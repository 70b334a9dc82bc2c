"""The exact engine of `layers` stacks against SymPy's derivative of the whole composed loss, `check
--thorough` on random stacks, and the worked solution of a stack (sections, the flipped-filter picture)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symcnn
from symcnn.engine.algebra import to_float, to_sympy
from symcnn.engine.stack_cells import derive_stack
from symcnn.verify import check

TINY = {
    "name": "tiny",
    "classes": ["a", "b"],
    "inputs": [{"name": "x1", "label": "b", "pixels": [[0.2, -0.1, 0.4], [0.3, 0.5, -0.2], [0.1, 0.0, 0.6]]}],
    "layers": [
        {
            "conv": {
                "padding": 1,
                "stride": 2,
                "filters": [{"name": "A", "weights": [[0.5, -0.3], [0.2, 0.4]], "bias": 0.1}],
            }
        },
        {"activation": "tanh"},
        {"conv": {"filters": [{"name": "P", "weights": [[[0.3, -0.6], [0.7, 0.2]]], "bias": -0.05}]}},
        {"activation": "sigmoid"},
        {"dense": {"name": "hidden", "weights": [[0.8], [-0.4]], "biases": [0.1, 0.2]}},
        {"activation": "tanh"},
        {"dense": {"weights": [[0.5, -0.7], [0.3, 0.9]], "biases": [0.0, 0.1]}},
    ],
    "training": {"learning_rate": 0.5},
}


def composed_loss(sc, x):
    """The loss as one SymPy expression of the input symbols ``x`` (C x H x W), written out independently of
    symcnn's layers: cross-correlation with zero padding and stride, activations, flatten, dense, softmax."""
    h = x
    for layer in sc.layers:
        if layer.layer == "conv":
            w, b = layer.parameters()
            C, H, W = h.shape
            p, s = layer.padding, layer.stride
            padded = np.full((C, H + 2 * p, W + 2 * p), sympy.Integer(0), dtype=object)
            padded[:, p : p + H, p : p + W] = h
            K, _, kh, kw = w.shape
            Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
            out = np.empty((K, Ho, Wo), dtype=object)
            for k, i, j in np.ndindex(K, Ho, Wo):
                window = padded[:, i * s : i * s + kh, j * s : j * s + kw]
                out[k, i, j] = sum(sympy.nsimplify(w[k].flat[t]) * window.flat[t] for t in range(w[k].size))
                out[k, i, j] += sympy.nsimplify(b[k])
            h = out
        elif layer.layer == "activation":
            f = {"tanh": sympy.tanh, "sigmoid": lambda z: 1 / (1 + sympy.exp(-z))}[layer.kind]
            h = np.vectorize(f, otypes=[object])(h)
        else:
            W, B = layer.parameters()
            flat = h.reshape(-1)
            h = np.array(
                [
                    sum(sympy.nsimplify(W[r, c]) * flat[c] for c in range(len(flat))) + sympy.nsimplify(B[r])
                    for r in range(W.shape[0])
                ],
                dtype=object,
            )
    y = sc.classes.index(sc.inputs[0].label)
    return -sympy.log(sympy.exp(h[y]) / sum(sympy.exp(o) for o in h))


def test_grad_input_equals_sympy_diff_of_the_composed_loss():
    sc = symcnn.load(TINY)
    symbols = np.array(sympy.symbols("x0:9", real=True), dtype=object).reshape(1, 3, 3)
    loss = composed_loss(sc, symbols)
    pixels = {s: sympy.nsimplify(v) for s, v in zip(symbols.flat, sc.inputs[0].pixels.flat)}
    derivation = derive_stack(sc)
    ours = derivation.steps[0].groups["grad_input"].values  # H x W: the image was given as H x W
    for (r, q), value in np.ndenumerate(ours):
        expected = sympy.diff(loss, symbols[0, r, q]).subs(pixels).evalf(40)
        assert abs(float(to_float(value)) - float(expected)) < 1e-13, (r, q)
        assert abs(to_sympy(value) - expected) < sympy.Float(10) ** -30


def test_filter_gradient_equals_sympy_diff_of_the_composed_loss():
    """dL/dw of the first filter: the composed loss as a function of that filter's weights."""
    sc = symcnn.load(TINY)
    weights = sympy.symbols("w0:4", real=True)
    data = {**TINY, "layers": [dict(layer) for layer in TINY["layers"]]}
    first = sc.layers[0]
    # the first conv layer written out with symbolic weights, then the rest of the network on its output
    x = np.array([sympy.nsimplify(v) for v in sc.inputs[0].pixels.flat], dtype=object).reshape(1, 3, 3)
    p, s = first.padding, first.stride
    padded = np.full((1, 5, 5), sympy.Integer(0), dtype=object)
    padded[:, 1:4, 1:4] = x
    z = np.empty((1, 2, 2), dtype=object)
    for i, j in np.ndindex(2, 2):
        window = padded[0, i * s : i * s + 2, j * s : j * s + 2].reshape(-1)
        z[0, i, j] = sum(weights[t] * window[t] for t in range(4)) + sympy.nsimplify(first.filters[0].bias)
    rest = symcnn.load(
        {
            **data,
            "layers": data["layers"][1:],
            "inputs": [{"name": "x1", "label": "b", "pixels": [[[0.0, 0.0], [0.0, 0.0]]]}],
        }
    )
    loss_of = composed_loss(rest, z)
    values = {w: sympy.nsimplify(v) for w, v in zip(weights, first.filters[0].weights.flat)}
    ours = derive_stack(sc).steps[0].layers[0]["grad_weights"].values  # K x kh x kw (a 2-D filter)
    for t, w in enumerate(weights):
        expected = sympy.diff(loss_of, w).subs(values).evalf(40)
        got = to_sympy(ours.reshape(-1)[t])
        assert abs(got - expected) < sympy.Float(10) ** -30, t
    assert p == 1


def random_stack(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(4, 7))

    def numbers(*shape):
        return np.round(rng.uniform(-1, 1, shape), 1).tolist()

    k1, k2 = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    layers = [
        {
            "conv": {
                "padding": int(rng.integers(0, 2)),
                "stride": int(rng.integers(1, 3)),
                "filters": [{"name": f"A{k}", "weights": numbers(2, 2), "bias": 0.1} for k in range(k1)],
            }
        },
        {"activation": ["relu", "tanh", "sigmoid", {"kind": "leaky_relu", "slope": 0.1}][int(rng.integers(0, 4))]},
    ]
    shape = (size + 2 * layers[0]["conv"]["padding"] - 2) // layers[0]["conv"]["stride"] + 1
    if shape >= 4:
        layers.append({"pool": {"kind": ["max", "avg"][int(rng.integers(0, 2))], "size": 2}})
        shape //= 2
    layers.append({"conv": {"filters": [{"name": f"B{k}", "weights": numbers(k1, 2, 2)} for k in range(k2)]}})
    shape -= 1
    layers += [
        {"activation": "relu"},
        {"dense": {"name": "hidden", "weights": numbers(3, k2 * shape * shape), "biases": numbers(3)}},
        {"activation": "tanh"},
        {"dense": {"weights": numbers(2, 3), "biases": [0.0, 0.1]}},
    ]
    return {
        "name": f"random-{seed}",
        "classes": ["a", "b"],
        "inputs": [{"name": f"x{n}", "label": "ab"[n], "pixels": numbers(size, size)} for n in range(2)],
        "layers": layers,
        "training": {
            "learning_rate": 0.3,
            "iterations": 2,
            "update": ["per_sample", "batch_mean"][seed % 2],
            "update_filters": True,
        },
    }


@pytest.mark.parametrize("seed", range(6))
def test_check_thorough_is_clean_on_random_stacks(seed):
    report = check(symcnn.load(random_stack(seed)), thorough=True)
    assert report.ok, report.table()
    assert report.compared > 100


def test_check_thorough_two_conv():
    report = check(symcnn.load("two-conv"), thorough=True)
    assert report.ok and not report.missing


def test_stack_document_has_a_section_per_layer_and_the_flipped_filter(tmp_path):
    symcnn.render("two-conv", "markdown", tmp_path, detail="summary")
    text = (tmp_path / "two-conv.md").read_text(encoding="utf-8")
    sc = symcnn.load("two-conv")
    for n, layer in enumerate(sc.layers):
        assert f"### Layer {n + 1}, {layer.name}:" in text
        assert f"### Backward through {layer.name}" in text
    assert text.index("### Backward through out") < text.index("### Backward through conv1")
    assert "rotated by 180 degrees" in text and "Saliency map" in text
    figures = sorted(p.name for p in (tmp_path / "two-conv-figures").iterdir())
    assert any("flipped" in name for name in figures) and any("saliency" in name for name in figures)


def test_identity_activation_and_a_stack_without_conv_check_clean():
    """`activation: none` (its derivative is the constant 1) and a plain network on the flattened input."""
    data = {
        "name": "plain",
        "classes": ["a", "b"],
        "inputs": [{"name": "x", "label": "a", "pixels": [[0.1, 0.2], [0.3, 0.4]]}],
        "layers": [
            {"activation": "none"},
            {"dense": {"weights": [[0.1, 0.2, 0.3, 0.4], [0.3, -0.1, 0, 0]], "biases": [0, 0]}},
            {"activation": "sigmoid"},
            {"dense": {"weights": [[1, 2], [3, 4]], "biases": [0, 0]}},
        ],
        "training": {"learning_rate": 0.1},
    }
    report = check(symcnn.load(data), thorough=True)
    assert report.ok and report.compared == 78
    values = symcnn.run(symcnn.load(data)).to_dict()["steps"][0]
    W = np.array([[0.1, 0.2, 0.3, 0.4], [0.3, -0.1, 0, 0]])
    dh = np.array(values["layers"][1]["grad_output"])  # dL/d(first dense output)
    assert np.allclose(values["grad_input"], (W.T @ dh).reshape(2, 2), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["zebra-cat", "four-images"])
def test_legacy_grad_input_equals_the_stack_walkers_to_40_digits(name):
    """A legacy scenario's dL/dx (fixed-point integers, legacy_layers) against the layer walker's (stack)."""
    from symcnn.engine.exact import derive
    from symcnn.engine.legacy_layers import LegacyLayers

    sc = symcnn.load(name)
    legacy = LegacyLayers(derive(sc))
    walker = derive_stack(sc)
    for step, record in zip(legacy.derivation.steps, walker.steps):
        ours = legacy.grad_input(step).values
        theirs = record.groups["grad_input"].values
        for index, value in np.ndenumerate(ours):
            assert abs(to_sympy(value) - to_sympy(theirs[index])) <= sympy.Float(10) ** -40, (step.path, index)
