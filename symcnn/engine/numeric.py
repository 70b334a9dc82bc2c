"""The NumPy engine: forward, backward, SGD updates and the final pass over any stack of layers -> Trace.

Each layer kind's forward and backward live side by side in its own module (``symcnn.layers``); this
module walks the stack: forward top to bottom, backward bottom to top, then the update. Names follow the
maths: x input, w/b filter weights and biases, W/B dense weights and biases, o logits, p probs, L loss.
This module must not import SymPy: `symcnn values` is the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ..layers import activation, conv, dense, pool, softmax_ce
from ..scenario.model import Scenario
from . import optimizers

# ---------------------------------------------------------------- one layer, forward next to backward
# forward(layer, params, h, noise, last) -> (output, cache, noise); backward(layer, params, h, output, cache,
# dL/d(output)) -> (dL/d(input), (dL/dweights, dL/dbiases) or None). ``noise`` is the rounding-noise bound
# of the values flowing on (set by conv and dense, passed through by activations, read by max pooling).


def _conv_forward(layer, params, h, noise, last):
    z, windows, noise = conv.forward(h, *params, layer.stride, layer.padding)
    return z, windows, noise


def _conv_backward(layer, params, h, out, windows, g):
    dw, db = conv.backward(g, windows)
    return conv.input_gradient(g, params[0], layer.stride, layer.padding, h.shape), (dw, db)


def _activation_forward(layer, params, h, noise, last):
    return activation.forward(h, layer), None, noise


def _activation_backward(layer, params, h, out, cache, g):
    return g * activation.derivative(h, out, layer), None


def _pool_forward(layer, params, h, noise, last):
    m, winner = pool.forward(h, layer, noise)
    return m, winner, None


def _pool_backward(layer, params, h, out, winner, g):
    return pool.backward(g, h.shape, layer, winner), None


def _dense_forward(layer, params, h, noise, last):
    o, noise = dense.forward(h.reshape(-1), *params, snap=not last)
    return o, None, noise


def _dense_backward(layer, params, h, out, cache, g):
    dW, dB, df = dense.backward(g, h.reshape(-1), params[0])
    return df.reshape(h.shape), (dW, dB)


RULES = {
    "conv": (_conv_forward, _conv_backward),
    "activation": (_activation_forward, _activation_backward),
    "pool": (_pool_forward, _pool_backward),
    "dense": (_dense_forward, _dense_backward),
}


def initial_params(sc: Scenario) -> list:
    """Per layer: (weights, biases) as float arrays for conv and dense layers, None for the others."""
    return [layer.parameters() if layer.layer in ("conv", "dense") else None for layer in sc.layers]


def forward_backward(sc: Scenario, params: list, x: np.ndarray, y: int, backward: bool = True) -> dict:
    """Every value of one sample's forward (and backward) pass at ``params``: per layer its input,
    output and routing, then softmax and the loss, then the gradients from the loss back to the image."""
    h, noise, records = x, None, []
    last = len(sc.layers) - 1
    for n, (layer, p) in enumerate(zip(sc.layers, params)):
        out, cache, noise = RULES[layer.layer][0](layer, p, h, noise, n == last)
        records.append({"input": h, "output": out, "cache": cache})
        h = out
    probs, loss = softmax_ce.forward(h, y)
    values = {"records": records, "logits": h, "probs": probs, "loss": loss}
    if not backward:
        return values
    g = softmax_ce.backward(probs, y)
    values["grad_logits"] = g
    for layer, p, rec in zip(reversed(sc.layers), reversed(params), reversed(records)):
        rec["grad_output"] = g
        g, rec["grads"] = RULES[layer.layer][1](layer, p, rec["input"], rec["output"], rec["cache"], g)
    values["grad_input"] = g
    return values


# ---------------------------------------------------------------- the trace


@dataclass(frozen=True)
class Step:
    iteration: int
    sample: str
    label: str
    logits: np.ndarray
    probs: np.ndarray
    loss: float
    grad_logits: np.ndarray
    layers: list  # per layer: kind, name, output, grad_output (conv/dense: grad_weights, grad_biases)
    grad_input: np.ndarray  # dL/dx in the shape the input was given
    # the legacy keys (conv, activated, ..., grad_filters), for scenarios given with them; None for stacks
    conv: np.ndarray | None = None
    activated: np.ndarray | None = None
    pooled: np.ndarray | None = None
    features: np.ndarray | None = None
    grad_dense_weights: np.ndarray | None = None
    grad_dense_biases: np.ndarray | None = None
    grad_filters: list | None = None
    grad_filter_biases: np.ndarray | None = None
    # beyond the contract (extra keys are allowed): the chain rule's intermediate gradients
    grad_features: np.ndarray | None = None
    grad_pooled: np.ndarray | None = None
    grad_activated: np.ndarray | None = None
    grad_conv: np.ndarray | None = None
    winners: np.ndarray | None = None  # max pool: index of the winning cell in each window
    routes: list = field(default_factory=list)  # per layer: max pool winners, else None (not in the JSON)


@dataclass(frozen=True)
class Update:
    iteration: int
    after: str | None
    layers: list  # per learning layer: name, weights, biases
    dense_weights: np.ndarray | None = None  # the legacy keys
    dense_biases: np.ndarray | None = None
    filters: list | None = None
    filter_biases: np.ndarray | None = None
    step: int = 1  # the optimizer's step number t
    # legacy scenarios, beyond the contract: the optimizer state as flat keys (m_dense_weights, ...)
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Final:
    sample: str
    logits: np.ndarray
    probs: np.ndarray
    loss: float
    layers: list  # per layer: kind, name, output
    # beyond the contract: the final forward pass's feature maps (legacy scenarios)
    conv: np.ndarray | None = None
    activated: np.ndarray | None = None
    pooled: np.ndarray | None = None
    features: np.ndarray | None = None


@dataclass(frozen=True)
class Trace:
    scenario: str
    classes: tuple[str, ...]
    steps: tuple[Step, ...]
    updates: tuple[Update, ...]
    final: tuple[Final, ...]

    def to_dict(self) -> dict:
        """The contract's `symcnn values` JSON as plain Python data."""
        return {
            "scenario": self.scenario,
            "classes": list(self.classes),
            "steps": [_plain(s, skip=("winners", "routes")) for s in self.steps],
            "updates": [{**_plain(u, skip=("state",)), **_to_json(u.state)} for u in self.updates],
            "final": [_plain(f) for f in self.final],
        }


def _plain(record, skip: tuple[str, ...] = ()) -> dict:
    out = {}
    for item in fields(record):
        value = getattr(record, item.name)
        if item.name in skip or (value is None and item.default is None and item.name != "after"):
            continue
        out[item.name] = _to_json(value)
    return out


def _to_json(value):
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {key: _to_json(v) for key, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


# ---------------------------------------------------------------- records of a pass


def _as_given(layer, w):
    return layer.as_given(w) if layer.layer == "conv" else w


def layer_records(sc: Scenario, values: dict, backward: bool = True) -> list[dict]:
    """The contract's `layers` entries of a step (or, without ``backward``, of the final pass)."""
    out = []
    for layer, rec in zip(sc.layers, values["records"]):
        entry = {"kind": layer.layer, "name": layer.name, "output": rec["output"]}
        if backward:
            entry["grad_output"] = rec["grad_output"]
            if rec["grads"] is not None:
                entry["grad_weights"] = _as_given(layer, rec["grads"][0])
                entry["grad_biases"] = rec["grads"][1]
        out.append(entry)
    return out


def legacy_values(sc: Scenario, values: dict, backward: bool = True) -> dict:
    """The legacy keys (conv, activated, ..., grad_conv) of a scenario given as conv/activation/pool/dense."""
    if sc.is_stack:
        return {}
    recs = values["records"]
    c, a, d = recs[0], recs[1], recs[-1]
    m = recs[2] if len(recs) == 4 else None
    pooled = a["output"].copy() if m is None else m["output"]
    out = dict(conv=c["output"], activated=a["output"], pooled=pooled, features=pooled.reshape(-1))
    if not backward:
        return out
    grad_pooled = (a if m is None else m)["grad_output"]
    return {
        **out,
        "grad_dense_weights": d["grads"][0],
        "grad_dense_biases": d["grads"][1],
        "grad_filters": sc.conv.as_given(c["grads"][0]),
        "grad_filter_biases": c["grads"][1],
        "grad_features": grad_pooled.reshape(-1),
        "grad_pooled": grad_pooled,
        "grad_activated": a["grad_output"],
        "grad_conv": c["grad_output"],
        "winners": None if m is None else m["cache"],
    }


# ---------------------------------------------------------------- the loop


def apply_update(sc: Scenario, params: list, grads: list, scale: float, state: dict, t: int, sizes: list):
    """Parameters and optimizer state after step ``t`` with ``scale`` times the summed gradients (frozen
    layers kept). ``state``: per parameter tensor (layer n, 0 weights / 1 biases); ``sizes``: per gradient
    entry, the sum of the magnitudes of the terms it summed (its rounding bound)."""
    opt = sc.training.optimizer
    learning = [n for n, (layer, g) in enumerate(zip(sc.layers, grads)) if g is not None and sc.learns(layer)]
    named = {(n, part): params[n][part] for n in learning for part in (0, 1)}
    g = {(n, part): scale * grads[n][part] for n in learning for part in (0, 1)}
    if opt.kind != "sgd":  # within rounding of 0 counts as 0 (Adam would make a residue a step)
        g = optimizers.without_residue(g, {(n, part): scale * sizes[n][part] for n, part in g}, conv.NOISE)
    hyper = optimizers.hyperparameters(opt, sc.training.learning_rate)
    new, state = optimizers.step(opt, hyper, named, g, state, t)
    return [(new[n, 0], new[n, 1]) if n in learning else p for n, p in enumerate(params)], state


def gradient_sizes(sc: Scenario, values: dict) -> list:
    """Per layer with parameters, the sums of |terms| of its gradients: conv sums over cells, dense ones
    are products (their own magnitude)."""
    out = []
    for layer, rec in zip(sc.layers, values["records"]):
        if rec["grads"] is None:
            out.append(None)
        elif layer.layer == "conv":
            out.append(conv.backward(np.abs(rec["grad_output"]), np.abs(rec["cache"])))
        else:
            out.append((np.abs(rec["grads"][0]), np.abs(rec["grads"][1])))
    return out


def update_record(sc: Scenario, iteration: int, after: str | None, params: list, state: dict, t: int) -> Update:
    entries, flat = [], {}
    for n, (layer, p) in enumerate(zip(sc.layers, params)):
        if p is None or not sc.learns(layer):
            continue
        entry = {"name": layer.name, "weights": _as_given(layer, p[0]).copy(), "biases": p[1].copy(), "state": {}}
        for part in (0, 1):
            for key, value in state.get((n, part), {}).items():
                entry["state"][optimizers.STATE_KEYS[key][part]] = (
                    _as_given(layer, value) if part == 0 else value.copy()
                )
                if not sc.is_stack:
                    name = ("filters", "filter_biases", "dense_weights", "dense_biases")[part + (2 if n else 0)]
                    flat[f"{key}_{name}"] = entry["state"][optimizers.STATE_KEYS[key][part]]
        entries.append(entry)
    legacy = {}
    if not sc.is_stack:
        (w, b), (W, B) = params[0], params[-1]
        legacy = dict(
            dense_weights=W.copy(), dense_biases=B.copy(), filters=sc.conv.as_given(w), filter_biases=b.copy()
        )
    return Update(iteration, after, entries, **legacy, step=t, state=flat)


def run(sc: Scenario) -> Trace:
    """Train as the scenario says and record every number (the `symcnn values` JSON)."""
    params = initial_params(sc)
    steps: list[Step] = []
    updates: list[Update] = []
    batch = sc.training.update != "per_sample"
    scale = 1.0 / len(sc.inputs) if sc.training.update == "batch_mean" else 1.0
    state: dict = {}  # the optimizer's, per parameter tensor

    def add(total, grads):
        if total is None:
            return grads
        return [None if g is None else (t[0] + g[0], t[1] + g[1]) for t, g in zip(total, grads)]

    for iteration in range(1, sc.training.iterations + 1):
        total = sizes = None
        for sample in sc.inputs:
            values = forward_backward(sc, params, sample.pixels, sc.label_index(sample))
            grads = [rec["grads"] for rec in values["records"]]
            steps.append(
                Step(
                    iteration,
                    sample.name,
                    sample.label,
                    values["logits"],
                    values["probs"],
                    values["loss"],
                    values["grad_logits"],
                    layer_records(sc, values),
                    sc.as_given(values["grad_input"]),
                    routes=[
                        rec["cache"] if layer.layer == "pool" else None
                        for layer, rec in zip(sc.layers, values["records"])
                    ],
                    **legacy_values(sc, values),
                )
            )
            size = gradient_sizes(sc, values)
            if batch:
                total, sizes = add(total, grads), add(sizes, size)
            else:
                params, state = apply_update(sc, params, grads, 1.0, state, len(updates) + 1, size)
                updates.append(update_record(sc, iteration, sample.name, params, state, len(updates) + 1))
        if batch:
            params, state = apply_update(sc, params, total, scale, state, len(updates) + 1, sizes)
            updates.append(update_record(sc, iteration, None, params, state, len(updates) + 1))

    final = []
    for sample in sc.inputs:
        values = forward_backward(sc, params, sample.pixels, sc.label_index(sample), backward=False)
        legacy = legacy_values(sc, values, backward=False)
        final.append(
            Final(
                sample.name,
                values["logits"],
                values["probs"],
                values["loss"],
                layer_records(sc, values, False),
                **legacy,
            )
        )
    return Trace(sc.name, sc.classes, tuple(steps), tuple(updates), tuple(final))
