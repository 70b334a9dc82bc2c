"""The NumPy engine: forward, backward, SGD updates and the final pass -> Trace.

Each forward step sits next to its backward step. Names follow the maths: x input, w filter weights,
b filter biases, z conv output, a activated, m pooled, f features, W/B dense, o logits, p probs, L loss.
This module must not import SymPy: `symcnn values` is the fast path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..scenario.model import Activation, Pool, Scenario, pool_window, winner_cell
from . import optimizers

# ---------------------------------------------------------------- layers, forward next to backward


# Rounding noise: a float sum whose exact value is 0 (0.1 + 0.2 - 0.3) lands within a few ulps of its
# terms' magnitude. Such a value is taken as exactly 0, and max-pool values that close as tied, so
# kinks (ReLU'(0) = 0) and ties (the first maximum wins) follow the exact arithmetic of the scenario.
NOISE = 16 * np.finfo(np.float64).eps


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int):
    """x: C x H x W, w: K x C x kh x kw -> z: K x H' x W' (cross-correlation), the windows used, and
    each cell's rounding-noise bound."""
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    z = np.einsum("chwuv,kcuv->khw", windows, w) + b[:, None, None]
    noise = NOISE * (np.einsum("chwuv,kcuv->khw", np.abs(windows), np.abs(w)) + np.abs(b)[:, None, None])
    return np.where(np.abs(z) <= noise, 0.0, z), windows, noise


def conv_backward(dL_dz: np.ndarray, windows: np.ndarray):
    dL_dw = np.einsum("khw,chwuv->kcuv", dL_dz, windows)
    dL_db = dL_dz.sum(axis=(1, 2))
    return dL_dw, dL_db


def activate(z: np.ndarray, activation: Activation) -> np.ndarray:
    kind = activation.kind
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "leaky_relu":
        return np.where(z > 0, z, activation.slope * z)
    if kind == "sigmoid":
        e = np.exp(-np.abs(z))  # never overflows; exact to the last digit on both sides
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if kind == "tanh":
        return np.tanh(z)
    return z.copy()


def activate_derivative(z: np.ndarray, a: np.ndarray, activation: Activation) -> np.ndarray:
    """da/dz with ReLU'(0) = 0 and leaky ReLU'(0) = slope."""
    kind = activation.kind
    if kind == "relu":
        return (z > 0).astype(np.float64)
    if kind == "leaky_relu":
        return np.where(z > 0, 1.0, activation.slope)
    if kind == "sigmoid":
        return a * (1.0 - a)
    if kind == "tanh":
        return 1.0 - a * a
    return np.ones_like(z)


def pool_forward(a: np.ndarray, pool: Pool, noise: np.ndarray | None = None):
    """a: K x H' x W' -> m: K x H'' x W'' and the routing needed by the backward step."""
    if pool.kind == "none":
        return a.copy(), None
    (ph, pw), (sh, sw) = pool_window(pool, a.shape[1:])
    windows = sliding_window_view(a, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
    flat = windows.reshape(*windows.shape[:3], ph * pw)
    if pool.kind == "max":
        # the first maximum in row-major order, as PyTorch; values within rounding noise are ties
        tolerance = 0.0 if noise is None else sliding_window_view(noise, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
        tolerance = np.broadcast_to(tolerance, windows.shape).reshape(flat.shape)
        winner = np.argmax(flat >= flat.max(axis=-1, keepdims=True) - 2 * tolerance, axis=-1)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0], winner
    return flat.mean(axis=-1), None


def pool_backward(dL_dm: np.ndarray, shape: tuple, pool: Pool, winner: np.ndarray | None) -> np.ndarray:
    if pool.kind == "none":
        return dL_dm
    (ph, pw), (sh, sw) = pool_window(pool, shape[1:])
    dL_da = np.zeros(shape)
    k, i, j = np.indices(dL_dm.shape)
    if pool.kind == "max":
        np.add.at(dL_da, (k, *winner_cell(i, j, winner, (ph, pw), (sh, sw))), dL_dm)
        return dL_da
    share = dL_dm / (ph * pw)
    for u in range(ph):
        for v in range(pw):
            np.add.at(dL_da, (k, i * sh + u, j * sw + v), share)
    return dL_da


def softmax_cross_entropy(o: np.ndarray, y: int):
    """p = softmax(o) and L = -log p_y, both computed stably."""
    shifted = o - o.max()
    log_sum = np.log(np.exp(shifted).sum())
    p = np.exp(shifted - log_sum)
    return p, float(log_sum - shifted[y])


# ---------------------------------------------------------------- the trace


@dataclass(frozen=True)
class Params:
    w: np.ndarray  # K x C x kh x kw
    b: np.ndarray  # K
    W: np.ndarray  # classes x features
    B: np.ndarray  # classes


@dataclass(frozen=True)
class Step:
    iteration: int
    sample: str
    label: str
    conv: np.ndarray
    activated: np.ndarray
    pooled: np.ndarray
    features: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    loss: float
    grad_logits: np.ndarray
    grad_dense_weights: np.ndarray
    grad_dense_biases: np.ndarray
    grad_filters: list
    grad_filter_biases: np.ndarray
    # beyond the contract (extra keys are allowed): the chain rule's intermediate gradients
    grad_features: np.ndarray
    grad_pooled: np.ndarray
    grad_activated: np.ndarray
    grad_conv: np.ndarray
    winners: np.ndarray | None = None  # max pool: index of the winning cell in each window


@dataclass(frozen=True)
class Update:
    iteration: int
    after: str | None
    dense_weights: np.ndarray
    dense_biases: np.ndarray
    filters: list
    filter_biases: np.ndarray
    step: int = 1  # the optimizer's step number t
    # the optimizer's state after the step, per learning parameter tensor: "m_dense_weights", ...
    state: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Final:
    sample: str
    logits: np.ndarray
    probs: np.ndarray
    loss: float
    # beyond the contract: the final forward pass's feature maps
    conv: np.ndarray
    activated: np.ndarray
    pooled: np.ndarray
    features: np.ndarray


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
            "steps": [_plain(s, skip=("winners",)) for s in self.steps],
            "updates": [{**_plain(u, skip=("state",)), **_to_json(u.state)} for u in self.updates],
            "final": [_plain(f) for f in self.final],
        }


def _plain(record, skip: tuple[str, ...] = ()) -> dict:
    out = {}
    for item in fields(record):
        if item.name in skip:
            continue
        value = getattr(record, item.name)
        out[item.name] = _to_json(value)
    return out


def _to_json(value):
    if isinstance(value, np.ndarray):
        return value.astype(np.float64).tolist()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


# ---------------------------------------------------------------- one sample, the loop


def forward_backward(sc: Scenario, params: Params, x: np.ndarray, y: int) -> dict:
    """Every value of one sample's forward and backward pass at ``params``."""
    z, windows, noise = conv_forward(x, params.w, params.b, sc.conv.stride, sc.conv.padding)
    a = activate(z, sc.activation)
    m, winner = pool_forward(a, sc.pool, noise)
    f = m.reshape(-1)  # filter-major, then row-major
    o = params.W @ f + params.B
    p, L = softmax_cross_entropy(o, y)

    dL_do = p.copy()
    dL_do[y] -= 1.0
    dL_dW = np.outer(dL_do, f)
    dL_dB = dL_do
    dL_df = params.W.T @ dL_do
    dL_dm = dL_df.reshape(m.shape)
    dL_da = pool_backward(dL_dm, a.shape, sc.pool, winner)
    dL_dz = dL_da * activate_derivative(z, a, sc.activation)
    dL_dw, dL_db = conv_backward(dL_dz, windows)
    size_w, size_b = conv_backward(np.abs(dL_dz), np.abs(windows))  # sums of |terms|: their rounding bound
    return dict(
        conv=z,
        activated=a,
        pooled=m,
        features=f,
        logits=o,
        probs=p,
        loss=L,
        grad_logits=dL_do,
        grad_dense_weights=dL_dW,
        grad_dense_biases=dL_dB,
        grad_filters=dL_dw,
        grad_filter_biases=dL_db,
        grad_features=dL_df,
        grad_pooled=dL_dm,
        grad_activated=dL_da,
        grad_conv=dL_dz,
        winners=winner,
        sizes={"grad_filters": size_w, "grad_filter_biases": size_b},
    )


def initial_params(sc: Scenario) -> Params:
    return Params(
        w=np.stack([f.weights for f in sc.conv.filters]).astype(np.float64),
        b=np.array([f.bias for f in sc.conv.filters], dtype=np.float64),
        W=np.array(sc.dense.weights, dtype=np.float64),
        B=np.array(sc.dense.biases, dtype=np.float64),
    )


def filters_as_given(sc: Scenario, w: np.ndarray) -> list[np.ndarray]:
    """Per filter, in the shape the scenario gave (kh x kw or C x kh x kw)."""
    return [w[k][0] if f.ndim == 2 else w[k] for k, f in enumerate(sc.conv.filters)]


PARAMETERS = {"filters": "w", "filter_biases": "b", "dense_weights": "W", "dense_biases": "B"}  # JSON key -> field


def apply_update(sc: Scenario, params: Params, grads: dict, scale: float, state: dict, t: int, sizes: dict):
    """Parameters and optimizer state after step ``t`` with ``scale`` times the summed gradients (``sizes``:
    per entry, the sum of the magnitudes of the terms each gradient summed)."""
    opt = sc.training.optimizer
    learning = [k for k in PARAMETERS if sc.training.update_filters or not k.startswith("filter")]
    named = {k: getattr(params, PARAMETERS[k]) for k in learning}
    g = {k: scale * grads["grad_" + k] for k in learning}
    if opt.kind != "sgd":
        g = optimizers.without_residue(g, {k: scale * sizes["grad_" + k] for k in learning}, NOISE)
    hyper = optimizers.hyperparameters(opt, sc.training.learning_rate)
    new, state = optimizers.step(opt, hyper, named, g, state, t)
    return Params(**{PARAMETERS[k]: new.get(k, getattr(params, PARAMETERS[k])) for k in PARAMETERS}), state


def state_record(sc: Scenario, state: dict) -> dict:
    """The optimizer state as `symcnn values` keys: "m_dense_weights", "velocity_filters" (per filter), ..."""
    return {
        f"{key}_{name}": filters_as_given(sc, value) if name == "filters" else value.copy()
        for name, tensors in state.items()
        for key, value in tensors.items()
    }


FINAL_KEYS = ("logits", "probs", "loss", "conv", "activated", "pooled", "features")
GRAD_KEYS = ("grad_filters", "grad_filter_biases", "grad_dense_weights", "grad_dense_biases")


def run(sc: Scenario) -> Trace:
    """Train as the scenario says and record every number (the `symcnn values` JSON)."""
    params = initial_params(sc)
    steps: list[Step] = []
    updates: list[Update] = []
    batch = sc.training.update != "per_sample"
    scale = 1.0 / len(sc.inputs) if sc.training.update == "batch_mean" else 1.0

    state: dict = {}  # the optimizer's, per parameter tensor

    def record(iteration: int, after: str | None) -> None:
        updates.append(
            Update(
                iteration,
                after,
                params.W.copy(),
                params.B.copy(),
                filters_as_given(sc, params.w),
                params.b.copy(),
                len(updates) + 1,
                state_record(sc, state),
            )
        )

    for iteration in range(1, sc.training.iterations + 1):
        total = {key: 0.0 for key in GRAD_KEYS}
        sizes = {key: 0.0 for key in GRAD_KEYS}  # per entry, the sum of |terms| of the summed gradient
        for sample in sc.inputs:
            values = forward_backward(sc, params, sample.pixels, sc.label_index(sample))
            grad_filters = values.pop("grad_filters")
            size = {key: np.abs(values[key]) for key in GRAD_KEYS[2:]} | values.pop("sizes")
            steps.append(
                Step(iteration, sample.name, sample.label, grad_filters=filters_as_given(sc, grad_filters), **values)
            )
            grads = {**values, "grad_filters": grad_filters}
            if batch:
                total = {key: total[key] + grads[key] for key in GRAD_KEYS}
                sizes = {key: sizes[key] + size[key] for key in GRAD_KEYS}
            else:
                params, state = apply_update(sc, params, grads, 1.0, state, len(updates) + 1, size)
                record(iteration, sample.name)
        if batch:
            params, state = apply_update(sc, params, total, scale, state, len(updates) + 1, sizes)
            record(iteration, None)

    final = []
    for sample in sc.inputs:
        values = forward_backward(sc, params, sample.pixels, sc.label_index(sample))
        final.append(Final(sample.name, **{key: values[key] for key in FINAL_KEYS}))
    return Trace(sc.name, sc.classes, tuple(steps), tuple(updates), tuple(final))
