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

__all__ = [
    "reference_run",
    "reference_stack_run",
    "conv_input_gradient_scatter",
    "stack_spec",
    "forward",
    "backward",
    "pool_geometry",
]


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
    if isinstance(activation, str):  # `leaky_relu` alone means slope 0.01 (the contract)
        return activation, 0.01 if activation == "leaky_relu" else 0.0
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

    optimizer = training.get("optimizer", "sgd")
    optimizer = {"kind": optimizer} if isinstance(optimizer, str) else dict(optimizer)
    buffers: dict = {}  # per parameter tensor: PyTorch's momentum_buffer / exp_avg, exp_avg_sq
    count = 0

    def optimizer_step(name: str, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """torch.optim.SGD (dampening 0) / torch.optim.Adam (amsgrad off), as PyTorch's for-loop code
        writes them: the first momentum buffer is a copy of g; Adam divides sqrt(v) by sqrt(1 - beta2^t)."""
        kind = optimizer["kind"]
        if kind == "sgd":
            return p - eta * g
        if kind == "momentum":
            mu = float(optimizer.get("momentum", 0.9))
            buf = g.copy() if name not in buffers else mu * buffers[name]["velocity"] + g
            buffers[name] = {"velocity": buf}
            direction = g + mu * buf if optimizer.get("nesterov", False) else buf
            return p - eta * direction
        beta1, beta2 = (float(v) for v in optimizer.get("betas", (0.9, 0.999)))
        eps = float(optimizer.get("eps", 1e-8))
        old = buffers.get(name, {"m": np.zeros_like(p), "v": np.zeros_like(p)})
        m = old["m"] + (1 - beta1) * (g - old["m"])  # torch's lerp_
        v = beta2 * old["v"] + (1 - beta2) * g * g
        buffers[name] = {"m": m, "v": v}
        step_size = eta / (1 - beta1**count)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**count) + eps
        return p - step_size * m / denom

    def apply_update(dW, dB, dw, db) -> None:
        nonlocal W, B, w, b, count
        count += 1
        W = optimizer_step("dense_weights", W, dW)
        B = optimizer_step("dense_biases", B, dB)
        if update_filters:
            w = optimizer_step("filters", w, dw)
            b = optimizer_step("filter_biases", b, db)

    def snapshot(iteration: int, after: str | None) -> dict:
        record = {
            "iteration": iteration,
            "after": after,
            "dense_weights": _tolist(W),
            "dense_biases": _tolist(B),
            "filters": filters_as_given(w),
            "filter_biases": _tolist(b),
        }
        if "optimizer" in training:
            record["step"] = count
        for name, state in buffers.items():
            for key, value in state.items():
                record[f"{key}_{name}"] = filters_as_given(value) if name == "filters" else _tolist(value)
        return record

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


# ============================================================================= network stacks
#
# The contract's "Network stacks (`layers`)" section, again from the contract only: a list of layers
# applied in order, each with a forward pass and a backward pass written as explicit loops. The input
# gradient of a conv layer is scattered cell by cell (each output cell sends g * w back onto the padded
# window it read), which is a different route from the "full correlation with the flipped filter" the
# engine documents; tests/test_stacks.py checks that rule separately.


def stack_spec(scenario: dict) -> list[dict]:
    """The scenario's layers as plain dicts {kind, name, ...}, default names applied (kind + count).
    The legacy keys mean [conv, activation, pool, dense], a missing or `none` pool left out."""
    if "layers" in scenario:
        items = [next(iter(item.items())) for item in scenario["layers"]]
    else:
        items = [("conv", scenario["conv"]), ("activation", scenario.get("activation", "relu"))]
        pool = scenario.get("pool", "none")
        if pool not in (None, "none") and pool.get("kind") != "none":
            items.append(("pool", pool))
        items.append(("dense", scenario["dense"]))
    counts: dict[str, int] = {}
    out = []
    for kind, body in items:
        counts[kind] = counts.get(kind, 0) + 1
        name = body.get("name") if isinstance(body, dict) else None
        layer = {"kind": kind, "name": name or f"{kind}{counts[kind]}"}
        if kind == "conv":
            ndims = [np.array(f["weights"], dtype=np.float64).ndim for f in body["filters"]]
            layer.update(
                stride=int(body.get("stride", 1)),
                padding=int(body.get("padding", 0)),
                ndims=ndims,
                w=np.array([_as_chw(f["weights"]) for f in body["filters"]]),
                b=np.array([float(f.get("bias", 0.0)) for f in body["filters"]]),
            )
        elif kind == "activation":
            layer["activation"] = _activation_spec(body)
        elif kind == "pool":
            layer["pool"] = body
        else:
            layer.update(w=np.array(body["weights"], dtype=np.float64), b=np.array(body["biases"], dtype=np.float64))
        out.append(layer)
    return out


def conv_input_gradient_scatter(
    g: np.ndarray, w: np.ndarray, stride: int, padding: int, shape: tuple[int, int, int]
) -> np.ndarray:
    """dL/dx (C x H x W) of a conv layer by the chain rule itself: output cell (k, i, j) read
    x_padded[c, i*stride + u, j*stride + v] with weight w[k, c, u, v]."""
    channels, height, width = shape
    n_filters, _, kh, kw = w.shape
    dxp = np.zeros((channels, height + 2 * padding, width + 2 * padding))
    for k in range(n_filters):
        for i in range(g.shape[1]):
            for j in range(g.shape[2]):
                for c in range(channels):
                    for u in range(kh):
                        for v in range(kw):
                            dxp[c, i * stride + u, j * stride + v] += g[k, i, j] * w[k, c, u, v]
    dx = np.zeros(shape)
    for c in range(channels):
        for r in range(height):
            for q in range(width):
                dx[c, r, q] = dxp[c, r + padding, q + padding]
    return dx


def _stack_forward(layers: list[dict], params: list, x: np.ndarray) -> tuple[list[dict], np.ndarray]:
    records, h = [], x
    for layer, p in zip(layers, params):
        rec: dict = {"input": h}
        if layer["kind"] == "conv":
            xp = _pad(h, layer["padding"])
            out, magnitude = _conv(xp, p[0], p[1], layer["stride"])
            rec.update(xp=xp, magnitude=magnitude)
        elif layer["kind"] == "activation":
            out = _activate(h, *layer["activation"])
        elif layer["kind"] == "pool":
            geometry = pool_geometry(layer["pool"], h.shape[1], h.shape[2])
            out, rec["routes"] = _pool_forward(h, geometry)
        else:
            f = h.reshape(-1)  # channel-major, then row-major (C order)
            W, B = p
            out = np.zeros(W.shape[0])
            magnitude = np.zeros(W.shape[0])
            for r in range(W.shape[0]):
                total, size = 0.0, abs(B[r])
                for n in range(W.shape[1]):
                    total += W[r, n] * f[n]
                    size += abs(W[r, n] * f[n])
                out[r] = total + B[r]
                magnitude[r] = size
            rec.update(f=f, magnitude=magnitude)
        rec["output"] = out
        records.append(rec)
        h = out
    return records, h


def _stack_backward(layers: list[dict], params: list, records: list[dict], g: np.ndarray) -> np.ndarray:
    for layer, p, rec in zip(reversed(layers), reversed(params), reversed(records)):
        rec["grad_output"] = g
        h = rec["input"]
        if layer["kind"] == "conv":
            w, stride, xp = p[0], layer["stride"], rec["xp"]
            n_filters, channels, kh, kw = w.shape
            dw, db = np.zeros_like(w), np.zeros(n_filters)
            for k in range(n_filters):
                for i in range(g.shape[1]):
                    for j in range(g.shape[2]):
                        db[k] += g[k, i, j]
                        for c in range(channels):
                            for u in range(kh):
                                for v in range(kw):
                                    dw[k, c, u, v] += g[k, i, j] * xp[c, i * stride + u, j * stride + v]
            rec["grads"] = (dw, db)
            g = conv_input_gradient_scatter(g, w, stride, layer["padding"], h.shape)
        elif layer["kind"] == "activation":
            g = g * _activation_derivative(h, rec["output"], *layer["activation"])
            rec["grads"] = None
        elif layer["kind"] == "pool":
            dh = np.zeros_like(h)
            for out_cell, targets in rec["routes"]:
                for cell, share in targets:
                    dh[cell] += share * g[out_cell]
            g, rec["grads"] = dh, None
        else:
            W, f = p[0], rec["f"]
            dW = np.zeros_like(W)
            df = np.zeros(W.shape[1])
            for r in range(W.shape[0]):
                for n in range(W.shape[1]):
                    dW[r, n] = g[r] * f[n]
                    df[n] += W[r, n] * g[r]
            rec["grads"] = (dW, g.copy())
            g = df.reshape(h.shape)
    return g


def _weights_as_given(layer: dict, w: np.ndarray) -> Any:
    if layer["kind"] == "dense":
        return _tolist(w)
    return [_tolist(w[k, 0]) if layer["ndims"][k] == 2 else _tolist(w[k]) for k in range(w.shape[0])]


def reference_stack_run(scenario: dict, magnitudes: bool = False) -> dict:
    """The contract's per-layer keys of `symcnn values` for any stack (legacy keys included):
    steps[].layers[], grad_input, logits, probs, loss, grad_logits; updates[].layers[]; final[].layers[].

    With magnitudes=True each step's conv and dense entries carry "magnitude": per output cell the sum
    of the absolute values of its terms (the scale of its rounding error), to spot kinks and ties that
    rounding decides."""
    classes = list(scenario["classes"])
    layers = stack_spec(scenario)
    training = scenario["training"]
    eta = float(training["learning_rate"])
    mode = training.get("update", "per_sample")
    update_filters = bool(training.get("update_filters", False))
    params = [(layer["w"].copy(), layer["b"].copy()) if "w" in layer else None for layer in layers]
    learns = [layer["kind"] == "dense" or (layer["kind"] == "conv" and update_filters) for layer in layers]
    samples = [
        (spec["name"], spec["label"], _as_chw(spec["pixels"]), np.array(spec["pixels"]).ndim)
        for spec in scenario["inputs"]
    ]

    def one(x: np.ndarray, label: str, backward: bool) -> dict:
        records, s = _stack_forward(layers, params, x)
        p, log_sum_exp = _log_softmax_parts(s)
        y = classes.index(label)
        out = {"records": records, "logits": s, "probs": p, "loss": float(log_sum_exp - s[y])}
        if backward:
            g = p.copy()
            g[y] -= 1.0
            out["grad_logits"] = g
            out["grad_input"] = _stack_backward(layers, params, records, g)
        return out

    def entries(records: list[dict], backward: bool) -> list[dict]:
        result = []
        for layer, rec in zip(layers, records):
            entry = {"kind": layer["kind"], "name": layer["name"], "output": _tolist(rec["output"])}
            if backward:
                entry["grad_output"] = _tolist(rec["grad_output"])
                if rec["grads"] is not None:
                    entry["grad_weights"] = _weights_as_given(layer, rec["grads"][0])
                    entry["grad_biases"] = _tolist(rec["grads"][1])
            if magnitudes and "magnitude" in rec:
                entry["magnitude"] = _tolist(rec["magnitude"])
            result.append(entry)
        return result

    def step(grads: list, scale: float) -> None:
        for n, (g, learn) in enumerate(zip(grads, learns)):
            if g is not None and learn:
                params[n] = (params[n][0] - eta * scale * g[0], params[n][1] - eta * scale * g[1])

    def snapshot(iteration: int, after: str | None) -> dict:
        return {
            "iteration": iteration,
            "after": after,
            "layers": [
                {"name": layer["name"], "weights": _weights_as_given(layer, p[0]), "biases": _tolist(p[1])}
                for layer, p, learn in zip(layers, params, learns)
                if learn
            ],
        }

    steps, updates = [], []
    for iteration in range(1, int(training.get("iterations", 1)) + 1):
        total = None
        for name, label, x, ndim in samples:
            values = one(x, label, True)
            dx = values["grad_input"]
            steps.append(
                {
                    "iteration": iteration,
                    "sample": name,
                    "label": label,
                    "layers": entries(values["records"], True),
                    "grad_input": _tolist(dx[0] if ndim == 2 else dx),
                    "logits": _tolist(values["logits"]),
                    "probs": _tolist(values["probs"]),
                    "loss": values["loss"],
                    "grad_logits": _tolist(values["grad_logits"]),
                }
            )
            grads = [rec["grads"] for rec in values["records"]]
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
    for name, label, x, _ in samples:
        values = one(x, label, False)
        final.append(
            {
                "sample": name,
                "layers": entries(values["records"], False),
                "logits": _tolist(values["logits"]),
                "probs": _tolist(values["probs"]),
                "loss": values["loss"],
            }
        )
    return {"scenario": scenario["name"], "classes": classes, "steps": steps, "updates": updates, "final": final}
