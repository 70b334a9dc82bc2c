"""Softmax and cross-entropy, the head of every network: p = softmax(o), L = -log p_y; dL/do = p - y."""

from __future__ import annotations

import numpy as np


def forward(o: np.ndarray, y: int):
    """p = softmax(o) and L = -log p_y, both computed stably."""
    shifted = o - o.max()
    log_sum = np.log(np.exp(shifted).sum())
    p = np.exp(shifted - log_sum)
    return p, float(log_sum - shifted[y])


def backward(p: np.ndarray, y: int) -> np.ndarray:
    dL_do = p.copy()
    dL_do[y] -= 1.0
    return dL_do
