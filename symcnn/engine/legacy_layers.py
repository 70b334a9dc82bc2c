"""The per-layer keys of a legacy scenario (conv, activation, pool, dense) from its exact derivation.

Every legacy scenario also reports `steps[].layers[]`, `grad_input`, `updates[].layers[]` and
`final[].layers[]`. They are the same numbers as the legacy keys (a conv layer's output is `conv`, the
dense layer's is `logits`, ...), so they are the legacy derivation's own groups under their new paths;
only dL/dx is new, computed exactly from dL/dz and the filters in force (the conv layer's input gradient).
Deriving the whole stack a second time would double the cost of `symcnn check` for nothing.
"""

from __future__ import annotations

from functools import partial

import mpmath
import numpy as np

from ..layers import conv as conv_layer
from .algebra import DPS
from .exact import Derivation, Group
from .fixed import combine
from .optimizers import STATE_KEYS

STEP_KEYS = {  # layer kind -> (layer key, legacy group)
    "conv": (
        ("output", "conv"),
        ("grad_output", "grad_conv"),
        ("grad_weights", "grad_filters"),
        ("grad_biases", "grad_filter_biases"),
    ),
    "activation": (("output", "activated"), ("grad_output", "grad_activated")),
    "pool": (("output", "pooled"), ("grad_output", "grad_pooled")),
    "dense": (
        ("output", "logits"),
        ("grad_output", "grad_logits"),
        ("grad_weights", "grad_dense_weights"),
        ("grad_biases", "grad_dense_biases"),
    ),
}
PARAMETERS = {"conv": ("filters", "filter_biases"), "dense": ("dense_weights", "dense_biases")}


class LegacyLayers:
    """(path, group) of every per-layer value of a legacy scenario, as ``StackDerivation.groups`` gives them."""

    def __init__(self, derivation: Derivation) -> None:
        self.derivation = derivation
        self.sc = derivation.scenario

    def groups(self):
        sc = self.sc
        for step in self.derivation.steps:
            for n, layer in enumerate(sc.layers):
                for key, legacy in STEP_KEYS[layer.layer]:
                    yield f"{step.path}.layers[{n}].{key}", step.groups[legacy]
            yield f"{step.path}.grad_input", self.grad_input(step)
        learning = [layer for layer in sc.layers if sc.learns(layer)]
        for update in self.derivation.updates:
            for m, layer in enumerate(learning):
                prefix = f"{update.path}.layers[{m}]"
                for part, key in enumerate(PARAMETERS[layer.layer]):
                    yield f"{prefix}.{('weights', 'biases')[part]}", update.groups[key]
                    for name, keys in STATE_KEYS.items():
                        if f"{name}_{key}" in update.groups:
                            yield f"{prefix}.state.{keys[part]}", update.groups[f"{name}_{key}"]
        for final in self.derivation.final:
            for n, layer in enumerate(sc.layers):
                yield f"{final.path}.layers[{n}].output", final.groups[STEP_KEYS[layer.layer][0][1]]

    def grad_input(self, step) -> Group:
        """dL/dx of a step, exactly: the conv layer's input gradient of dL/dz with the filters of the step."""
        sc = self.sc
        g, w = step.values["grad_conv"], step.values["filters"]
        shape = step.values["input"].shape
        with mpmath.workdps(DPS + 10):  # called after derive(), outside its precision
            # summed in whole numbers (engine/fixed.py): 60 times faster than 50-digit products
            scatter = partial(conv_layer.input_gradient, stride=sc.conv.stride, padding=sc.conv.padding, shape=shape)
            dx = combine(scatter, g, w)
        dx = sc.as_given(dx)
        return Group("grad_input", np.asarray(dx, dtype=object), None)
