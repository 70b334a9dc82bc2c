"""Pooling layer: max (the gradient goes to the first maximum in row-major order, as PyTorch) or
average (the gradient is shared equally); ``size: global`` pools each map to one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ScenarioError
from ..scenario.checks import as_mapping, as_pair, as_text, describe

POOL_KINDS = ("max", "avg")


@dataclass(frozen=True)
class Pool:
    kind: str  # none | max | avg
    size: tuple[int, int] | None = None  # None with is_global
    stride: tuple[int, int] | None = None
    is_global: bool = False
    name: str = "pool1"
    layer: ClassVar[str] = "pool"

    def output_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return (shape[0], *pool_output_shape(shape[1:], self))


def pool_window(pool: Pool, shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(size, stride) of the pooling window on a feature map of ``shape``."""
    if pool.is_global:
        return tuple(shape), tuple(shape)
    return pool.size, pool.stride


def winner_cell(i, j, winner, size: tuple[int, int], stride: tuple[int, int]):
    """Position in the feature map of cell ``winner`` (row-major index in the window) of window (i, j);
    works on numbers and on NumPy arrays alike."""
    return i * stride[0] + winner // size[1], j * stride[1] + winner % size[1]


def pool_output_shape(shape: tuple[int, int], pool: Pool) -> tuple[int, int]:
    if pool.kind == "none":
        return tuple(shape)
    size, stride = pool_window(pool, shape)
    return tuple((n - k) // s + 1 for n, k, s in zip(shape, size, stride))


def parse(value: Any, path: str, shape: tuple[int, int], name: str = "pool1") -> Pool:
    """``none`` (legacy key only) or ``{kind: max|avg, size: n | [h, w] | global, stride: ...}`` on
    feature maps of ``shape`` (H, W)."""
    stacked = path != "pool"
    if not stacked and (value is None or value == "none"):
        return Pool("none")
    keys = ("kind", "size", "stride") + (("name",) if stacked else ())
    data = as_mapping(value, path, keys, ("kind", "size"))
    if "name" in data:
        name = as_text(data["name"], f"{path}.name")
    kind = data["kind"]
    if kind == "none" and not stacked:
        return Pool("none")
    if kind not in POOL_KINDS:
        expected = "max or avg (leave the layer out for no pooling)" if stacked else "none, max or avg"
        raise ScenarioError(f"{path}.kind", f"unknown pool {describe(kind)}; expected {expected}")
    if data["size"] == "global":
        if "stride" in data:
            raise ScenarioError(f"{path}.stride", "a global pool takes no stride")
        return Pool(kind, None, None, True, name)
    size = as_pair(data["size"], f"{path}.size", 1)
    stride = as_pair(data.get("stride", list(size)), f"{path}.stride", 1)
    if size[0] > shape[0] or size[1] > shape[1]:
        raise ScenarioError(
            f"{path}.size", f"window {size[0]}x{size[1]} does not fit the {shape[0]}x{shape[1]} feature map"
        )
    return Pool(kind, size, stride, False, name)


def forward(a: np.ndarray, pool: Pool, noise: np.ndarray | None = None):
    """a: K x H' x W' -> m: K x H'' x W'' and the routing needed by the backward step (max: the index of
    the winning cell in each window; values within rounding ``noise`` of the maximum count as tied)."""
    if pool.kind == "none":
        return a.copy(), None
    (ph, pw), (sh, sw) = pool_window(pool, a.shape[1:])
    windows = sliding_window_view(a, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
    flat = windows.reshape(*windows.shape[:3], ph * pw)
    if pool.kind == "max":
        tolerance = 0.0 if noise is None else sliding_window_view(noise, (ph, pw), axis=(1, 2))[:, ::sh, ::sw]
        tolerance = np.broadcast_to(tolerance, windows.shape).reshape(flat.shape)
        winner = np.argmax(flat >= flat.max(axis=-1, keepdims=True) - 2 * tolerance, axis=-1)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0], winner
    return flat.mean(axis=-1), None


def backward(dL_dm: np.ndarray, shape: tuple, pool: Pool, winner: np.ndarray | None) -> np.ndarray:
    if pool.kind == "none":
        return dL_dm
    (ph, pw), (sh, sw) = pool_window(pool, shape[1:])
    dL_da = np.zeros(shape, dtype=dL_dm.dtype)
    k, i, j = np.indices(dL_dm.shape)
    if pool.kind == "max":
        np.add.at(dL_da, (k, *winner_cell(i, j, winner, (ph, pw), (sh, sw))), dL_dm)
        return dL_da
    share = dL_dm / (ph * pw)
    for u in range(ph):
        for v in range(pw):
            np.add.at(dL_da, (k, i * sh + u, j * sw + v), share)
    return dL_da
