"""Dense layer: o = W f + B on the flattened input (channel-major, then row-major);
backward dL/dW = δ fᵀ, dL/dB = δ, dL/df = Wᵀ δ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ScenarioError
from ..scenario.checks import as_array, as_mapping, as_text, dims
from .conv import NOISE


@dataclass(frozen=True)
class Dense:
    weights: np.ndarray  # outputs x inputs
    biases: np.ndarray
    name: str = "dense1"
    layer: ClassVar[str] = "dense"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int]:
        return (self.weights.shape[0],)

    def parameters(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.weights, dtype=np.float64), np.array(self.biases, dtype=np.float64)


def parse(value: Any, path: str, outputs: int | None, inputs: int, name: str = "dense1") -> Dense:
    """``{weights: outputs x inputs, biases: [outputs]}``; ``outputs`` is the class count for the last
    layer (None: any). The legacy key speaks of classes and features."""
    legacy = path == "dense"
    keys = ("weights", "biases") + (() if legacy else ("name",))
    data = as_mapping(value, path, keys, ("weights", "biases"))
    if "name" in data:
        name = as_text(data["name"], f"{path}.name")
    what = "classes x features" if legacy else "outputs x inputs"
    weights = as_array(data["weights"], f"{path}.weights", (2,), f"{what} numbers")
    rows = weights.shape[0] if outputs is None else outputs
    if weights.shape != (rows, inputs):
        last = "" if legacy or outputs is None else ", one row per class: the last layer is the classifier"
        raise ScenarioError(f"{path}.weights", f"expected {rows}x{inputs} ({what}{last}), got {dims(weights.shape)}")
    one = "one number per class" if legacy else "one number per output"
    biases = as_array(data["biases"], f"{path}.biases", (1,), one)
    if biases.shape != (rows,):
        each = "one per class" if legacy else "one per output"
        raise ScenarioError(f"{path}.biases", f"expected {rows} values ({each}), got {biases.shape[0]}")
    return Dense(weights, biases, name)


def forward(f: np.ndarray, W: np.ndarray, B: np.ndarray, snap: bool = False):
    """o = W f + B; with ``snap`` (a hidden layer, whose output meets an activation's kink) values within
    rounding noise of 0 become exactly 0, as in the conv layer. Returns (o, noise bound)."""
    o = W @ f + B
    noise = NOISE * (np.abs(W) @ np.abs(f) + np.abs(B))
    return (np.where(np.abs(o) <= noise, 0.0, o) if snap else o), noise


def backward(dL_do: np.ndarray, f: np.ndarray, W: np.ndarray):
    """dL/dW, dL/dB, dL/df."""
    return np.outer(dL_do, f), dL_do.copy(), W.T @ dL_do
