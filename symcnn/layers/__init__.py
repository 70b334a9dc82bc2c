"""The layer kinds of a network, one module each (parse, forward next to backward), and the stack parser.

A network is a list of layers applied in order, then softmax and cross-entropy (``softmax_ce``). The
legacy scenario keys ``conv``, ``activation``, ``pool``, ``dense`` are the stack
``[conv, activation, pool, dense]`` (a ``pool: none`` left out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ScenarioError
from ..scenario.checks import as_list, describe
from . import activation, conv, dense, pool
from .activation import Activation
from .conv import Conv, Filter
from .dense import Dense
from .pool import Pool

Layer = Conv | Activation | Pool | Dense
MODULES = {"conv": conv, "activation": activation, "pool": pool, "dense": dense}
KINDS = tuple(MODULES)

__all__ = [
    "Activation",
    "Conv",
    "Dense",
    "Filter",
    "Layer",
    "KINDS",
    "MODULES",
    "Pool",
    "legacy_layers",
    "parse_layers",
]


def legacy_layers(c: Conv, a: Activation, p: Pool, d: Dense) -> tuple[Layer, ...]:
    """The stack the four legacy keys mean."""
    return (c, a, d) if p.kind == "none" else (c, a, p, d)


def parse_layers(value: Any, shape: tuple[int, int, int], classes: int) -> tuple[Layer, ...]:
    """``layers:`` -> layers with their default names (kind and count: conv1, pool1, dense2, ...),
    checked against the shapes flowing through them; ``shape`` is the input's (C, H, W)."""
    items = as_list(value, "layers")
    counts = dict.fromkeys(KINDS, 0)
    layers: list[Layer] = []
    names: dict[str, int] = {}
    flat = False  # a dense layer has been seen: the data is a vector from here on
    for i, item in enumerate(items):
        path = f"layers[{i}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise ScenarioError(path, f"expected one of {', '.join(KINDS)} as the only key, got {describe(item)}")
        ((kind, body),) = item.items()
        if kind not in MODULES:
            raise ScenarioError(path, f"unknown layer kind {describe(kind)}; expected one of {', '.join(KINDS)}")
        path = f"{path}.{kind}"
        counts[kind] += 1
        default = f"{kind}{counts[kind]}"
        if kind in ("conv", "pool") and flat:
            raise ScenarioError(path, f"a {kind} layer must come before the first dense layer")
        layer = _parse_one(kind, body, path, shape, default, classes if i == len(items) - 1 else None)
        if layer.name in names:
            raise ScenarioError(
                f"{path}.name" if isinstance(body, Mapping) and "name" in body else path,
                f"layer name '{layer.name}' is already used by layers[{names[layer.name]}]",
            )
        names[layer.name] = i
        flat = flat or kind == "dense"
        shape = layer.output_shape(shape)
        layers.append(layer)
    if not isinstance(layers[-1], Dense):
        raise ScenarioError(f"layers[{len(items) - 1}]", "the last layer must be dense, one row per class")
    return tuple(layers)


def _parse_one(kind: str, body: Any, path: str, shape: tuple, name: str, classes: int | None) -> Layer:
    if kind == "conv":
        if len(shape) != 3:  # unreachable: conv after dense is refused before
            raise ScenarioError(path, "a conv layer needs feature maps")
        return conv.parse(body, path, shape, name, "the layer's input has")
    if kind == "activation":
        return activation.parse(body, path, name)
    if kind == "pool":
        return pool.parse(body, path, shape[1:], name)
    inputs = 1
    for n in shape:
        inputs *= n
    return dense.parse(body, path, classes, inputs, name)
