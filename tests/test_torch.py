"""PyTorch as a second oracle: the same network built from torch.nn.functional in float64,
differentiated by autograd and trained by a hand-written SGD loop, against the engine.

Every forward value, every gradient of every step, every update and the final pass must agree
to 1e-9. Scenarios come from the strategy in test_properties.py.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="PyTorch is the optional second oracle (pip install torch)")
F = torch.nn.functional

try:
    from test_properties import (
        _without_magnitudes,
        assert_same,
        engine_values,
        rounding_ambiguous,
        scenarios,
    )
except ImportError:  # tests/ imported as a package
    from tests.test_properties import (
        _without_magnitudes,
        assert_same,
        engine_values,
        rounding_ambiguous,
        scenarios,
    )
try:
    from reference import reference_run
except ImportError:
    from tests.reference import reference_run

DTYPE = torch.float64


def _tensor(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=DTYPE)


def _chw(values: Any) -> torch.Tensor:
    x = _tensor(values)
    return x.unsqueeze(0) if x.dim() == 2 else x


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, list) else (int(value), int(value))


def _activate(z: torch.Tensor, activation: Any) -> torch.Tensor:
    if isinstance(activation, dict):
        assert activation["kind"] == "leaky_relu"
        return F.leaky_relu(z, negative_slope=activation["slope"])
    return {"relu": F.relu, "none": lambda t: t, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation](z)


def _pool(a: torch.Tensor, pool: Any) -> torch.Tensor:
    """a is 1 x K x H' x W'; PyTorch's default floor mode, no padding."""
    if pool is None or pool == "none":
        return a
    if pool["size"] == "global":
        kernel = stride = tuple(a.shape[2:])
    else:
        kernel = _pair(pool["size"])
        stride = _pair(pool["stride"]) if "stride" in pool else kernel
    if pool["kind"] == "max":
        return F.max_pool2d(a, kernel_size=kernel, stride=stride)
    return F.avg_pool2d(a, kernel_size=kernel, stride=stride)


def _as_list(t: torch.Tensor) -> Any:
    return t.detach().tolist()


def torch_run(scenario: dict) -> dict:
    """The scenario's run in PyTorch, shaped like the contract's `symcnn values` JSON."""
    classes = scenario["classes"]
    conv = scenario["conv"]
    stride, padding = conv.get("stride", 1), conv.get("padding", 0)
    activation = scenario.get("activation", "relu")
    pool = scenario.get("pool", "none")
    training = scenario["training"]
    eta = training["learning_rate"]
    iterations = training.get("iterations", 1)
    mode = training.get("update", "per_sample")
    update_filters = training.get("update_filters", False)

    filter_shapes = [tuple(np.array(spec["weights"]).shape) for spec in conv["filters"]]
    w = torch.stack([_chw(spec["weights"]) for spec in conv["filters"]])  # K x C x kh x kw
    b = _tensor([spec.get("bias", 0.0) for spec in conv["filters"]])
    W = _tensor(scenario["dense"]["weights"])
    B = _tensor(scenario["dense"]["biases"])
    samples = [(spec["name"], spec["label"], _chw(spec["pixels"])) for spec in scenario["inputs"]]

    def filters_as_given(t: torch.Tensor) -> list:
        return [_as_list(t[k].reshape(shape)) for k, shape in enumerate(filter_shapes)]

    def forward(x: torch.Tensor, label: str, params: tuple) -> dict:
        w_, b_, W_, B_ = params
        z = F.conv2d(x.unsqueeze(0), w_, b_, stride=stride, padding=padding)
        a = _activate(z, activation)
        q = _pool(a, pool)
        f = q.flatten()  # K x H'' x W'': filter-major, then row-major
        s = F.linear(f, W_, B_)
        s.retain_grad()
        L = F.cross_entropy(s.unsqueeze(0), torch.tensor([classes.index(label)]))
        return {"z": z[0], "a": a[0], "q": q[0], "f": f, "s": s, "p": torch.softmax(s, dim=0), "L": L}

    def snapshot(iteration: int, after: str | None) -> dict:
        return {
            "iteration": iteration,
            "after": after,
            "dense_weights": _as_list(W),
            "dense_biases": _as_list(B),
            "filters": filters_as_given(w),
            "filter_biases": _as_list(b),
        }

    steps, updates = [], []
    for iteration in range(1, iterations + 1):
        sums = [torch.zeros_like(t) for t in (w, b, W, B)]
        for name, label, x in samples:
            params = tuple(t.clone().requires_grad_(True) for t in (w, b, W, B))
            out = forward(x, label, params)
            out["L"].backward()
            dw, db, dW, dB = (t.grad for t in params)
            steps.append(
                {
                    "iteration": iteration,
                    "sample": name,
                    "label": label,
                    "conv": _as_list(out["z"]),
                    "activated": _as_list(out["a"]),
                    "pooled": _as_list(out["q"]),
                    "features": _as_list(out["f"]),
                    "logits": _as_list(out["s"]),
                    "probs": _as_list(out["p"]),
                    "loss": out["L"].item(),
                    "grad_logits": _as_list(out["s"].grad),
                    "grad_dense_weights": _as_list(dW),
                    "grad_dense_biases": _as_list(dB),
                    "grad_filters": filters_as_given(dw),
                    "grad_filter_biases": _as_list(db),
                }
            )
            if mode == "per_sample":
                W, B = W - eta * dW, B - eta * dB
                if update_filters:
                    w, b = w - eta * dw, b - eta * db
                updates.append(snapshot(iteration, name))
            else:
                for total, grad in zip(sums, (dw, db, dW, dB), strict=True):
                    total += grad
        if mode != "per_sample":
            if mode == "batch_mean":
                sums = [total / len(samples) for total in sums]
            W, B = W - eta * sums[2], B - eta * sums[3]
            if update_filters:
                w, b = w - eta * sums[0], b - eta * sums[1]
            updates.append(snapshot(iteration, None))

    final = []
    with torch.no_grad():
        for name, label, x in samples:
            z = F.conv2d(x.unsqueeze(0), w, b, stride=stride, padding=padding)
            s = F.linear(_pool(_activate(z, activation), pool).flatten(), W, B)
            L = F.cross_entropy(s.unsqueeze(0), torch.tensor([classes.index(label)]))
            final.append(
                {"sample": name, "logits": _as_list(s), "probs": _as_list(torch.softmax(s, dim=0)), "loss": L.item()}
            )
    return {"scenario": scenario["name"], "classes": list(classes), "steps": steps, "updates": updates, "final": final}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(scenarios(), scenarios(focus="max_ties"), scenarios(focus="avg_overlap")))
def test_engine_matches_pytorch(scenario: dict) -> None:
    # The reference only serves to spot kinks and max-pool ties decided by rounding noise.
    assume(not rounding_ambiguous(scenario, reference_run(scenario, conv_magnitudes=True)))
    expected = torch_run(copy.deepcopy(scenario))
    assert_same(engine_values(scenario), expected)


def test_pytorch_oracle_agrees_with_the_reference_on_a_fixed_scenario() -> None:
    """Guards the oracle itself: PyTorch and the loop reference agree on a rich scenario."""
    rng = np.random.default_rng(2024)
    scenario = {
        "name": "torch-fixed",
        "title": "Fixed",
        "classes": ["a", "b", "c"],
        "inputs": [
            {"name": f"x{i}", "label": "abc"[i % 3], "pixels": rng.uniform(-2, 2, (2, 5, 6)).tolist()} for i in range(3)
        ],
        "conv": {
            "stride": 2,
            "padding": 1,
            "filters": [{"name": n, "weights": rng.uniform(-1, 1, (2, 3, 2)).tolist(), "bias": 0.2} for n in "AB"],
        },
        "activation": {"kind": "leaky_relu", "slope": 0.1},
        "pool": {"kind": "max", "size": [2, 1], "stride": 1},
        "dense": {"weights": rng.uniform(-1, 1, (3, 2 * 2 * 4)).tolist(), "biases": [0.1, 0.0, -0.1]},
        "training": {"learning_rate": 0.4, "iterations": 2, "update": "per_sample", "update_filters": True},
    }
    expected = _without_magnitudes(reference_run(scenario))
    assert_same(torch_run(scenario), expected)
