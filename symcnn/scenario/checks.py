"""Small validators for plain data read from YAML/JSON; each error names the key path."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ScenarioError


def as_mapping(data: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, Mapping):
        raise ScenarioError(path or "scenario", f"expected a mapping, got {describe(data)}")
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ScenarioError(join_path(path, str(key)), f"unknown key{extra}")
    for key in required:
        if key not in data:
            raise ScenarioError(join_path(path, key), "missing key")
    return dict(data)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"text '{value}'" if len(value) < 30 else "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def as_number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"expected a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise ScenarioError(path, "expected a finite number, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ScenarioError(path, f"expected a finite number, got {value}")
    return number


def as_integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
        raise ScenarioError(path, f"expected a whole number, got {describe(value)}")
    if value < minimum:
        raise ScenarioError(path, f"must be >= {minimum}, got {int(value)}")
    return int(value)


def as_text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ScenarioError(path, f"expected text, got {describe(value)}")
    text = str(value)
    if not text.strip():
        raise ScenarioError(path, "must not be empty")
    return text


def same_shape(shapes: list[tuple[int, ...]], where: str) -> tuple[int, ...]:
    """The one shape of a list's entries; a ScenarioError names the first entry that differs."""
    first = shapes[0]
    for i, shape in enumerate(shapes[1:], start=1):
        if len(shape) != len(first):
            raise ScenarioError(f"{where}[{i}]", "mixes numbers and lists")
        if shape != first:
            label = "row" if len(first) == 1 else "entry"
            raise ScenarioError(where, f"{label} {i} has {dims(shape)} values, expected {dims(first)}")
    return first


def as_array(value: Any, path: str, ndims: tuple[int, ...], what: str) -> np.ndarray:
    """A rectangular array of finite numbers with one of ``ndims`` dimensions."""

    expected = " or ".join(f"{n}-dimensional" for n in ndims)

    def shape_of(node: Any, where: str, depth: int) -> tuple[int, ...]:
        if not isinstance(node, list):
            if depth == 0:
                raise ScenarioError(where, f"expected {what}, got {describe(node)}")
            as_number(node, where)
            return ()
        if depth >= max(ndims):  # too deep already: count the rest without recursing (no RecursionError)
            while isinstance(node, list) and node:
                node, depth = node[0], depth + 1
            raise ScenarioError(path, f"expected {what} ({expected}), got {depth}-dimensional")
        if not node:
            raise ScenarioError(where, "must not be empty")
        shapes = [shape_of(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)]
        return (len(node), *same_shape(shapes, where))

    shape = shape_of(value, path, 0)
    if len(shape) not in ndims:
        raise ScenarioError(path, f"expected {what} ({expected}), got {len(shape)}-dimensional")
    array = np.array(value, dtype=np.float64)
    array.setflags(write=False)
    return array


def dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if len(shape) > 1 else str(shape[0])


def as_pair(value: Any, path: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, list):
        if len(value) != 2:
            raise ScenarioError(path, f"expected [h, w], got {len(value)} values")
        return (as_integer(value[0], f"{path}[0]", minimum), as_integer(value[1], f"{path}[1]", minimum))
    n = as_integer(value, path, minimum)
    return (n, n)


def ensure_unique(names: list[str], path: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ScenarioError(f"{path}[{i}].name", f"duplicate {what} name '{name}' (also {path}[{seen[name]}])")
        seen[name] = i


def as_list(value: Any, path: str, minimum: int = 1) -> list:
    if not isinstance(value, list):
        raise ScenarioError(path, f"expected a list, got {describe(value)}")
    if len(value) < minimum:
        raise ScenarioError(path, f"expected at least {minimum} entr{'y' if minimum == 1 else 'ies'}, got {len(value)}")
    return value
