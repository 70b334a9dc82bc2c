"""PyTorch as the optimizers' oracle: the same network in float64, differentiated by autograd and
stepped by torch.optim.SGD(momentum, nesterov) / torch.optim.Adam, step by step against the engine:
every step's values, every updated parameter and its state (momentum_buffer, exp_avg, exp_avg_sq)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, assume, given, settings

torch = pytest.importorskip("torch", reason="PyTorch is the optional second oracle (pip install torch)")
F = torch.nn.functional

try:
    from reference import reference_run
    from test_optimizers import ill_conditioned, optimized
    from test_properties import assert_same, engine_values, rounding_ambiguous
    from test_torch import _activate, _as_list, _chw, _pool, _tensor
except ImportError:  # tests/ imported as a package
    from tests.reference import reference_run
    from tests.test_optimizers import ill_conditioned, optimized
    from tests.test_properties import assert_same, engine_values, rounding_ambiguous
    from tests.test_torch import _activate, _as_list, _chw, _pool, _tensor

STATE = {"momentum_buffer": "velocity", "exp_avg": "m", "exp_avg_sq": "v"}  # PyTorch's names -> ours


def make_optimizer(spec, params: list, lr: float):
    spec = {"kind": spec} if isinstance(spec, str) else spec
    if spec["kind"] == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=spec.get("momentum", 0.9), nesterov=spec.get("nesterov", False))
    if spec["kind"] == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(spec.get("betas", (0.9, 0.999))), eps=spec.get("eps", 1e-8))
    return torch.optim.SGD(params, lr=lr)


def torch_optim_run(scenario: dict) -> dict:
    """Steps, updates (with "step" and the optimizer's state) and the final pass, from PyTorch."""
    classes, conv, training = scenario["classes"], scenario["conv"], scenario["training"]
    stride, padding = conv.get("stride", 1), conv.get("padding", 0)
    activation, pool = scenario.get("activation", "relu"), scenario.get("pool", "none")
    mode = training.get("update", "per_sample")
    shapes = [tuple(torch.tensor(f["weights"]).shape) for f in conv["filters"]]
    w = torch.stack([_chw(f["weights"]) for f in conv["filters"]]).requires_grad_(True)
    b = _tensor([f.get("bias", 0.0) for f in conv["filters"]]).requires_grad_(True)
    W = _tensor(scenario["dense"]["weights"]).requires_grad_(True)
    B = _tensor(scenario["dense"]["biases"]).requires_grad_(True)
    named = {"dense_weights": W, "dense_biases": B}
    if training.get("update_filters", False):
        named = {"filters": w, "filter_biases": b, **named}
    optimizer = make_optimizer(training.get("optimizer", "sgd"), list(named.values()), training["learning_rate"])
    samples = [(s["name"], s["label"], _chw(s["pixels"])) for s in scenario["inputs"]]

    def as_given(name: str, t: torch.Tensor):
        if name != "filters":
            return _as_list(t)
        return [_as_list(t[k].reshape(shape)) for k, shape in enumerate(shapes)]

    def logits(x):
        z = F.conv2d(x.unsqueeze(0), w, b, stride=stride, padding=padding)
        return F.linear(_pool(_activate(z, activation), pool).flatten(), W, B)

    def loss(x, label):
        return F.cross_entropy(logits(x).unsqueeze(0), torch.tensor([classes.index(label)]))

    steps, updates = [], []

    def step(iteration: int, after):
        if mode == "batch_mean":
            for p in named.values():
                p.grad /= len(samples)
        optimizer.step()
        optimizer.zero_grad()
        record = {"iteration": iteration, "after": after, "step": len(updates) + 1}
        for name, p in {"dense_weights": W, "dense_biases": B, "filters": w, "filter_biases": b}.items():
            record[name] = as_given(name, p)
        record["layers"] = []  # per learning layer: weights, biases and their state, as the contract's keys
        for weights, biases in (("filters", "filter_biases"), ("dense_weights", "dense_biases")):
            if weights not in named:
                continue
            entry = {"weights": as_given(weights, named[weights]), "biases": as_given(biases, named[biases])}
            entry["state"] = {}
            for name, suffix in ((weights, ""), (biases, "_biases")):
                for key, value in optimizer.state[named[name]].items():
                    if key in STATE:
                        record[f"{STATE[key]}_{name}"] = as_given(name, value)
                        entry["state"][STATE[key] + suffix] = as_given(name, value)
            record["layers"].append(entry)
        updates.append(record)

    for iteration in range(1, training.get("iterations", 1) + 1):
        for name, label, x in samples:
            L = loss(x, label)
            L.backward()
            steps.append({"sample": name, "loss": L.item()})
            if mode == "per_sample":
                step(iteration, name)
        if mode != "per_sample":
            step(iteration, None)
    with torch.no_grad():
        final = [{"sample": name, "loss": loss(x, label).item()} for name, label, x in samples]
    return {"steps": steps, "updates": updates, "final": final}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(optimized())
def test_engine_matches_torch_optim(scenario: dict) -> None:
    expected = reference_run(copy.deepcopy(scenario), conv_magnitudes=True)
    assume(not rounding_ambiguous(scenario, expected) and not ill_conditioned(scenario, expected))
    assert_same(engine_values(scenario), torch_optim_run(copy.deepcopy(scenario)))


def test_the_torch_runner_sees_state_and_every_step() -> None:
    """Guards the oracle: a fixed Adam scenario with filters learning, batch mode, three passes."""
    scenario = {
        "name": "t",
        "title": "t",
        "classes": ["a", "b"],
        "inputs": [
            {"name": "x1", "label": "a", "pixels": [[0.5, -1, 2], [1, 0, 0.25], [0, 1, -0.5]]},
            {"name": "x2", "label": "b", "pixels": [[1, 1, 0], [0.5, 0, 1], [-1, 2, 0]]},
        ],
        "conv": {"filters": [{"name": "A", "weights": [[1, -1], [0.5, 0]], "bias": 0.1}]},
        "activation": "tanh",
        "dense": {"weights": [[0.1, -0.2, 0.3, 0.4], [-0.1, 0.2, 0.0, 0.5]], "biases": [0, 0.1]},
        "training": {
            "learning_rate": 0.1,
            "iterations": 3,
            "update": "batch_sum",
            "update_filters": True,
            "optimizer": {"kind": "adam", "betas": [0.8, 0.99], "eps": 1e-6},
        },
    }
    expected = torch_optim_run(scenario)
    assert [u["step"] for u in expected["updates"]] == [1, 2, 3]
    assert {"m_filters", "v_filters", "m_dense_biases", "v_dense_biases"} <= set(expected["updates"][0])
    assert set(expected["updates"][0]["layers"][0]["state"]) == {"m", "v", "m_biases", "v_biases"}
    assert_same(engine_values(scenario), expected)
    expected_legacy = {
        **expected,
        "updates": [{k: v for k, v in u.items() if k != "layers"} for u in expected["updates"]],
    }
    assert_same(reference_run(scenario), expected_legacy)
