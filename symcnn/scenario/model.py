"""Load a scenario (YAML/JSON file, built-in name or dict) and validate it into frozen dataclasses.

Every error names the key path where the problem is (``conv.filters[1].weights: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ScenarioError
from ..layers import Activation, Conv, Dense, Filter, Layer, Pool, legacy_layers, parse_layers
from ..layers import activation as activation_layer
from ..layers import conv as conv_layer
from ..layers import dense as dense_layer
from ..layers import pool as pool_layer
from ..layers.activation import ACTIVATIONS
from ..layers.conv import conv_output_shape
from ..layers.pool import POOL_KINDS, pool_output_shape, pool_window, winner_cell
from .checks import as_array, as_integer, as_list, as_mapping, as_number, as_text, describe, dims, ensure_unique

__all__ = [  # the layer types, re-exported: scenario.model is where a scenario's parts are looked up
    "ACTIVATIONS",
    "POOL_KINDS",
    "Activation",
    "Conv",
    "Dense",
    "Filter",
    "Layer",
    "Pool",
    "Scenario",
    "conv_output_shape",
    "pool_output_shape",
    "pool_window",
    "validate",
    "winner_cell",
]

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
UPDATES = ("per_sample", "batch_mean", "batch_sum")
OPTIMIZERS = ("sgd", "momentum", "adam")
OPTIMIZER_KEYS = {"sgd": (), "momentum": ("momentum", "nesterov"), "adam": ("betas", "eps")}
DISPLAY_KEYS = {"precision": int, "fractions": bool, "detail": str, "compare_optimizers": bool}
EXERCISE_ALLOW = ("zero-maps", "pool-ties", "saturated")  # degenerate draws `symcnn exercise` may keep

TOP_KEYS = (
    "name",
    "title",
    "description",
    "notes",
    "classes",
    "inputs",
    "conv",
    "activation",
    "pool",
    "dense",
    "layers",
    "training",
    "claims",
    "display",
    "exercise",
)


@dataclass(frozen=True)
class Input:
    name: str
    label: str
    pixels: np.ndarray  # C x H x W, float64, read-only
    ndim: int = 3  # 2 or 3: the shape the file gave (dL/dx is reported in it)


@dataclass(frozen=True)
class Optimizer:
    """PyTorch's SGD (dampening 0, no weight decay) with momentum/nesterov, or Adam (no amsgrad)."""

    kind: str = "sgd"  # sgd | momentum | adam
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def as_spec(self):
        """The scenario file's `training.optimizer` for this optimizer."""
        if self.kind == "momentum":
            return {"kind": "momentum", "momentum": self.momentum, "nesterov": self.nesterov}
        if self.kind == "adam":
            return {"kind": "adam", "betas": list(self.betas), "eps": self.eps}
        return "sgd"


@dataclass(frozen=True)
class Training:
    learning_rate: float
    iterations: int
    update: str
    update_filters: bool
    optimizer: Optimizer = Optimizer()


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
    conv: Conv | None  # the legacy keys; None for a `layers` stack
    activation: Activation | None
    pool: Pool | None
    dense: Dense | None
    training: Training
    claims: tuple[Claim, ...] = ()
    display: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    notes: tuple[str, ...] = ()
    source: str = ""
    exercise: Mapping[str, Any] = field(default_factory=dict)  # options for `symcnn exercise`
    layers: tuple[Layer, ...] = ()  # the network, legacy keys included (as conv, activation, pool, dense)

    @property
    def is_stack(self) -> bool:
        """Described with `layers:` (the legacy keys are None)."""
        return self.conv is None

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

    def as_given(self, image):
        """An image-shaped array (dL/dx) in the shape the inputs were given: H x W or C x H x W."""
        return image[0] if self.inputs[0].ndim == 2 else image

    def learns(self, layer: Layer) -> bool:
        """Whether training updates ``layer``: every dense layer; conv layers with ``update_filters``."""
        return layer.layer == "dense" or (layer.layer == "conv" and self.training.update_filters)


# ---------------------------------------------------------------- sections


def _classes(value: Any) -> tuple[str, ...]:
    items = as_list(value, "classes", 2)
    classes = [as_text(item, f"classes[{i}]") for i, item in enumerate(items)]
    for i, name in enumerate(classes):
        if name in classes[:i]:
            raise ScenarioError(f"classes[{i}]", f"duplicate class '{name}'")
    return tuple(classes)


def _inputs(value: Any, classes: tuple[str, ...]) -> tuple[Input, ...]:
    inputs = []
    for i, item in enumerate(as_list(value, "inputs")):
        path = f"inputs[{i}]"
        data = as_mapping(item, path, ("name", "label", "pixels"), ("name", "label", "pixels"))
        name = as_text(data["name"], f"{path}.name")
        label = as_text(data["label"], f"{path}.label")
        if label not in classes:
            raise ScenarioError(f"{path}.label", f"'{label}' is not one of classes {list(classes)}")
        pixels = as_array(data["pixels"], f"{path}.pixels", (2, 3), "an image: H x W or C x H x W numbers")
        ndim = pixels.ndim
        if ndim == 2:
            pixels = pixels[None]
            pixels.setflags(write=False)
        if inputs and pixels.shape != inputs[0].pixels.shape:
            raise ScenarioError(
                f"{path}.pixels",
                f"shape {dims(pixels.shape)} differs from inputs[0] ({dims(inputs[0].pixels.shape)})",
            )
        inputs.append(Input(name, label, pixels, ndim))
    ensure_unique([x.name for x in inputs], "inputs", "input")
    return tuple(inputs)


def _training(value: Any) -> Training:
    data = as_mapping(
        value, "training", ("learning_rate", "iterations", "update", "update_filters", "optimizer"), ("learning_rate",)
    )
    rate = as_number(data["learning_rate"], "training.learning_rate")
    if rate <= 0:
        raise ScenarioError("training.learning_rate", f"must be > 0, got {data['learning_rate']}")
    iterations = as_integer(data.get("iterations", 1), "training.iterations", 1)
    update = data.get("update", "per_sample")
    if update not in UPDATES:
        raise ScenarioError(
            "training.update", f"unknown update {describe(update)}; expected one of {', '.join(UPDATES)}"
        )
    update_filters = data.get("update_filters", False)
    if not isinstance(update_filters, bool):
        raise ScenarioError("training.update_filters", f"expected true or false, got {describe(update_filters)}")
    return Training(rate, iterations, update, update_filters, _optimizer(data.get("optimizer", "sgd")))


def _optimizer(value: Any) -> Optimizer:
    where = "training.optimizer"
    if not isinstance(value, Mapping):
        value = {"kind": value}
        kind_at = where
    else:
        kind_at = f"{where}.kind"
        if "kind" not in value:
            raise ScenarioError(kind_at, "missing key")
    kind = value.get("kind")
    if kind not in OPTIMIZERS:
        raise ScenarioError(kind_at, f"unknown optimizer {describe(kind)}; expected one of {', '.join(OPTIMIZERS)}")
    data = as_mapping(value, where, ("kind", *OPTIMIZER_KEYS[kind]), ("kind",))
    if kind == "momentum":
        momentum = as_number(data.get("momentum", 0.9), f"{where}.momentum")
        if not 0 <= momentum < 1:
            raise ScenarioError(f"{where}.momentum", f"must be >= 0 and < 1, got {data.get('momentum')}")
        nesterov = data.get("nesterov", False)
        if not isinstance(nesterov, bool):
            raise ScenarioError(f"{where}.nesterov", f"expected true or false, got {describe(nesterov)}")
        if nesterov and momentum == 0:  # torch.optim.SGD refuses it too
            raise ScenarioError(f"{where}.nesterov", "needs a momentum > 0 (as torch.optim.SGD)")
        return Optimizer(kind, momentum=momentum, nesterov=nesterov)
    if kind == "adam":
        betas = as_list(data.get("betas", [0.9, 0.999]), f"{where}.betas")
        if len(betas) != 2:
            raise ScenarioError(f"{where}.betas", f"expected 2 numbers [beta1, beta2], got {len(betas)}")
        betas = tuple(as_number(b, f"{where}.betas[{i}]") for i, b in enumerate(betas))
        for i, beta in enumerate(betas):
            if not 0 <= beta < 1:
                raise ScenarioError(f"{where}.betas[{i}]", f"must be >= 0 and < 1, got {data['betas'][i]}")
        eps = as_number(data.get("eps", 1e-8), f"{where}.eps")
        if eps <= 0:
            raise ScenarioError(f"{where}.eps", f"must be > 0, got {data['eps']}")
        return Optimizer(kind, betas=betas, eps=eps)
    return Optimizer()


def _claims(value: Any) -> tuple[Claim, ...]:
    claims = []
    for i, item in enumerate(as_list(value, "claims", 0)):
        path = f"claims[{i}]"
        data = as_mapping(item, path, ("at", "value", "tol", "note"), ("at", "value"))
        at = as_text(data["at"], f"{path}.at")
        parse_path(at, f"{path}.at")
        number = as_number(data["value"], f"{path}.value")
        tol = as_number(data["tol"], f"{path}.tol") if "tol" in data else default_tolerance(data["value"])
        if tol < 0:
            raise ScenarioError(f"{path}.tol", "must be >= 0")
        note = as_text(data["note"], f"{path}.note") if "note" in data else ""
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
    data = as_mapping(value, "display", tuple(DISPLAY_KEYS))
    out = {}
    for key, kind in DISPLAY_KEYS.items():
        if key in data:
            item = data[key]
            if kind is int:
                out[key] = as_integer(item, f"display.{key}", 0)
            elif not isinstance(item, kind):
                raise ScenarioError(f"display.{key}", f"expected {kind.__name__}, got {describe(item)}")
            else:
                out[key] = item
    if "detail" in out and out["detail"] not in ("full", "summary"):
        raise ScenarioError("display.detail", "expected full or summary")
    return out


def _exercise(value: Any) -> dict:
    """Options for exercise variants: ``allow`` lists degenerate draws to keep (see EXERCISE_ALLOW)."""
    data = as_mapping(value, "exercise", ("allow",))
    allow = []
    for i, item in enumerate(as_list(data.get("allow", []), "exercise.allow", 0)):
        if item not in EXERCISE_ALLOW:
            raise ScenarioError(
                f"exercise.allow[{i}]", f"unknown {describe(item)}; expected one of {', '.join(EXERCISE_ALLOW)}"
            )
        allow.append(item)
    return {"allow": tuple(allow)}


def validate(data: Any, source: str = "", default_name: str = "scenario") -> Scenario:
    """Turn plain data (as read from YAML/JSON) into a checked Scenario."""
    stacked = isinstance(data, Mapping) and "layers" in data
    network_keys = () if stacked else ("conv", "dense")
    data = as_mapping(data, "", TOP_KEYS, ("classes", "inputs", *network_keys, "training"))
    name = as_text(data.get("name", default_name), "name")
    if not NAME_PATTERN.match(name):
        raise ScenarioError("name", f"'{name}' must use only a-z, 0-9 and '-'")
    title = as_text(data.get("title", name), "title")
    classes = _classes(data["classes"])
    inputs = _inputs(data["inputs"], classes)
    if stacked:
        for key in LEGACY_NETWORK:
            if key in data:
                raise ScenarioError(
                    key, "give the network either as `layers` or as conv/activation/pool/dense, not both"
                )
        conv = activation = pool = dense = None
        layers = parse_layers(data["layers"], inputs[0].pixels.shape, len(classes))
    else:
        conv, activation, pool, dense = _single_layer(data, inputs, len(classes))
        layers = legacy_layers(conv, activation, pool, dense)
    training = _training(data["training"])
    claims = _claims(data.get("claims", []))
    display = _display(data.get("display", {}))
    description = as_text(data["description"], "description") if "description" in data else ""
    notes = tuple(as_text(n, f"notes[{i}]") for i, n in enumerate(as_list(data.get("notes", []), "notes", 0)))
    return Scenario(
        name,
        title,
        classes,
        inputs,
        conv,
        activation,
        pool,
        dense,
        training,
        claims,
        display,
        description,
        notes,
        source,
        _exercise(data.get("exercise", {})),
        layers,
    )


LEGACY_NETWORK = ("conv", "activation", "pool", "dense")


def _single_layer(data: dict, inputs: tuple[Input, ...], n_classes: int) -> tuple[Conv, Activation, Pool, Dense]:
    """The legacy keys: one conv layer, an activation, an optional pool, the dense classifier."""
    shape = inputs[0].pixels.shape
    conv = conv_layer.parse(data["conv"], "conv", shape, "conv1")
    activation = activation_layer.parse(data.get("activation", "relu"))
    conv_shape = conv.output_shape(shape)
    pool = pool_layer.parse(data.get("pool", "none"), "pool", conv_shape[1:])
    pooled = pool.output_shape(conv_shape)
    dense = dense_layer.parse(data["dense"], "dense", n_classes, pooled[0] * pooled[1] * pooled[2])
    return conv, activation, pool, dense
