"""Helpers for the network-stack tests (test_stacks.py, test_stacks_parsing.py): the PyTorch oracle
for any `layers` scenario, the hypothesis strategy of random stacks, and the test for draws that sit on
a ReLU kink or a max-pool tie.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

import symcnn

try:
    from reference import stack_spec
except ImportError:  # tests/ imported as a package
    from tests.reference import stack_spec


def _extras(draw, layers: list[dict], activations, height: int, width: int) -> tuple[int, int]:
    """Up to two activation or pool layers, any order; returns the feature maps' new height and width."""
    for kind in draw(st.lists(st.sampled_from(["activation", "pool"]), max_size=2)):
        if kind == "activation":
            layers.append({"activation": draw(activations)})
            continue
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
    return height, width


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
    """A valid `layers` scenario: 0-3 conv layers, each followed by up to two activation or pool layers
    in any order (every stride, padding, channel and pool option; sometimes also on the image itself),
    then 1-3 dense layers with activations between them. Shapes come from hypothesis, values from a
    seeded generator (uniform floats, so kinks and ties are rare and are then skipped, see `degenerate`)."""
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
    if not draw(st.integers(0, 4)):  # now and then an activation or a pool right on the image
        height, width = _extras(draw, layers, activations, height, width)
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
        height, width = _extras(draw, layers, activations, height, width)
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
