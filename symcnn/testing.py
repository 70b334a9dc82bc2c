"""Check your own numbers (from your code, a spreadsheet or PyTorch) against symcnn's.

    from symcnn.testing import assert_matches
    assert_matches({"steps": [...]}, "four-images")                   # nested like the JSON
    assert_matches({"steps[0].probs": [0.786, 0.214]}, "four-images", atol=5e-4)   # or by path

Only the values you give are compared; the first difference raises AssertionError naming its path:
``steps[2].grad_dense_weights[1][4]: 0.1 != 0.0786``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .engine.numeric import run
from .errors import ScenarioError
from .scenario.sources import load
from .verify import TEXT_KEYS, lookup


def assert_matches(values, scenario, rtol: float = 1e-7, atol: float = 1e-10) -> None:
    """Raise AssertionError at the first of ``values`` that differs from the run of ``scenario``."""
    expected = run(load(scenario)).to_dict()
    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a dict shaped like `symcnn values` JSON, got {type(values).__name__}")
    for key, given in values.items():
        path = str(key)
        try:
            want = lookup(expected, path, path)
        except ScenarioError:
            raise AssertionError(f"{path}: symcnn has no such value") from None
        _compare(given, want, path, rtol, atol)


def _compare(given, want, path: str, rtol: float, atol: float) -> None:
    if isinstance(given, Mapping):
        _compare_mapping(given, want, path, rtol, atol)
    elif path.rsplit(".", 1)[-1] in TEXT_KEYS or isinstance(want, str) or want is None:
        if given != want:
            raise AssertionError(f"{path}: {given!r} != {want!r}")
    elif isinstance(want, list) and want and isinstance(want[0], Mapping):  # steps, updates, final
        if not isinstance(given, (list, tuple)) or len(given) != len(want):
            raise AssertionError(f"{path}: expected a list of {len(want)} records")
        for i, (g, w) in enumerate(zip(given, want)):
            _compare(g, w, f"{path}[{i}]", rtol, atol)
    else:
        _compare_numbers(given, want, path, rtol, atol)


def _compare_mapping(given, want, path: str, rtol: float, atol: float) -> None:
    if not isinstance(want, Mapping):
        raise AssertionError(f"{path}: got a mapping, expected {_shape_text(want)}")
    for key, value in given.items():
        if key not in want:
            raise AssertionError(f"{path}.{key}: symcnn has no such value")
        _compare(value, want[key], f"{path}.{key}", rtol, atol)


def _compare_numbers(given, want, path: str, rtol: float, atol: float) -> None:
    given_array = np.asarray(_to_numpy(given), dtype=np.float64)
    want_array = np.asarray(want, dtype=np.float64)
    if given_array.shape != want_array.shape:
        raise AssertionError(f"{path}: shape {given_array.shape} != {want_array.shape}")
    close = np.isclose(given_array, want_array, rtol=rtol, atol=atol) & np.isfinite(given_array)
    if not close.all():
        index = tuple(int(i) for i in np.argwhere(~close)[0])
        where = path + "".join(f"[{i}]" for i in index)
        raise AssertionError(f"{where}: {float(given_array[index])!r} != {float(want_array[index])!r}")


def _to_numpy(value):
    """Tensors (PyTorch, JAX, ...) and nested lists of them become plain arrays."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v) for v in value]
    return value


def _shape_text(value) -> str:
    return "a list" if isinstance(value, list) else "a number"
