"""Activation layer: a = f(z) elementwise; backward dL/dz = dL/da * f'(z), ReLU'(0) = 0, leaky'(0) = slope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ScenarioError
from ..scenario.checks import as_mapping, as_number, as_text, describe

ACTIVATIONS = ("relu", "none", "sigmoid", "tanh", "leaky_relu")


@dataclass(frozen=True)
class Activation:
    kind: str  # relu | none | sigmoid | tanh | leaky_relu
    slope: float = 0.0
    name: str = "activation1"
    layer: ClassVar[str] = "activation"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)


def parse(value: Any, path: str = "activation", name: str = "activation1") -> Activation:
    """``relu`` or ``{kind: leaky_relu, slope: s}``; in a stack also ``{kind: ..., name: ...}``."""
    if isinstance(value, Mapping):
        keys = ("kind", "slope") + (("name",) if path != "activation" else ())
        data = as_mapping(value, path, keys, ("kind",))
        if "name" in data:
            name = as_text(data["name"], f"{path}.name")
        kind = data["kind"]
        if kind == "leaky_relu":
            return Activation("leaky_relu", as_number(data.get("slope", 0.01), f"{path}.slope"), name)
        if "slope" in data:
            raise ScenarioError(f"{path}.slope", "only leaky_relu takes a slope")
        return parse(kind, path, name)
    if value == "leaky_relu":
        return Activation("leaky_relu", 0.01, name)
    if value not in ACTIVATIONS:
        raise ScenarioError(path, f"unknown activation {describe(value)}; expected one of {', '.join(ACTIVATIONS)}")
    return Activation(value, 0.0, name)


def forward(z: np.ndarray, activation: Activation) -> np.ndarray:
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


def derivative(z: np.ndarray, a: np.ndarray, activation: Activation) -> np.ndarray:
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
