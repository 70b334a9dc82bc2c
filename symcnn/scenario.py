"""Load a scenario (YAML/JSON file, built-in name or dict) and validate it into frozen dataclasses.

Every error names the key path where the problem is (``conv.filters[1].weights: ...``).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ScenarioError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ACTIVATIONS = ("relu", "none", "sigmoid", "tanh", "leaky_relu")
POOL_KINDS = ("max", "avg")
UPDATES = ("per_sample", "batch_mean", "batch_sum")
DISPLAY_KEYS = {"precision": int, "fractions": bool, "detail": str}

TOP_KEYS = (
    "name", "title", "description", "notes", "classes", "inputs", "conv", "activation",
    "pool", "dense", "training", "claims", "display",
)


@dataclass(frozen=True)
class Input:
    name: str
    label: str
    pixels: np.ndarray  # C x H x W, float64, read-only


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


@dataclass(frozen=True)
class Activation:
    kind: str  # relu | none | sigmoid | tanh | leaky_relu
    slope: float = 0.0


@dataclass(frozen=True)
class Pool:
    kind: str  # none | max | avg
    size: tuple[int, int] | None = None  # None with is_global
    stride: tuple[int, int] | None = None
    is_global: bool = False


@dataclass(frozen=True)
class Dense:
    weights: np.ndarray  # classes x features
    biases: np.ndarray


@dataclass(frozen=True)
class Training:
    learning_rate: float
    iterations: int
    update: str
    update_filters: bool


@dataclass(frozen=True)
class Claim:
    at: str
    value: float
    tol: float
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    classes: tuple[str, ...]
    inputs: tuple[Input, ...]
    conv: Conv
    activation: Activation
    pool: Pool
    dense: Dense
    training: Training
    claims: tuple[Claim, ...] = ()
    display: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = ""

    @property
    def channels(self) -> int:
        return self.inputs[0].pixels.shape[0]

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.inputs[0].pixels.shape[1:]

    @property
    def kernel_shape(self) -> tuple[int, int]:
        return self.conv.filters[0].weights.shape[1:]

    @property
    def conv_shape(self) -> tuple[int, int]:
        return conv_output_shape(self.input_shape, self.kernel_shape, self.conv.stride, self.conv.padding)

    @property
    def pooled_shape(self) -> tuple[int, int]:
        return pool_output_shape(self.conv_shape, self.pool)

    @property
    def n_features(self) -> int:
        h, w = self.pooled_shape
        return len(self.conv.filters) * h * w

    def label_index(self, sample: Input) -> int:
        return self.classes.index(sample.label)


def conv_output_shape(
    image: tuple[int, int], kernel: tuple[int, int], stride: int, padding: int
) -> tuple[int, int]:
    return tuple((n + 2 * padding - k) // stride + 1 for n, k in zip(image, kernel))


def pool_window(pool: Pool, shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(size, stride) of the pooling window on a feature map of ``shape``."""
    if pool.is_global:
        return tuple(shape), tuple(shape)
    return pool.size, pool.stride


def pool_output_shape(shape: tuple[int, int], pool: Pool) -> tuple[int, int]:
    if pool.kind == "none":
        return tuple(shape)
    size, stride = pool_window(pool, shape)
    return tuple((n - k) // s + 1 for n, k, s in zip(shape, size, stride))


# ---------------------------------------------------------------- validation helpers


def _keys(data: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, Mapping):
        raise ScenarioError(path or "scenario", f"expected a mapping, got {_kind(data)}")
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ScenarioError(_join(path, str(key)), f"unknown key{extra}")
    for key in required:
        if key not in data:
            raise ScenarioError(_join(path, key), "missing key")
    return dict(data)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
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


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise ScenarioError(path, "expected a finite number, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ScenarioError(path, f"expected a finite number, got {value}")
    return number


def _integer(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    ):
        raise ScenarioError(path, f"expected a whole number, got {_kind(value)}")
    if value < minimum:
        raise ScenarioError(path, f"must be >= {minimum}, got {int(value)}")
    return int(value)


def _text(value: Any, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ScenarioError(path, f"expected text, got {_kind(value)}")
    text = str(value)
    if not text.strip():
        raise ScenarioError(path, "must not be empty")
    return text


def _array(value: Any, path: str, ndims: tuple[int, ...], what: str) -> np.ndarray:
    """A rectangular array of finite numbers with one of ``ndims`` dimensions."""

    expected = " or ".join(f"{n}-dimensional" for n in ndims)

    def shape_of(node: Any, where: str, depth: int) -> tuple[int, ...]:
        if not isinstance(node, list):
            if depth == 0:
                raise ScenarioError(where, f"expected {what}, got {_kind(node)}")
            _number(node, where)
            return ()
        if depth >= max(ndims):  # too deep already: count the rest without recursing (no RecursionError)
            while isinstance(node, list) and node:
                node, depth = node[0], depth + 1
            raise ScenarioError(path, f"expected {what} ({expected}), got {depth}-dimensional")
        if not node:
            raise ScenarioError(where, "must not be empty")
        shapes = [shape_of(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node)]
        first = shapes[0]
        for i, shape in enumerate(shapes[1:], start=1):
            if len(shape) != len(first):
                raise ScenarioError(f"{where}[{i}]", "mixes numbers and lists")
            if shape != first:
                label = "row" if len(first) == 1 else "entry"
                raise ScenarioError(
                    where,
                    f"{label} {i} has {_dims(shape)} values, expected {_dims(first)}",
                )
        return (len(node), *first)

    shape = shape_of(value, path, 0)
    if len(shape) not in ndims:
        raise ScenarioError(path, f"expected {what} ({expected}), got {len(shape)}-dimensional")
    array = np.array(value, dtype=np.float64)
    array.setflags(write=False)
    return array


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape) if len(shape) > 1 else str(shape[0])


def _pair(value: Any, path: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, list):
        if len(value) != 2:
            raise ScenarioError(path, f"expected [h, w], got {len(value)} values")
        return (_integer(value[0], f"{path}[0]", minimum), _integer(value[1], f"{path}[1]", minimum))
    n = _integer(value, path, minimum)
    return (n, n)


def _unique(names: list[str], path: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ScenarioError(f"{path}[{i}].name", f"duplicate {what} name '{name}' (also {path}[{seen[name]}])")
        seen[name] = i


def _list(value: Any, path: str, minimum: int = 1) -> list:
    if not isinstance(value, list):
        raise ScenarioError(path, f"expected a list, got {_kind(value)}")
    if len(value) < minimum:
        raise ScenarioError(path, f"expected at least {minimum} entr{'y' if minimum == 1 else 'ies'}, got {len(value)}")
    return value


# ---------------------------------------------------------------- sections


def _classes(value: Any) -> tuple[str, ...]:
    items = _list(value, "classes", 2)
    classes = [_text(item, f"classes[{i}]") for i, item in enumerate(items)]
    for i, name in enumerate(classes):
        if name in classes[:i]:
            raise ScenarioError(f"classes[{i}]", f"duplicate class '{name}'")
    return tuple(classes)


def _inputs(value: Any, classes: tuple[str, ...]) -> tuple[Input, ...]:
    inputs = []
    for i, item in enumerate(_list(value, "inputs")):
        path = f"inputs[{i}]"
        data = _keys(item, path, ("name", "label", "pixels"), ("name", "label", "pixels"))
        name = _text(data["name"], f"{path}.name")
        label = _text(data["label"], f"{path}.label")
        if label not in classes:
            raise ScenarioError(f"{path}.label", f"'{label}' is not one of classes {list(classes)}")
        pixels = _array(data["pixels"], f"{path}.pixels", (2, 3), "an image: H x W or C x H x W numbers")
        if pixels.ndim == 2:
            pixels = pixels[None]
            pixels.setflags(write=False)
        if inputs and pixels.shape != inputs[0].pixels.shape:
            raise ScenarioError(
                f"{path}.pixels",
                f"shape {_dims(pixels.shape)} differs from inputs[0] ({_dims(inputs[0].pixels.shape)})",
            )
        inputs.append(Input(name, label, pixels))
    _unique([x.name for x in inputs], "inputs", "input")
    return tuple(inputs)


def _conv(value: Any, inputs: tuple[Input, ...]) -> Conv:
    data = _keys(value, "conv", ("stride", "padding", "filters"), ("filters",))
    stride = _integer(data.get("stride", 1), "conv.stride", 1)
    padding = _integer(data.get("padding", 0), "conv.padding", 0)
    channels, height, width = inputs[0].pixels.shape
    filters = []
    for i, item in enumerate(_list(data["filters"], "conv.filters")):
        path = f"conv.filters[{i}]"
        fdata = _keys(item, path, ("name", "weights", "bias"), ("name", "weights"))
        name = _text(fdata["name"], f"{path}.name")
        weights = _array(fdata["weights"], f"{path}.weights", (2, 3), "a filter: kh x kw or C x kh x kw numbers")
        ndim = weights.ndim
        if ndim == 2:
            weights = weights[None]
            weights.setflags(write=False)
        if weights.shape[0] != channels:
            raise ScenarioError(
                f"{path}.weights",
                f"has {weights.shape[0]} channel(s), the inputs have {channels}"
                + (" (give C x kh x kw)" if ndim == 2 else ""),
            )
        if filters and weights.shape != filters[0].weights.shape:
            raise ScenarioError(
                f"{path}.weights",
                f"expected {_dims(filters[0].weights.shape[-ndim:])} like conv.filters[0], got {_dims(weights.shape[-ndim:])}",
            )
        kh, kw = weights.shape[1:]
        if kh > height + 2 * padding or kw > width + 2 * padding:
            raise ScenarioError(
                f"{path}.weights",
                f"filter {kh}x{kw} is larger than the padded input "
                f"{height + 2 * padding}x{width + 2 * padding}",
            )
        bias = _number(fdata.get("bias", 0), f"{path}.bias")
        filters.append(Filter(name, weights, bias, ndim))
    _unique([f.name for f in filters], "conv.filters", "filter")
    return Conv(stride, padding, tuple(filters))


def _activation(value: Any) -> Activation:
    if isinstance(value, Mapping):
        data = _keys(value, "activation", ("kind", "slope"), ("kind",))
        kind = data["kind"]
        if kind == "leaky_relu":
            return Activation("leaky_relu", _number(data.get("slope", 0.01), "activation.slope"))
        if "slope" in data:
            raise ScenarioError("activation.slope", "only leaky_relu takes a slope")
        return _activation(kind)
    if value == "leaky_relu":
        return Activation("leaky_relu", 0.01)
    if value not in ACTIVATIONS:
        raise ScenarioError("activation", f"unknown activation {_kind(value)}; expected one of {', '.join(ACTIVATIONS)}")
    return Activation(value)


def _pool(value: Any, conv_shape: tuple[int, int]) -> Pool:
    if value is None or value == "none":
        return Pool("none")
    data = _keys(value, "pool", ("kind", "size", "stride"), ("kind", "size"))
    kind = data["kind"]
    if kind == "none":
        return Pool("none")
    if kind not in POOL_KINDS:
        raise ScenarioError("pool.kind", f"unknown pool {_kind(kind)}; expected none, max or avg")
    if data["size"] == "global":
        if "stride" in data:
            raise ScenarioError("pool.stride", "a global pool takes no stride")
        return Pool(kind, None, None, True)
    size = _pair(data["size"], "pool.size", 1)
    stride = _pair(data.get("stride", list(size)), "pool.stride", 1)
    if size[0] > conv_shape[0] or size[1] > conv_shape[1]:
        raise ScenarioError(
            "pool.size",
            f"window {size[0]}x{size[1]} does not fit the {conv_shape[0]}x{conv_shape[1]} feature map",
        )
    return Pool(kind, size, stride)


def _dense(value: Any, n_classes: int, n_features: int) -> Dense:
    data = _keys(value, "dense", ("weights", "biases"), ("weights", "biases"))
    weights = _array(data["weights"], "dense.weights", (2,), "classes x features numbers")
    if weights.shape != (n_classes, n_features):
        raise ScenarioError(
            "dense.weights",
            f"expected {n_classes}x{n_features} (classes x features), got {_dims(weights.shape)}",
        )
    biases = _array(data["biases"], "dense.biases", (1,), "one number per class")
    if biases.shape != (n_classes,):
        raise ScenarioError("dense.biases", f"expected {n_classes} values (one per class), got {biases.shape[0]}")
    return Dense(weights, biases)


def _training(value: Any) -> Training:
    data = _keys(
        value, "training", ("learning_rate", "iterations", "update", "update_filters"), ("learning_rate",)
    )
    rate = _number(data["learning_rate"], "training.learning_rate")
    if rate <= 0:
        raise ScenarioError("training.learning_rate", f"must be > 0, got {data['learning_rate']}")
    iterations = _integer(data.get("iterations", 1), "training.iterations", 1)
    update = data.get("update", "per_sample")
    if update not in UPDATES:
        raise ScenarioError("training.update", f"unknown update {_kind(update)}; expected one of {', '.join(UPDATES)}")
    update_filters = data.get("update_filters", False)
    if not isinstance(update_filters, bool):
        raise ScenarioError("training.update_filters", f"expected true or false, got {_kind(update_filters)}")
    return Training(rate, iterations, update, update_filters)


def _claims(value: Any) -> tuple[Claim, ...]:
    claims = []
    for i, item in enumerate(_list(value, "claims", 0)):
        path = f"claims[{i}]"
        data = _keys(item, path, ("at", "value", "tol", "note"), ("at", "value"))
        at = _text(data["at"], f"{path}.at")
        parse_path(at, f"{path}.at")
        number = _number(data["value"], f"{path}.value")
        tol = _number(data["tol"], f"{path}.tol") if "tol" in data else default_tolerance(data["value"])
        if tol < 0:
            raise ScenarioError(f"{path}.tol", "must be >= 0")
        note = _text(data["note"], f"{path}.note") if "note" in data else ""
        claims.append(Claim(at, number, tol, note))
    return tuple(claims)


def default_tolerance(value: Any) -> float:
    """Half a unit in the last printed digit: 0.786 -> 0.0005, 78 -> 0.5."""
    text = repr(value)
    if "e" in text.lower() or "." not in text:
        return 0.5
    decimals = len(text.split(".")[1])
    return 0.5 * 10.0**-decimals


PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|(\.)")


def parse_path(text: str, where: str = "path") -> tuple[str | int, ...]:
    """``steps[0].probs[1]`` -> ('steps', 0, 'probs', 1)."""
    parts: list[str | int] = []
    position = 0
    expect_name = True
    while position < len(text):
        match = PATH_TOKEN.match(text, position)
        if match is None or (match.group(1) and not expect_name) or (match.group(3) and expect_name):
            raise ScenarioError(where, f"cannot read path '{text}' at character {position + 1}")
        if match.group(1):
            parts.append(match.group(1))
            expect_name = False
        elif match.group(2):
            parts.append(int(match.group(2)))
        else:
            expect_name = True
        position = match.end()
    if not parts or expect_name or not isinstance(parts[0], str):
        raise ScenarioError(where, f"cannot read path '{text}'")
    return tuple(parts)


def _display(value: Any) -> dict:
    data = _keys(value, "display", tuple(DISPLAY_KEYS))
    out = {}
    for key, kind in DISPLAY_KEYS.items():
        if key in data:
            item = data[key]
            if kind is int:
                out[key] = _integer(item, f"display.{key}", 0)
            elif not isinstance(item, kind):
                raise ScenarioError(f"display.{key}", f"expected {kind.__name__}, got {_kind(item)}")
            else:
                out[key] = item
    if "detail" in out and out["detail"] not in ("full", "summary"):
        raise ScenarioError("display.detail", "expected full or summary")
    return out


def validate(data: Any, source: str = "", default_name: str = "scenario") -> Scenario:
    """Turn plain data (as read from YAML/JSON) into a checked Scenario."""
    data = _keys(data, "", TOP_KEYS, ("classes", "inputs", "conv", "dense", "training"))
    name = _text(data.get("name", default_name), "name")
    if not NAME_PATTERN.match(name):
        raise ScenarioError("name", f"'{name}' must use only a-z, 0-9 and '-'")
    title = _text(data.get("title", name), "title")
    classes = _classes(data["classes"])
    inputs = _inputs(data["inputs"], classes)
    conv = _conv(data["conv"], inputs)
    activation = _activation(data.get("activation", "relu"))
    conv_shape = conv_output_shape(
        inputs[0].pixels.shape[1:], conv.filters[0].weights.shape[1:], conv.stride, conv.padding
    )
    pool = _pool(data.get("pool", "none"), conv_shape)
    pooled = pool_output_shape(conv_shape, pool)
    dense = _dense(data["dense"], len(classes), len(conv.filters) * pooled[0] * pooled[1])
    training = _training(data["training"])
    claims = _claims(data.get("claims", []))
    display = _display(data.get("display", {}))
    description = _text(data["description"], "description") if "description" in data else ""
    notes = tuple(_text(n, f"notes[{i}]") for i, n in enumerate(_list(data.get("notes", []), "notes", 0)))
    return Scenario(
        name, title, classes, inputs, conv, activation, pool, dense, training,
        claims, display, description, notes, source,
    )
