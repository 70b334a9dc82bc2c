"""Convolution layer: cross-correlation with stride and zero padding (PyTorch's conv2d).

Forward next to backward: z = w * x + b; dL/dw, dL/db, and dL/dx, the gradient that flows into the
layer's input (the full correlation of dL/dz with the flipped filter, stride and padding undone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ScenarioError
from ..scenario.checks import as_array, as_integer, as_list, as_mapping, as_number, as_text, dims, ensure_unique

# Rounding noise: a float sum whose exact value is 0 (0.1 + 0.2 - 0.3) lands within a few ulps of its
# terms' magnitude. Such a value is taken as exactly 0, and max-pool values that close as tied, so
# kinks (ReLU'(0) = 0) and ties (the first maximum wins) follow the exact arithmetic of the scenario.
NOISE = 16 * np.finfo(np.float64).eps


@dataclass(frozen=True)
class Filter:
    name: str
    weights: np.ndarray  # C x kh x kw
    bias: float
    ndim: int  # 2 or 3: the shape the file gave, kept for output


@dataclass(frozen=True)
class Conv:
    stride: int
    padding: int
    filters: tuple[Filter, ...]
    name: str = "conv1"
    layer: ClassVar[str] = "conv"

    @property
    def kernel_shape(self) -> tuple[int, int]:
        return self.filters[0].weights.shape[1:]

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        return (len(self.filters), *conv_output_shape(shape[1:], self.kernel_shape, self.stride, self.padding))

    def parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights K x C x kh x kw, biases K) as float arrays."""
        w = np.stack([f.weights for f in self.filters]).astype(np.float64)
        return w, np.array([f.bias for f in self.filters], dtype=np.float64)

    def as_given(self, w) -> list:
        """Per filter, in the shape the scenario gave (kh x kw or C x kh x kw)."""
        return [w[k][0] if f.ndim == 2 else w[k] for k, f in enumerate(self.filters)]


def conv_output_shape(image: tuple[int, int], kernel: tuple[int, int], stride: int, padding: int) -> tuple[int, int]:
    return tuple((n + 2 * padding - k) // stride + 1 for n, k in zip(image, kernel))


def parse(value: Any, path: str, shape: tuple[int, int, int], name: str, input_is: str = "the inputs have") -> Conv:
    """A conv layer from plain data; ``shape`` (C, H, W) is its input's."""
    keys = ("stride", "padding", "filters") + (("name",) if path != "conv" else ())
    data = as_mapping(value, path, keys, ("filters",))
    if "name" in data:
        name = as_text(data["name"], f"{path}.name")
    stride = as_integer(data.get("stride", 1), f"{path}.stride", 1)
    padding = as_integer(data.get("padding", 0), f"{path}.padding", 0)
    filters: list[Filter] = []
    for i, item in enumerate(as_list(data["filters"], f"{path}.filters")):
        flt = _filter(item, f"{path}.filters[{i}]")
        first = filters[0] if filters else flt
        _check_filter(flt, f"{path}.filters[{i}].weights", shape, padding, first, f"{path}.filters[0]", input_is)
        filters.append(flt)
    ensure_unique([f.name for f in filters], f"{path}.filters", "filter")
    return Conv(stride, padding, tuple(filters), name)


def _filter(item: Any, path: str) -> Filter:
    data = as_mapping(item, path, ("name", "weights", "bias"), ("name", "weights"))
    name = as_text(data["name"], f"{path}.name")
    weights = as_array(data["weights"], f"{path}.weights", (2, 3), "a filter: kh x kw or C x kh x kw numbers")
    ndim = weights.ndim
    if ndim == 2:
        weights = weights[None]
        weights.setflags(write=False)
    bias = as_number(data.get("bias", 0), f"{path}.bias")
    return Filter(name, weights, bias, ndim)


def _check_filter(flt: Filter, path: str, shape, padding: int, first: Filter, first_path: str, input_is: str) -> None:
    channels, height, width = shape
    weights, ndim = flt.weights, flt.ndim
    if weights.shape[0] != channels:
        raise ScenarioError(
            path,
            f"has {weights.shape[0]} channel(s), {input_is} {channels}" + (" (give C x kh x kw)" if ndim == 2 else ""),
        )
    if weights.shape != first.weights.shape:
        raise ScenarioError(
            path, f"expected {dims(first.weights.shape[-ndim:])} like {first_path}, got {dims(weights.shape[-ndim:])}"
        )
    kh, kw = weights.shape[1:]
    if kh > height + 2 * padding or kw > width + 2 * padding:
        raise ScenarioError(
            path, f"filter {kh}x{kw} is larger than the padded input {height + 2 * padding}x{width + 2 * padding}"
        )


# ---------------------------------------------------------------- forward next to backward


def windows_of(x: np.ndarray, kernel: tuple[int, int], stride: int, padding: int) -> np.ndarray:
    """C x H' x W' x kh x kw: the input window under each output cell (x zero-padded)."""
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    return sliding_window_view(xp, kernel, axis=(1, 2))[:, ::stride, ::stride]


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int):
    """x: C x H x W, w: K x C x kh x kw -> z: K x H' x W' (cross-correlation), the windows used, and
    each cell's rounding-noise bound (values within it are snapped to exactly 0)."""
    windows = windows_of(x, w.shape[2:], stride, padding)
    z = np.einsum("chwuv,kcuv->khw", windows, w) + b[:, None, None]
    noise = NOISE * (np.einsum("chwuv,kcuv->khw", np.abs(windows), np.abs(w)) + np.abs(b)[:, None, None])
    return np.where(np.abs(z) <= noise, 0.0, z), windows, noise


def backward(dL_dz: np.ndarray, windows: np.ndarray):
    """dL/dw (K x C x kh x kw) and dL/db (K)."""
    return np.einsum("khw,chwuv->kcuv", dL_dz, windows), dL_dz.sum(axis=(1, 2))


def input_gradient(dL_dz: np.ndarray, w: np.ndarray, stride: int, padding: int, shape: tuple[int, ...]) -> np.ndarray:
    """dL/dx (C x H x W): each output cell sends dL/dz times the filter back onto its window; summed,
    that is the full correlation of dL/dz (dilated by the stride) with the filter rotated by 180 degrees.
    One filter tap at a time, over every output cell at once (floats and exact numbers alike)."""
    channels, height, width = shape
    _, rows, cols = dL_dz.shape
    kh, kw = w.shape[2:]
    padded = np.zeros((channels, height + 2 * padding, width + 2 * padding), dtype=dL_dz.dtype)
    for c, u, v in np.ndindex(channels, kh, kw):
        if not w[:, c, u, v].any():
            continue  # a zero tap sends nothing back
        share = (w[:, c, u, v][:, None, None] * dL_dz).sum(axis=0)
        padded[c, u : u + stride * (rows - 1) + 1 : stride, v : v + stride * (cols - 1) + 1 : stride] += share
    return padded[:, padding : padding + height, padding : padding + width]


def flipped_terms(dL_dz_shape: tuple[int, ...], kernel: tuple[int, int], stride: int, padding: int, cell: tuple):
    """The (k, i, j, u, v) terms of dL/dx[c, r, q]: output cells (i, j) whose window covers input cell
    (r, q), with (u, v) the filter entry that met it. Read as a correlation with the flipped filter,
    rot180(w)[kh-1-u, kw-1-v] = w[u, v]."""
    _, r, q = cell
    kh, kw = kernel
    out = []
    for k in range(dL_dz_shape[0]):
        for i in range(dL_dz_shape[1]):
            for j in range(dL_dz_shape[2]):
                u, v = r + padding - i * stride, q + padding - j * stride
                if 0 <= u < kh and 0 <= v < kw:
                    out.append((k, i, j, u, v))
    return out
