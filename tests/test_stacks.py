"""Network stacks (`layers`): the contract's parsing rules, the per-layer JSON keys of every scenario,
and every number of random stacks and the stack built-ins against three oracles: PyTorch float64
autograd (hooks on every layer output and the input's grad), the loop reference in tests/reference.py,
and central finite differences of the loss. The conv input gradient with stride and padding is also
checked against the textbook rule, computed here: the full correlation of the dilated, padded upstream
gradient with the filter rotated by 180 degrees.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symcnn
from symcnn.cli import main
from symcnn.scenario.sources import read_source

try:
    from reference import conv_input_gradient_scatter, reference_run, reference_stack_run, stack_spec
    from test_bad_input import DELETE, assert_rejected, put, run_cli
    from test_bad_input import Case as BadCase
    from test_properties import assert_same
except ImportError:  # tests/ imported as a package
    from tests.reference import conv_input_gradient_scatter, reference_run, reference_stack_run, stack_spec
    from tests.test_bad_input import DELETE, assert_rejected, put, run_cli
    from tests.test_bad_input import Case as BadCase
    from tests.test_properties import assert_same

TWO_CONV: dict = read_source("two-conv")[0]
LEGACY = ("four-images", "zebra-cat", "mnist-like")
STACK_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def engine_values(scenario: dict | str) -> dict:
    data = copy.deepcopy(scenario) if isinstance(scenario, dict) else scenario
    return symcnn.run(symcnn.load(data)).to_dict()


# ============================================================================= PyTorch oracle


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is the optional second oracle (pip install torch)")


def _torch_activation(torch, h, spec: tuple[str, float]):
    kind, slope = spec
    F = torch.nn.functional
    if kind == "leaky_relu":
        return F.leaky_relu(h, negative_slope=slope)
    return {"relu": F.relu, "none": lambda t: t * 1.0, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[kind](h)


def _torch_pool(torch, h, pool: dict, grid: float | None = None):
    F = torch.nn.functional
    if pool["size"] == "global":
        kernel = stride = tuple(h.shape[-2:])
    else:
        pair = lambda v: tuple(v) if isinstance(v, list) else (v, v)  # noqa: E731
        kernel = pair(pool["size"])
        stride = pair(pool["stride"]) if "stride" in pool else kernel
    if pool["kind"] == "max" and grid is not None:
        # the first maximum after rounding to the grid: a tie of the exact values stays a tie
        windows = h.unfold(1, kernel[0], stride[0]).unfold(2, kernel[1], stride[1])
        flat = windows.reshape(*windows.shape[:3], -1)
        first = torch.argmax(torch.round(flat.detach() / grid), dim=-1, keepdim=True)
        return torch.gather(flat, -1, first)[..., 0]
    pooling = F.max_pool2d if pool["kind"] == "max" else F.avg_pool2d
    return pooling(h.unsqueeze(0), kernel_size=kernel, stride=stride)[0]


def _torch_weights_as_given(layer: dict, t) -> Any:
    if layer["kind"] == "dense":
        return t.detach().tolist()
    return [t[k, 0].tolist() if layer["ndims"][k] == 2 else t[k].tolist() for k in range(t.shape[0])]


def torch_stack_run(scenario: dict, grid: float | None = None) -> dict:
    """The scenario's run with torch.nn.functional in float64: autograd for every gradient, the
    per-layer outputs' gradients through retain_grad, dL/dx through the input's .grad, a hand-written
    SGD loop for the updates.

    The built-ins use short decimals, whose sums hit ReLU kinks and max-pool ties exactly; in floats
    such a sum comes out a few ulps off, on either side. With ``grid`` they are decided as the exact
    arithmetic decides them (the contract): a ReLU input below ``grid`` counts as 0 and max-pool
    values are compared after rounding to multiples of ``grid`` (the first maximum wins)."""
    torch = _torch()
    F = torch.nn.functional
    dtype = torch.float64
    classes = list(scenario["classes"])
    layers = stack_spec(scenario)  # plain dicts from the contract, no symcnn code
    training = scenario["training"]
    eta = float(training["learning_rate"])
    mode = training.get("update", "per_sample")
    update_filters = bool(training.get("update_filters", False))
    learns = [layer["kind"] == "dense" or (layer["kind"] == "conv" and update_filters) for layer in layers]
    params = [
        (torch.tensor(layer["w"], dtype=dtype), torch.tensor(layer["b"], dtype=dtype)) if "w" in layer else None
        for layer in layers
    ]

    def forward(x, leaves):
        outputs, h = [], x
        for layer, p in zip(layers, leaves):
            if layer["kind"] == "conv":
                h = F.conv2d(h.unsqueeze(0), p[0], p[1], stride=layer["stride"], padding=layer["padding"])[0]
            elif layer["kind"] == "activation":
                if grid is not None and layer["activation"][0] == "relu":
                    h = h * (h.detach().abs() >= grid)
                h = _torch_activation(torch, h, layer["activation"])
            elif layer["kind"] == "pool":
                h = _torch_pool(torch, h, layer["pool"], grid)
            else:
                h = F.linear(h.flatten(), p[0], p[1])
            if h.requires_grad:
                h.retain_grad()
            outputs.append(h)
        return outputs

    def entries(outputs, leaves, backward: bool) -> list[dict]:
        result = []
        for layer, out, p in zip(layers, outputs, leaves):
            entry = {"kind": layer["kind"], "name": layer["name"], "output": out.detach().tolist()}
            if backward:
                entry["grad_output"] = out.grad.tolist()
                if p is not None:
                    entry["grad_weights"] = _torch_weights_as_given(layer, p[0].grad)
                    entry["grad_biases"] = p[1].grad.tolist()
            result.append(entry)
        return result

    def snapshot(iteration: int, after: str | None) -> dict:
        return {
            "iteration": iteration,
            "after": after,
            "layers": [
                {"name": layer["name"], "weights": _torch_weights_as_given(layer, p[0]), "biases": p[1].tolist()}
                for layer, p, learn in zip(layers, params, learns)
                if learn
            ],
        }

    def step(grads, scale: float) -> None:
        for n, (g, learn) in enumerate(zip(grads, learns)):
            if g is not None and learn:
                params[n] = (params[n][0] - eta * scale * g[0], params[n][1] - eta * scale * g[1])

    samples = [(s["name"], s["label"], torch.tensor(s["pixels"], dtype=dtype)) for s in scenario["inputs"]]
    steps, updates = [], []
    for iteration in range(1, int(training.get("iterations", 1)) + 1):
        total = None
        for name, label, pixels in samples:
            x = (pixels.unsqueeze(0) if pixels.dim() == 2 else pixels).clone().requires_grad_(True)
            leaves = [None if p is None else tuple(t.clone().requires_grad_(True) for t in p) for p in params]
            outputs = forward(x, leaves)
            logits = outputs[-1]
            loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([classes.index(label)]))
            loss.backward()
            dx = x.grad[0] if pixels.dim() == 2 else x.grad
            steps.append(
                {
                    "iteration": iteration,
                    "sample": name,
                    "label": label,
                    "layers": entries(outputs, leaves, True),
                    "grad_input": dx.tolist(),
                    "logits": logits.tolist(),
                    "probs": torch.softmax(logits, 0).tolist(),
                    "loss": loss.item(),
                    "grad_logits": logits.grad.tolist(),
                }
            )
            grads = [None if p is None else (p[0].grad, p[1].grad) for p in leaves]
            if mode == "per_sample":
                step(grads, 1.0)
                updates.append(snapshot(iteration, name))
            else:
                total = (
                    grads
                    if total is None
                    else [None if g is None else (t[0] + g[0], t[1] + g[1]) for t, g in zip(total, grads)]
                )
        if mode != "per_sample":
            step(total, 1.0 / len(samples) if mode == "batch_mean" else 1.0)
            updates.append(snapshot(iteration, None))
    final = []
    with torch.no_grad():
        for name, label, pixels in samples:
            x = pixels.unsqueeze(0) if pixels.dim() == 2 else pixels
            outputs = forward(x, params)
            logits = outputs[-1]
            loss = F.cross_entropy(logits.unsqueeze(0), torch.tensor([classes.index(label)]))
            final.append(
                {
                    "sample": name,
                    "layers": entries(outputs, params, False),
                    "logits": logits.tolist(),
                    "probs": torch.softmax(logits, 0).tolist(),
                    "loss": loss.item(),
                }
            )
    return {"scenario": scenario["name"], "classes": classes, "steps": steps, "updates": updates, "final": final}


# ============================================================================= random stacks


@st.composite
def stacks(draw, max_conv: int = 3, max_dense: int = 3) -> dict:
    """A valid `layers` scenario: 0-3 conv layers, each optionally followed by an activation and a
    pool (every stride, padding, channel and pool option), then 1-3 dense layers with activations
    between them. Shapes come from hypothesis, values from a seeded generator (uniform floats, so
    kinks and ties are rare and are then skipped, see `degenerate`)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    uniform = lambda *shape: np.round(rng.uniform(-1, 1, shape), 6).tolist()  # noqa: E731
    channels = draw(st.integers(1, 2))
    height, width = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    image = (channels, height, width)
    activations = st.one_of(
        st.sampled_from(["relu", "none", "sigmoid", "tanh", "leaky_relu"]),
        st.builds(lambda s: {"kind": "leaky_relu", "slope": s}, st.sampled_from([0.1, 0.3])),
    )
    layers: list[dict] = []
    for _ in range(draw(st.integers(0, max_conv))):
        padding = draw(st.integers(0, 1))
        kh = draw(st.integers(1, min(3, height + 2 * padding)))
        kw = draw(st.integers(1, min(3, width + 2 * padding)))
        stride = draw(st.integers(1, 2))
        filters = draw(st.integers(1, 3))
        flat = channels == 1 and draw(st.booleans())  # a 2-D filter where the input has one channel
        layers.append(
            {
                "conv": {
                    "stride": stride,
                    "padding": padding,
                    "filters": [
                        {
                            "name": f"f{k}",
                            "weights": uniform(kh, kw) if flat else uniform(channels, kh, kw),
                            "bias": float(np.round(rng.uniform(-0.5, 0.5), 6)),
                        }
                        for k in range(filters)
                    ],
                }
            }
        )
        channels = filters
        height, width = (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1
        if draw(st.booleans()):
            layers.append({"activation": draw(activations)})
        if draw(st.booleans()):
            pool: dict = {"kind": draw(st.sampled_from(["max", "avg"]))}
            if draw(st.integers(0, 3)) == 0:
                pool["size"] = "global"
                height = width = 1
            else:
                ph, pw = draw(st.integers(1, min(2, height))), draw(st.integers(1, min(2, width)))
                pool["size"] = ph if ph == pw and draw(st.booleans()) else [ph, pw]
                sh, sw = ph, pw
                if draw(st.booleans()):
                    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
                    pool["stride"] = [sh, sw]
                height, width = (height - ph) // sh + 1, (width - pw) // sw + 1
            layers.append({"pool": pool})
    classes = draw(st.integers(2, 3))
    inputs = channels * height * width
    n_dense = draw(st.integers(1, max_dense))
    for n in range(n_dense):
        outputs = classes if n == n_dense - 1 else draw(st.integers(1, 4))
        layers.append({"dense": {"weights": uniform(outputs, inputs), "biases": uniform(outputs)}})
        inputs = outputs
        if n < n_dense - 1 and draw(st.booleans()):
            layers.append({"activation": draw(activations)})
    names = [f"c{i}" for i in range(classes)]
    two_d = image[0] == 1 and draw(st.booleans())
    samples = draw(st.integers(1, 3))
    pixels = [uniform(*image[1:]) if two_d else uniform(*image) for _ in range(samples)]
    return {
        "name": "random-stack",
        "classes": names,
        "inputs": [{"name": f"x{i}", "label": names[i % classes], "pixels": p} for i, p in enumerate(pixels)],
        "layers": layers,
        "training": {
            "learning_rate": draw(st.sampled_from([0.1, 0.5, 1.0])),
            "iterations": draw(st.integers(1, 2)),
            "update": draw(st.sampled_from(["per_sample", "batch_mean", "batch_sum"])),
            "update_filters": draw(st.booleans()),
        },
    }


KINKED = ("relu", "leaky_relu")


def degenerate(scenario: dict, expected: dict, margin: float) -> bool:
    """A (leaky) ReLU input within ``margin`` of 0, or a max-pool window whose two largest values are
    within ``margin`` (unless both are exactly 0: dead ReLU units, which pass no gradient whichever
    wins), in any step of ``expected`` (reference_stack_run). There the derivative is a kink or a tie
    that the last bits of a sum decide, and finite differences straddle it."""
    layers = stack_spec(scenario)
    for step, sample in zip(expected["steps"], scenario["inputs"] * len(expected["steps"])):
        h = np.array(sample["pixels"], dtype=np.float64)
        for layer, entry in zip(layers, step["layers"]):
            h = h[None] if h.ndim == 2 else h
            if layer["kind"] == "activation" and layer["activation"][0] in KINKED and np.any(np.abs(h) < margin):
                return True
            if layer["kind"] == "pool" and layer["pool"]["kind"] == "max" and _pool_tie(h, layer["pool"], margin):
                return True
            h = np.array(entry["output"])
    return False


def _pool_tie(h: np.ndarray, pool: dict, margin: float) -> bool:
    if pool["size"] == "global":
        (ph, pw), (sh, sw) = h.shape[1:], h.shape[1:]
    else:
        pair = lambda v: tuple(v) if isinstance(v, list) else (v, v)  # noqa: E731
        (ph, pw), (sh, sw) = pair(pool["size"]), pair(pool.get("stride", pool["size"]))
    for k in range(h.shape[0]):
        for i in range(0, h.shape[1] - ph + 1, sh):
            for j in range(0, h.shape[2] - pw + 1, sw):
                top = np.sort(h[k, i : i + ph, j : j + pw].ravel())[::-1]
                if len(top) > 1 and top[0] - top[1] < margin and not (top[0] == 0 and top[1] == 0):
                    return True
    return False


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


def _with_training(scenario: dict, **training: Any) -> dict:
    data = copy.deepcopy(scenario)
    data["training"] = {**data["training"], **training}
    return data


@pytest.mark.parametrize("update", ["per_sample", "batch_mean", "batch_sum"])
@pytest.mark.parametrize("update_filters", [True, False])
def test_two_conv_matches_pytorch_and_the_reference(update: str, update_filters: bool) -> None:
    scenario = _with_training(TWO_CONV, update=update, update_filters=update_filters, iterations=2)
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
    scenario = _with_training(scenario, iterations=1)
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
    scenario = _with_training(TWO_CONV, iterations=1)
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


# ============================================================================= parsing: the contract's rules

FOUR = read_source("four-images")[0]
GRID_2x2 = [[0.1, 0.2], [0.3, 0.4]]


def stack(*edits) -> Any:
    """A writer: two-conv with ``edits`` applied (callables, or (path, value) with DELETE), as YAML."""

    def write(folder: Path) -> str:
        import yaml

        data = copy.deepcopy(TWO_CONV)
        for edit in edits:
            if callable(edit):
                edit(data)
            else:
                put(data, *edit)
        target = folder / "stack.yaml"
        target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return str(target)

    return write


def insert(index: int, layer: dict):
    return lambda data: data["layers"].insert(index, layer)


def keep(count: int):
    return lambda data: data.update(layers=data["layers"][:count])


def also(key: str):
    return lambda data: data.update({key: copy.deepcopy(FOUR[key])})


CONV_LAYER = {"conv": {"filters": [{"name": "Z", "weights": [[1.0]]}]}}
STACK_CASES = [
    BadCase(
        "conv-after-dense",
        stack(insert(7, CONV_LAYER)),
        "layers[7].conv",
        "a conv layer must come before the first dense layer",
    ),
    BadCase(
        "pool-after-dense",
        stack(insert(7, {"pool": {"kind": "max", "size": 2}})),
        "layers[7].pool",
        "a pool layer must come before the first dense layer",
    ),
    BadCase(
        "last-layer-activation",
        stack(lambda d: d["layers"].append({"activation": "relu"})),
        "layers[9]",
        "the last layer must be dense, one row per class",
    ),
    BadCase("no-dense-layer", stack(keep(3)), "layers[2]", "the last layer must be dense"),
    BadCase(
        "last-dense-rows-not-classes",
        stack(("layers[8].dense.weights", [[0.1] * 3] * 3), ("layers[8].dense.biases", [0, 0, 0])),
        "layers[8].dense.weights",
        "expected 2x3 (outputs x inputs, one row per class",
    ),
    BadCase(
        "hidden-dense-wrong-inputs",
        stack(("layers[6].dense.weights", [[0.1] * 4] * 3)),
        "layers[6].dense.weights",
        "expected 3x2 (outputs x inputs), got 3x4",
    ),
    BadCase(
        "hidden-dense-biases-wrong-count",
        stack(("layers[6].dense.biases", [0, 0])),
        "layers[6].dense.biases",
        "expected 3 values (one per output), got 2",
    ),
    BadCase(
        "hidden-dense-missing-biases",
        stack(("layers[6].dense.biases", DELETE)),
        "layers[6].dense.biases",
        "missing key",
    ),
    BadCase("layers-and-conv", stack(also("conv")), "conv", "not both"),
    BadCase("layers-and-dense", stack(also("dense")), "dense", "not both"),
    BadCase("layers-and-activation", stack(lambda d: d.update(activation="relu")), "activation", "not both"),
    BadCase("layers-and-pool", stack(lambda d: d.update(pool="none")), "pool", "not both"),
    BadCase(
        "name-used-twice",
        stack(("layers[3].conv.name", "conv1")),
        "layers[3].conv.name",
        "layer name 'conv1' is already used by layers[0]",
    ),
    BadCase(
        "name-takes-a-default-name",
        stack(("layers[6].dense.name", "dense2"), ("layers[8].dense.name", DELETE)),
        "layers[8].dense",
        "layer name 'dense2' is already used by layers[6]",
    ),
    BadCase(
        "name-across-kinds",
        stack(("layers[1]", {"activation": {"kind": "relu", "name": "pool1"}})),
        "layers[2].pool",
        "layer name 'pool1' is already used by layers[1]",
    ),
    BadCase(
        "second-conv-2d-filter",
        stack(("layers[3].conv.filters[0].weights", GRID_2x2)),
        "layers[3].conv.filters[0].weights",
        "has 1 channel(s), the layer's input has 2 (give C x kh x kw)",
    ),
    BadCase(
        "second-conv-3-channels",
        stack(("layers[3].conv.filters[1].weights", [GRID_2x2] * 3)),
        "layers[3].conv.filters[1].weights",
        "has 3 channel(s), the layer's input has 2",
    ),
    BadCase(
        "second-conv-filter-too-large",
        stack(
            ("layers[3].conv.filters[0].weights", [[[0.1] * 4] * 4] * 2),
            ("layers[3].conv.filters[1].weights", [[[0.1] * 4] * 4] * 2),
        ),
        "layers[3].conv.filters[0].weights",
        "filter 4x4 is larger than the padded input 3x3",
    ),
    BadCase(
        "second-conv-filters-differ",
        stack(("layers[3].conv.filters[1].weights", [[[0.1] * 3] * 3] * 2)),
        "layers[3].conv.filters[1].weights",
        "expected 2x2x2 like layers[3].conv.filters[0], got 2x3x3",
    ),
    BadCase(
        "duplicate-filter-names",
        stack(("layers[3].conv.filters[1].name", "P")),
        "layers[3].conv.filters[1].name",
        "duplicate filter name 'P'",
    ),
    BadCase(
        "unknown-layer-kind",
        stack(("layers[2]", {"maxpool": {"size": 2}})),
        "layers[2]",
        "unknown layer kind text 'maxpool'; expected one of conv, activation, pool, dense",
    ),
    BadCase(
        "two-kinds-in-one-item",
        stack(("layers[1]", {"activation": "relu", "pool": {"kind": "max", "size": 2}})),
        "layers[1]",
        "expected one of conv, activation, pool, dense as the only key",
    ),
    BadCase("layer-is-text", stack(("layers[1]", "relu")), "layers[1]", "as the only key, got text 'relu'"),
    BadCase("empty-layers", stack(("layers", [])), "layers", "expected at least 1 entry, got 0"),
    BadCase("layers-is-a-mapping", stack(("layers", {"conv": {}})), "layers", "expected a list, got a mapping"),
    BadCase(
        "pool-none-in-a-stack",
        stack(("layers[2].pool", {"kind": "none", "size": 2})),
        "layers[2].pool.kind",
        "leave the layer out",
    ),
    BadCase(
        "pool-does-not-fit",
        stack(("layers[5].pool", {"kind": "max", "size": 3})),
        "layers[5].pool.size",
        "window 3x3 does not fit the 2x2 feature map",
    ),
    BadCase("unknown-conv-key", stack(("layers[0].conv.dilation", 2)), "layers[0].conv.dilation", "unknown key"),
    BadCase(
        "unknown-dense-key",
        stack(("layers[6].dense.bias", [0, 0, 0])),
        "layers[6].dense.bias",
        "unknown key (did you mean 'biases'?)",
    ),
    BadCase(
        "slope-on-relu",
        stack(("layers[1].activation", {"kind": "relu", "slope": 0.1})),
        "layers[1].activation.slope",
        "only leaky_relu takes a slope",
    ),
    BadCase(
        "unknown-activation",
        stack(("layers[7].activation", "gelu")),
        "layers[7].activation",
        "unknown activation text 'gelu'",
    ),
    BadCase(
        "name-is-a-list", stack(("layers[6].dense.name", ["h"])), "layers[6].dense.name", "expected text, got a list"
    ),
]


def test_the_stack_table_is_distinct() -> None:
    assert len({c.id for c in STACK_CASES}) == len(STACK_CASES) >= 25


@pytest.mark.parametrize("c", STACK_CASES, ids=[c.id for c in STACK_CASES])
def test_bad_stack_rejected_in_process(c: BadCase, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argument = c.write(tmp_path)
    code = main(["values", argument])
    out, err = capsys.readouterr()
    assert_rejected(c, argument, code, out, err)


@pytest.mark.parametrize("c", STACK_CASES[::4], ids=[c.id for c in STACK_CASES[::4]])
def test_bad_stack_rejected_by_python_m_symcnn_values(c: BadCase, tmp_path: Path) -> None:
    argument = c.write(tmp_path)
    result = run_cli("values", argument, cwd=tmp_path)
    assert_rejected(c, argument, result.returncode, result.stdout, result.stderr)


def test_the_unbroken_stack_base_is_accepted(tmp_path: Path, capsys) -> None:
    assert main(["values", stack()(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "two-conv"


def _names(scenario: dict) -> list[str]:
    return [entry["name"] for entry in engine_values(scenario)["steps"][0]["layers"]]


def test_default_names_count_each_kind() -> None:
    data = copy.deepcopy(TWO_CONV)
    for item in data["layers"]:
        ((_, body),) = item.items()
        if isinstance(body, dict):
            body.pop("name", None)
    assert _names(data) == [
        "conv1",
        "activation1",
        "pool1",
        "conv2",
        "activation2",
        "pool2",
        "dense1",
        "activation3",
        "dense2",
    ]
    assert _names(TWO_CONV) == [
        "conv1",
        "activation1",
        "pool1",
        "conv2",
        "activation2",
        "pool2",
        "hidden",
        "activation3",
        "out",
    ]
    kinds = [e["kind"] for e in engine_values(TWO_CONV)["steps"][0]["layers"]]
    assert kinds == ["conv", "activation", "pool", "conv", "activation", "pool", "dense", "activation", "dense"]


def test_long_forms_name_layers_and_change_no_number() -> None:
    data = copy.deepcopy(TWO_CONV)
    data["layers"][1] = {"activation": {"kind": "relu", "name": "r"}}
    data["layers"][2] = {"pool": {"kind": "max", "size": 2, "name": "p"}}
    data["layers"][0]["conv"]["name"] = "edges"
    assert _names(data)[:4] == ["edges", "r", "p", "conv2"]  # the count of conv layers goes on: conv2
    a, b = engine_values(data), engine_values(TWO_CONV)
    for x, y in zip(a["steps"][0]["layers"], b["steps"][0]["layers"]):
        assert x["output"] == y["output"] and x["grad_output"] == y["grad_output"]


def test_leaky_relu_alone_means_slope_one_hundredth() -> None:
    alone, explicit = copy.deepcopy(TWO_CONV), copy.deepcopy(TWO_CONV)
    alone["layers"][1] = {"activation": "leaky_relu"}
    explicit["layers"][1] = {"activation": {"kind": "leaky_relu", "slope": 0.01}}
    a = engine_values(alone)
    assert a == engine_values(explicit)
    z, out = np.array(a["steps"][0]["layers"][0]["output"]), np.array(a["steps"][0]["layers"][1]["output"])
    assert np.any(z < 0)
    np.testing.assert_allclose(out, np.where(z > 0, z, 0.01 * z), rtol=0, atol=0)
    assert_same(a, reference_stack_run(alone), STACK_RTOL, STACK_ATOL)


def test_a_stack_without_conv_layers_is_a_plain_network_on_the_flattened_input() -> None:
    rng = np.random.default_rng(3)
    scenario = {
        "name": "mlp",
        "classes": ["a", "b", "c"],
        "inputs": [
            {"name": f"x{i}", "label": "abc"[i], "pixels": rng.uniform(0, 1, (2, 3, 2)).tolist()} for i in range(3)
        ],
        "layers": [
            {"dense": {"weights": rng.uniform(-1, 1, (4, 12)).tolist(), "biases": [0.1] * 4}},
            {"activation": "sigmoid"},
            {"dense": {"weights": rng.uniform(-1, 1, (3, 4)).tolist(), "biases": [0.0] * 3}},
        ],
        "training": {"learning_rate": 0.5, "iterations": 2, "update": "batch_sum"},
    }
    actual = engine_values(scenario)
    assert np.array(actual["steps"][0]["grad_input"]).shape == (2, 3, 2)
    assert_same(actual, reference_stack_run(scenario), STACK_RTOL, STACK_ATOL)
    assert_same(actual, torch_stack_run(scenario), STACK_RTOL, STACK_ATOL)


def test_what_every_stack_step_reports() -> None:
    """The contract's shapes and identities, on two-conv: the last dense output is the logits, each
    activation's input is the previous layer's output, updates list the learning layers in order."""
    values = engine_values(TWO_CONV)
    shapes = [(2, 6, 6), (2, 6, 6), (2, 3, 3), (2, 2, 2), (2, 2, 2), (2, 1, 1), (3,), (3,), (2,)]
    for step in values["steps"]:
        entries = step["layers"]
        assert [np.array(e["output"]).shape for e in entries] == shapes
        assert [np.array(e["grad_output"]).shape for e in entries] == shapes
        assert entries[-1]["output"] == step["logits"] and entries[-1]["grad_output"] == step["grad_logits"]
        np.testing.assert_array_equal(entries[1]["output"], np.maximum(entries[0]["output"], 0))
        np.testing.assert_allclose(entries[7]["output"], np.tanh(entries[6]["output"]), rtol=1e-15)
        assert [("grad_weights" in e, "grad_biases" in e) for e in entries] == [
            (e["kind"] in ("conv", "dense"),) * 2 for e in entries
        ]
        assert np.array(entries[0]["grad_weights"]).shape == (2, 3, 3)  # per filter, as given (2-D)
        assert np.array(entries[3]["grad_weights"]).shape == (2, 2, 2, 2)
        assert np.array(step["grad_input"]).shape == (6, 6)  # the input was given as H x W
    for update in values["updates"]:
        assert [e["name"] for e in update["layers"]] == ["conv1", "conv2", "hidden", "out"]
    frozen = _with_training(TWO_CONV, update_filters=False)
    assert [e["name"] for e in engine_values(frozen)["updates"][0]["layers"]] == ["hidden", "out"]
    for final in values["final"]:
        assert [set(e) for e in final["layers"]] == [{"kind", "name", "output"}] * 9
        assert final["layers"][-1]["output"] == final["logits"]


# ============================================================================= legacy scenarios


def _legacy_as_layers(data: dict) -> dict:
    """The legacy keys rewritten as the `layers` list they mean (a `none` pool left out)."""
    stacked = {k: v for k, v in data.items() if k not in ("conv", "activation", "pool", "dense", "claims")}
    pool = data.get("pool", "none")
    stacked["layers"] = (
        [{"conv": data["conv"]}, {"activation": data.get("activation", "relu")}]
        + ([] if pool == "none" else [{"pool": pool}])
        + [{"dense": data["dense"]}]
    )
    return stacked


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_layer_keys_repeat_the_legacy_keys(name: str) -> None:
    data = read_source(name)[0]
    values = engine_values(data)
    has_pool = data.get("pool", "none") != "none"
    names = ["conv1", "activation1"] + (["pool1"] if has_pool else []) + ["dense1"]
    for step in values["steps"]:
        entries = {e["name"]: e for e in step["layers"]}
        assert [e["name"] for e in step["layers"]] == names
        conv, act, dense = entries["conv1"], entries["activation1"], entries["dense1"]
        pooled = entries["pool1"] if has_pool else act
        assert conv["output"] == step["conv"] and conv["grad_output"] == step["grad_conv"]
        assert act["output"] == step["activated"] and act["grad_output"] == step["grad_activated"]
        assert pooled["output"] == step["pooled"] and pooled["grad_output"] == step["grad_pooled"]
        assert dense["output"] == step["logits"] and dense["grad_output"] == step["grad_logits"]
        assert conv["grad_weights"] == step["grad_filters"] and conv["grad_biases"] == step["grad_filter_biases"]
        assert dense["grad_weights"] == step["grad_dense_weights"]
        assert dense["grad_biases"] == step["grad_dense_biases"]
        assert np.array(step["grad_input"]).shape == np.array(data["inputs"][0]["pixels"]).shape
    learns_filters = data["training"].get("update_filters", False)
    for update in values["updates"]:
        entries = {e["name"]: e for e in update["layers"]}
        assert list(entries) == (["conv1"] if learns_filters else []) + ["dense1"]
        assert entries["dense1"]["weights"] == update["dense_weights"]
        assert entries["dense1"]["biases"] == update["dense_biases"]
        if learns_filters:
            assert entries["conv1"]["weights"] == update["filters"]
    for final in values["final"]:
        assert final["layers"][0]["output"] == final["conv"] and final["layers"][-1]["output"] == final["logits"]
    # the same network given as `layers`: the same numbers, and no legacy keys needed
    stacked = engine_values(_legacy_as_layers(data))
    for a, b in zip(stacked["steps"], values["steps"]):
        assert a["layers"] == b["layers"] and a["grad_input"] == b["grad_input"] and a["loss"] == b["loss"]
    assert [u["layers"] for u in stacked["updates"]] == [u["layers"] for u in values["updates"]]


@pytest.mark.parametrize("name", ["four-images", "zebra-cat"])
def test_legacy_keys_still_match_the_legacy_reference(name: str) -> None:
    data = read_source(name)[0]
    assert_same(engine_values(data), reference_run(data))
    assert_same(engine_values(data), reference_stack_run(data))


# ============================================================================= the stack built-ins


def test_lenet_like_is_what_the_generator_writes() -> None:
    from symcnn.scenario.lenet import lenet_like, to_yaml
    from symcnn.scenario.sources import builtin_dir

    committed = (builtin_dir() / "lenet-like.yaml").read_text(encoding="utf-8")
    assert committed == to_yaml(lenet_like()), (
        "regenerate: python -m symcnn.scenario.lenet > symcnn/scenario/builtins/lenet-like.yaml"
    )


def test_lenet_like_has_lenet_shapes_and_live_gradients() -> None:
    sc = symcnn.load("lenet-like")
    assert sc.inputs[0].pixels.shape == (1, 28, 28) and len(sc.inputs) == 2 and len(sc.classes) == 10
    step = engine_values("lenet-like")["steps"][0]
    shapes = [np.array(e["output"]).shape for e in step["layers"]]
    assert shapes == [
        (6, 28, 28),
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 10, 10),
        (16, 5, 5),
        (120,),
        (120,),
        (84,),
        (84,),
        (10,),
    ]
    assert max(step["probs"]) < 0.5 and min(step["probs"]) > 0.01  # not saturated
    for e in step["layers"]:
        if "grad_weights" in e:
            assert np.count_nonzero(e["grad_weights"]) > 0.1 * np.size(e["grad_weights"]), e["name"]
    assert np.count_nonzero(step["grad_input"]) > 100


def test_two_conv_is_hand_sized_and_not_degenerate() -> None:
    values = engine_values(TWO_CONV)
    assert not degenerate(TWO_CONV, reference_stack_run(TWO_CONV), 0.01)
    numbers = [x for s in TWO_CONV["inputs"] for row in s["pixels"] for x in row]
    numbers += [
        x
        for item in TWO_CONV["layers"]
        for body in item.values()
        if isinstance(body, dict)
        for f in body.get("filters", [])
        for x in np.ravel(f["weights"])
    ]
    assert all(round(x, 1) == x for x in numbers)  # tenths and integers
    for step in values["steps"]:
        assert 0.2 < min(step["probs"]) and max(step["probs"]) < 0.8
        for e in step["layers"]:
            if "grad_weights" in e:
                assert np.count_nonzero(e["grad_weights"]) >= 3, e["name"]
    # one step of training raises the right class for both samples
    for step, final in zip(values["steps"], values["final"]):
        label = values["classes"].index(step["label"])
        assert final["probs"][label] > step["probs"][label]


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
