"""An independent, deliberately plain reference implementation of the symcnn contract.

Written from /work/shared/contract.md only; it does not import symcnn. Every convolution,
activation and pooling step is an explicit Python loop over float64 NumPy arrays, so the
numbers it produces share no code path with the engine.

    reference_run(scenario_dict) -> dict   # the contract's `symcnn values` JSON structure

Notation: x input (C x H x W), w filter (C x kh x kw), b filter bias, z conv output
(K x H' x W'), a activated, q pooled (K x H'' x W''), f features, W/B dense weights/biases,
s logits, p probabilities, y one-hot label, L loss, dL_d* gradients.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["reference_run", "forward", "backward", "pool_geometry"]


# ----------------------------------------------------------------------------- settings


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        h, w = value
        return int(h), int(w)
    return int(value), int(value)


def _activation_spec(activation: Any) -> tuple[str, float]:
    """(kind, slope); slope only matters for leaky_relu."""
    if activation is None:
        return "relu", 0.0
    if isinstance(activation, str):
        return activation, 0.0
    kind = activation["kind"]
    return kind, float(activation.get("slope", 0.01)) if kind == "leaky_relu" else 0.0


def pool_geometry(pool: Any, map_h: int, map_w: int) -> tuple[str, int, int, int, int] | None:
    """(kind, ph, pw, sh, sw) for a pooling spec applied to an H' x W' map, or None for no pooling."""
    if pool is None or pool == "none":
        return None
    kind = pool["kind"]
    if kind == "none":
        return None
    size = pool["size"]
    if size == "global":
        return kind, map_h, map_w, map_h, map_w
    ph, pw = _pair(size)
    stride = pool.get("stride")
    sh, sw = (ph, pw) if stride is None else _pair(stride)
    return kind, ph, pw, sh, sw


# ----------------------------------------------------------------------------- layers


def _pad(x: np.ndarray, padding: int) -> np.ndarray:
    channels, height, width = x.shape
    xp = np.zeros((channels, height + 2 * padding, width + 2 * padding))
    for c in range(channels):
        for i in range(height):
            for j in range(width):
                xp[c, i + padding, j + padding] = x[c, i, j]
    return xp


def _conv(xp: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation of the padded input xp (C x Hp x Wp) with K filters w (K x C x kh x kw).

    Also returns, per output cell, the sum of the absolute values of its terms: the scale of
    the rounding error in that cell, whatever order the terms are added in."""
    n_filters, channels, kh, kw = w.shape
    out_h = (xp.shape[1] - kh) // stride + 1
    out_w = (xp.shape[2] - kw) // stride + 1
    z = np.zeros((n_filters, out_h, out_w))
    magnitude = np.zeros((n_filters, out_h, out_w))
    for k in range(n_filters):
        for oy in range(out_h):
            for ox in range(out_w):
                total = 0.0
                size = abs(b[k])
                for c in range(channels):
                    for i in range(kh):
                        for j in range(kw):
                            term = w[k, c, i, j] * xp[c, oy * stride + i, ox * stride + j]
                            total += term
                            size += abs(term)
                z[k, oy, ox] = total + b[k]
                magnitude[k, oy, ox] = size
    return z, magnitude


def _sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def _activate(z: np.ndarray, kind: str, slope: float) -> np.ndarray:
    a = np.zeros_like(z)
    for index, t in np.ndenumerate(z):
        if kind == "relu":
            a[index] = t if t > 0 else 0.0
        elif kind == "leaky_relu":
            a[index] = t if t > 0 else slope * t
        elif kind == "sigmoid":
            a[index] = _sigmoid(t)
        elif kind == "tanh":
            a[index] = math.tanh(t)
        elif kind == "none":
            a[index] = t
        else:
            raise ValueError(f"unknown activation {kind!r}")
    return a


def _activation_derivative(z: np.ndarray, a: np.ndarray, kind: str, slope: float) -> np.ndarray:
    """da/dz cell by cell; ReLU'(0) = 0 and leaky ReLU'(0) = slope, as the contract fixes."""
    d = np.zeros_like(z)
    for index, t in np.ndenumerate(z):
        if kind == "relu":
            d[index] = 1.0 if t > 0 else 0.0
        elif kind == "leaky_relu":
            d[index] = 1.0 if t > 0 else slope
        elif kind == "sigmoid":
            d[index] = a[index] * (1.0 - a[index])
        elif kind == "tanh":
            d[index] = 1.0 - a[index] * a[index]
        else:
            d[index] = 1.0
    return d


def _pool_forward(a: np.ndarray, geometry) -> tuple[np.ndarray, list]:
    """Pooled maps and, per output cell, the input cells that receive its gradient with weights."""
    if geometry is None:
        routes = [((k, i, j), [((k, i, j), 1.0)]) for (k, i, j), _ in np.ndenumerate(a)]
        return a.copy(), routes
    kind, ph, pw, sh, sw = geometry
    n_maps, height, width = a.shape
    out_h = (height - ph) // sh + 1
    out_w = (width - pw) // sw + 1
    q = np.zeros((n_maps, out_h, out_w))
    routes = []
    for k in range(n_maps):
        for oy in range(out_h):
            for ox in range(out_w):
                cells = [(k, oy * sh + i, ox * sw + j) for i in range(ph) for j in range(pw)]
                if kind == "max":
                    best = cells[0]
                    for cell in cells[1:]:  # row-major; strict '>' keeps the first maximum
                        if a[cell] > a[best]:
                            best = cell
                    q[k, oy, ox] = a[best]
                    routes.append(((k, oy, ox), [(best, 1.0)]))
                elif kind == "avg":
                    total = 0.0
                    for cell in cells:
                        total += a[cell]
                    q[k, oy, ox] = total / len(cells)
                    routes.append(((k, oy, ox), [(cell, 1.0 / len(cells)) for cell in cells]))
                else:
                    raise ValueError(f"unknown pool kind {kind!r}")
    return q, routes


def _log_softmax_parts(s: np.ndarray) -> tuple[np.ndarray, float]:
    """Stable softmax probabilities and log-sum-exp of the logits s."""
    s_max = max(s)
    exps = np.array([math.exp(t - s_max) for t in s])
    total = float(sum(exps))
    return exps / total, s_max + math.log(total)


# ----------------------------------------------------------------------------- one sample


def _as_chw(array: Any) -> np.ndarray:
    x = np.array(array, dtype=np.float64)
    return x[None, :, :] if x.ndim == 2 else x


def forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, W: np.ndarray, B: np.ndarray, label_index: int, settings: dict
) -> dict:
    """Forward pass of one input x (C x H x W) with filters w (K x C x kh x kw)."""
    xp = _pad(x, settings["padding"])
    z, z_magnitude = _conv(xp, w, b, settings["stride"])
    a = _activate(z, settings["activation"], settings["slope"])
    geometry = pool_geometry(settings["pool"], z.shape[1], z.shape[2])
    q, routes = _pool_forward(a, geometry)
    f = np.array(
        [q[k, i, j] for k in range(q.shape[0]) for i in range(q.shape[1]) for j in range(q.shape[2])]
    )  # filter-major, then row-major
    s = np.zeros(W.shape[0])
    for c in range(W.shape[0]):
        total = 0.0
        for n in range(W.shape[1]):
            total += W[c, n] * f[n]
        s[c] = total + B[c]
    p, log_sum_exp = _log_softmax_parts(s)
    L = log_sum_exp - s[label_index]  # -log p_y, stably
    return {
        "xp": xp,
        "z": z,
        "z_magnitude": z_magnitude,
        "a": a,
        "q": q,
        "routes": routes,
        "f": f,
        "s": s,
        "p": p,
        "L": L,
    }


def backward(fwd: dict, w: np.ndarray, W: np.ndarray, label_index: int, settings: dict) -> dict:
    """Gradients of the sample's loss with respect to every parameter (chain rule, by hand)."""
    y = np.zeros(W.shape[0])
    y[label_index] = 1.0
    dL_ds = fwd["p"] - y
    f = fwd["f"]
    dL_dW = np.zeros_like(W)
    for c in range(W.shape[0]):
        for n in range(W.shape[1]):
            dL_dW[c, n] = dL_ds[c] * f[n]
    dL_dB = dL_ds.copy()
    dL_df = np.zeros(W.shape[1])
    for n in range(W.shape[1]):
        total = 0.0
        for c in range(W.shape[0]):
            total += W[c, n] * dL_ds[c]
        dL_df[n] = total
    q = fwd["q"]
    dL_dq = dL_df.reshape(q.shape)
    dL_da = np.zeros_like(fwd["a"])
    for out_cell, targets in fwd["routes"]:
        for cell, share in targets:
            dL_da[cell] += share * dL_dq[out_cell]
    da_dz = _activation_derivative(fwd["z"], fwd["a"], settings["activation"], settings["slope"])
    dL_dz = dL_da * da_dz
    xp = fwd["xp"]
    stride = settings["stride"]
    n_filters, channels, kh, kw = w.shape
    dL_dw = np.zeros_like(w)
    dL_db = np.zeros(n_filters)
    for k in range(n_filters):
        for oy in range(dL_dz.shape[1]):
            for ox in range(dL_dz.shape[2]):
                g = dL_dz[k, oy, ox]
                dL_db[k] += g
                for c in range(channels):
                    for i in range(kh):
                        for j in range(kw):
                            dL_dw[k, c, i, j] += g * xp[c, oy * stride + i, ox * stride + j]
    return {"dL_ds": dL_ds, "dL_dW": dL_dW, "dL_dB": dL_dB, "dL_dw": dL_dw, "dL_db": dL_db}


# ----------------------------------------------------------------------------- the run


def _tolist(array: np.ndarray) -> Any:
    return [float(t) for t in array] if array.ndim == 1 else [_tolist(row) for row in array]


def reference_run(scenario: dict, conv_magnitudes: bool = False) -> dict:
    """Every number of the scenario's run, in the contract's `symcnn values` JSON structure.

    With conv_magnitudes=True each step also carries "conv_magnitude" (K x H' x W'): per conv
    cell, the sum of |w x| over its terms plus |b|, for judging rounding-level ambiguity."""
    classes = list(scenario["classes"])
    conv = scenario.get("conv") or {}
    kind, slope = _activation_spec(scenario.get("activation", "relu"))
    settings = {
        "stride": int(conv.get("stride", 1)),
        "padding": int(conv.get("padding", 0)),
        "activation": kind,
        "slope": slope,
        "pool": scenario.get("pool", "none"),
    }
    filter_specs = conv["filters"]
    filter_ndims = [np.array(spec["weights"], dtype=np.float64).ndim for spec in filter_specs]
    w = np.array([_as_chw(spec["weights"]) for spec in filter_specs])  # K x C x kh x kw
    b = np.array([float(spec.get("bias", 0.0)) for spec in filter_specs])
    W = np.array(scenario["dense"]["weights"], dtype=np.float64)
    B = np.array(scenario["dense"]["biases"], dtype=np.float64)
    training = scenario.get("training") or {}
    eta = float(training["learning_rate"])
    iterations = int(training.get("iterations", 1))
    update_mode = training.get("update", "per_sample")
    update_filters = bool(training.get("update_filters", False))

    samples = [(spec["name"], spec["label"], _as_chw(spec["pixels"])) for spec in scenario["inputs"]]

    def filters_as_given(array: np.ndarray) -> list:
        return [_tolist(array[k, 0]) if filter_ndims[k] == 2 else _tolist(array[k]) for k in range(array.shape[0])]

    def apply_update(dW, dB, dw, db) -> None:
        nonlocal W, B, w, b
        W = W - eta * dW
        B = B - eta * dB
        if update_filters:
            w = w - eta * dw
            b = b - eta * db

    def snapshot(iteration: int, after: str | None) -> dict:
        return {
            "iteration": iteration,
            "after": after,
            "dense_weights": _tolist(W),
            "dense_biases": _tolist(B),
            "filters": filters_as_given(w),
            "filter_biases": _tolist(b),
        }

    steps: list[dict] = []
    updates: list[dict] = []
    for iteration in range(1, iterations + 1):
        sums = [np.zeros_like(W), np.zeros_like(B), np.zeros_like(w), np.zeros_like(b)]
        for name, label, x in samples:
            y_index = classes.index(label)
            fwd = forward(x, w, b, W, B, y_index, settings)
            grads = backward(fwd, w, W, y_index, settings)
            steps.append(
                {
                    "iteration": iteration,
                    "sample": name,
                    "label": label,
                    "conv": _tolist(fwd["z"]),
                    "activated": _tolist(fwd["a"]),
                    "pooled": _tolist(fwd["q"]),
                    "features": _tolist(fwd["f"]),
                    "logits": _tolist(fwd["s"]),
                    "probs": _tolist(fwd["p"]),
                    "loss": float(fwd["L"]),
                    "grad_logits": _tolist(grads["dL_ds"]),
                    "grad_dense_weights": _tolist(grads["dL_dW"]),
                    "grad_dense_biases": _tolist(grads["dL_dB"]),
                    "grad_filters": filters_as_given(grads["dL_dw"]),
                    "grad_filter_biases": _tolist(grads["dL_db"]),
                }
            )
            if conv_magnitudes:
                steps[-1]["conv_magnitude"] = _tolist(fwd["z_magnitude"])
            parts = (grads["dL_dW"], grads["dL_dB"], grads["dL_dw"], grads["dL_db"])
            if update_mode == "per_sample":
                apply_update(*parts)
                updates.append(snapshot(iteration, name))
            else:
                for total, part in zip(sums, parts, strict=True):
                    total += part
        if update_mode in ("batch_mean", "batch_sum"):
            scale = 1.0 / len(samples) if update_mode == "batch_mean" else 1.0
            apply_update(*(total * scale for total in sums))
            updates.append(snapshot(iteration, None))
        elif update_mode != "per_sample":
            raise ValueError(f"unknown update mode {update_mode!r}")

    final = []
    for name, label, x in samples:
        fwd = forward(x, w, b, W, B, classes.index(label), settings)
        final.append({"sample": name, "logits": _tolist(fwd["s"]), "probs": _tolist(fwd["p"]), "loss": float(fwd["L"])})

    return {"scenario": scenario["name"], "classes": classes, "steps": steps, "updates": updates, "final": final}
