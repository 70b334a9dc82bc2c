"""Bad input: one line `error: <key path>: <what>` on stderr, nothing on stdout, exit 2, never a traceback.

Every case starts from the built-in `four-images` scenario, breaks one thing and writes the result to a
file (YAML or JSON), or writes raw bytes (broken syntax, empty file, ...). Each case runs in-process
through `symcnn.cli.main` and as a real `python -m symcnn` subprocess; a subset also runs `check`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from symcnn.cli import main
from symcnn.scenario.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
BASE: dict = read_source("four-images")[0]
FILE = "<the SCENARIO argument>"  # `where` placeholder: the error names the file itself
DELETE = object()


# ----------------------------------------------------------------------------- building scenarios


@dataclass(frozen=True)
class Raw:
    """A token written verbatim into the file (``.nan``, ``Infinity``, ``yes``, ``1e999``, ...)."""

    text: str


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def put(data: Any, path: str, value: Any) -> None:
    """Set (or with DELETE remove) the value at a path like ``conv.filters[1].weights``."""
    *parents, last = _steps(path)
    node = data
    for step in parents:
        node = node[step]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value


def rename(path: str, new_key: str) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        *parents, last = _steps(path)
        node = data
        for step in parents:
            node = node[step]
        node[new_key] = node.pop(last)

    return edit


def rgb(data: dict) -> None:
    """Every input becomes a 3-channel image (the same plane three times)."""
    for item in data["inputs"]:
        item["pixels"] = [copy.deepcopy(item["pixels"]) for _ in range(3)]


Edit = tuple[str, Any] | Callable[[dict], None]


def scenario(fmt: str, *edits: Edit) -> Callable[[Path], str]:
    """A writer: four-images with ``edits`` applied, saved as scenario.<fmt>; returns the path."""

    def write(folder: Path) -> str:
        data = copy.deepcopy(BASE)
        raws: dict[str, str] = {}
        for edit in edits:
            if callable(edit):
                edit(data)
                continue
            path, value = edit
            if isinstance(value, Raw):
                placeholder = f"@RAW{len(raws)}@"
                raws[placeholder] = value.text
                value = placeholder
            put(data, path, value)
        if fmt == "json":
            text = json.dumps(data, indent=1)  # writes NaN / Infinity for non-finite floats
        else:
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)  # writes .nan / .inf
        for placeholder, token in raws.items():
            quoted = f'"{placeholder}"' if fmt == "json" else f"'{placeholder}'"
            assert text.count(quoted) == 1, f"placeholder {quoted} not written as expected"
            text = text.replace(quoted, token)
        target = folder / f"scenario.{fmt}"
        target.write_text(text, encoding="utf-8")
        return str(target)

    return write


def raw(name: str, content: str | bytes) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        return str(target)

    return write


def base_text(fmt: str) -> str:
    if fmt == "json":
        return json.dumps(BASE, indent=1)
    return yaml.safe_dump(BASE, sort_keys=False)


def directory(name: str) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        (folder / name).mkdir()
        return str(folder / name)

    return write


def missing(name: str) -> Callable[[Path], str]:
    return lambda folder: str(folder / name)


def literal(argument: str) -> Callable[[Path], str]:
    return lambda folder: argument


def grid(rows: int, cols: int, value: float = 0.5) -> list[list[float]]:
    return [[value] * cols for _ in range(rows)]


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    write: Callable[[Path], str]
    where: str  # the key path the error must start with (FILE: the argument itself)
    what: str  # a fragment of the reason
    commands: tuple[str, ...] = ("values",)


def case(id: str, write, where: str, what: str, *, check: bool = False, only_check: bool = False) -> Case:
    commands = ("check",) if only_check else ("values", "check") if check else ("values",)
    return Case(id, write, where, what, commands)


DEEP = 100_000
DUPLICATE_JSON = '{"classes": ["x", "y"],' + base_text("json")[1:]

CASES = [
    # --- the file itself
    case("yaml-syntax", raw("broken.yaml", "classes: [cat, dog\ninputs: []\n"), FILE, "invalid YAML", check=True),
    case(
        "yaml-python-tag",
        raw("tag.yaml", "!!python/object/apply:os.system [echo hi]\n"),
        FILE,
        "invalid YAML: could not determine a constructor",
    ),
    case(
        "yaml-duplicate-key",
        raw("dup.yaml", base_text("yaml") + "classes: [x, y]\n"),
        FILE,
        "duplicate key 'classes'",
        check=True,
    ),
    case("yaml-unhashable-key", raw("key.yaml", "? [a, b]\n: 1\n"), FILE, "invalid YAML: found unhashable key"),
    # LibYAML's C parser (used where PyYAML has it) reads the nesting; the pure-Python one runs out of stack
    case(
        "yaml-nested-too-deeply",
        raw("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
        *(("a", "unknown key") if yaml.__with_libyaml__ else (FILE, "nested too deeply")),
    ),
    case("json-syntax", raw("broken.json", '{"classes": ["cat", "dog"],}'), FILE, "invalid JSON", check=True),
    case("json-duplicate-key", raw("dup.json", DUPLICATE_JSON), FILE, "duplicate key 'classes'"),
    case("json-nested-too-deeply", raw("deep.json", "[" * DEEP + "]" * DEEP), FILE, "nested too deeply"),
    case("empty-yaml-file", raw("empty.yaml", ""), "scenario", "expected a mapping, got nothing"),
    case("empty-json-file", raw("empty.json", ""), FILE, "invalid JSON", check=True),
    case("yaml-file-is-a-list", raw("list.yaml", "- 1\n- 2\n"), "scenario", "expected a mapping, got a list"),
    case("json-file-is-a-list", raw("list.json", json.dumps([BASE])), "scenario", "expected a mapping, got a list"),
    case("json-file-is-text", raw("text.json", '"four-images"'), "scenario", "expected a mapping, got text"),
    case(
        "not-utf-8",
        raw("latin1.yaml", base_text("yaml").encode() + b"title: caf\xe9\n"),
        FILE,
        "cannot read file: 'utf-8' codec can't decode",
        check=True,
    ),
    case("directory-named-yaml", directory("folder.yaml"), FILE, "cannot read file"),
    case("directory", directory("folder"), FILE, "expected a .yaml, .yml or .json file"),
    case("missing-file", missing("nowhere.yaml"), FILE, "no such file", check=True),
    case("wrong-extension", raw("scenario.txt", base_text("yaml")), FILE, "expected a .yaml, .yml or .json file"),
    case(
        "unknown-builtin",
        literal("four-imagez"),
        "four-imagez",
        "no such file or built-in scenario "
        "(built-ins: four-images, lenet-like, mnist-like, two-conv, zebra-cat, zebra-cat-adam)",
        check=True,
    ),
    # --- non-finite and non-numeric numbers
    case(
        "json-nan-pixel",
        scenario("json", ("inputs[0].pixels[1][2]", Raw("NaN"))),
        "inputs[0].pixels[1][2]",
        "expected a finite number, got nan",
        check=True,
    ),
    case(
        "json-infinity-bias",
        scenario("json", ("dense.biases[1]", Raw("-Infinity"))),
        "dense.biases[1]",
        "expected a finite number, got -inf",
    ),
    case(
        "json-nan-from-float",
        scenario("json", ("conv.filters[1].bias", math.nan)),
        "conv.filters[1].bias",
        "expected a finite number, got nan",
    ),
    case(
        "yaml-nan-pixel",
        scenario("yaml", ("inputs[2].pixels[0][0]", Raw(".nan"))),
        "inputs[2].pixels[0][0]",
        "expected a finite number, got nan",
        check=True,
    ),
    case(
        "yaml-inf-learning-rate",
        scenario("yaml", ("training.learning_rate", Raw(".inf"))),
        "training.learning_rate",
        "expected a finite number, got inf",
    ),
    case(
        "yaml-overflowing-float",
        scenario("yaml", ("dense.weights[0][3]", Raw("1e999"))),
        "dense.weights[0][3]",
        "expected a finite number, got inf",
    ),
    case(
        "json-huge-integer-pixel",
        scenario("json", ("inputs[0].pixels[0][0]", 10**400)),
        "inputs[0].pixels[0][0]",
        "expected a finite number, got an integer too large",
    ),
    case(
        "yaml-huge-integer-claim",
        scenario("yaml", ("claims[0].value", Raw("9" * 400))),
        "claims[0].value",
        "expected a finite number, got an integer too large",
    ),
    case(
        "non-numeric-pixel",
        scenario("yaml", ("inputs[1].pixels[2][3]", "x")),
        "inputs[1].pixels[2][3]",
        "expected a number, got text 'x'",
        check=True,
    ),
    case(
        "numeric-text-pixel",
        scenario("json", ("inputs[1].pixels[0][0]", "1")),
        "inputs[1].pixels[0][0]",
        "expected a number, got text '1'",
    ),
    case(
        "boolean-pixel",
        scenario("yaml", ("inputs[3].pixels[0][0]", True)),
        "inputs[3].pixels[0][0]",
        "expected a number, got a boolean (true)",
    ),
    case(
        "null-pixel",
        scenario("json", ("inputs[0].pixels[3][1]", None)),
        "inputs[0].pixels[3][1]",
        "expected a number, got nothing",
    ),
    case(
        "list-among-pixels",
        scenario("yaml", ("inputs[0].pixels[1][1]", [1])),
        "inputs[0].pixels[1][1]",
        "mixes numbers and lists",
    ),
    # --- shapes of images
    case(
        "ragged-pixel-rows",
        scenario("yaml", ("inputs[1].pixels[2]", [1, 1, 1])),
        "inputs[1].pixels",
        "row 2 has 3 values, expected 4",
        check=True,
    ),
    case(
        "ragged-pixel-rows-json",
        scenario("json", ("inputs[3].pixels[1]", [0, 1, 0, 0, 0])),
        "inputs[3].pixels",
        "row 1 has 5 values, expected 4",
    ),
    case(
        "pixels-one-dimensional",
        scenario("yaml", ("inputs[0].pixels", [0, 1, 0, 1])),
        "inputs[0].pixels",
        "got 1-dimensional",
    ),
    case(
        "pixels-four-dimensional",
        scenario("yaml", ("inputs[0].pixels", [[[[0.0, 1.0]]]])),
        "inputs[0].pixels",
        "got 4-dimensional",
    ),
    case(
        "pixels-nested-600-deep",
        scenario("json", ("inputs[0].pixels", Raw("[" * 600 + "0" + "]" * 600))),
        "inputs[0].pixels",
        "got 600-dimensional",
    ),
    case("pixels-empty", scenario("json", ("inputs[0].pixels", [])), "inputs[0].pixels", "must not be empty"),
    case(
        "pixels-empty-row",
        scenario("yaml", ("inputs[2].pixels", [[], [], [], []])),
        "inputs[2].pixels[0]",
        "must not be empty",
    ),
    case(
        "pixels-not-a-list",
        scenario("yaml", ("inputs[1].pixels", "img.png")),
        "inputs[1].pixels",
        "expected an image: H x W or C x H x W numbers, got text 'img.png'",
    ),
    case(
        "inputs-of-different-shapes",
        scenario("yaml", ("inputs[2].pixels", grid(3, 3))),
        "inputs[2].pixels",
        "shape 1x3x3 differs from inputs[0] (1x4x4)",
        check=True,
    ),
    case(
        "inputs-of-different-channels",
        scenario("json", ("inputs[1].pixels", [grid(4, 4), grid(4, 4)])),
        "inputs[1].pixels",
        "shape 2x4x4 differs from inputs[0] (1x4x4)",
    ),
    # --- missing keys
    case("missing-classes", scenario("yaml", ("classes", DELETE)), "classes", "missing key", check=True),
    case("missing-inputs", scenario("json", ("inputs", DELETE)), "inputs", "missing key"),
    case("missing-conv", scenario("yaml", ("conv", DELETE)), "conv", "missing key"),
    case("missing-dense", scenario("json", ("dense", DELETE)), "dense", "missing key"),
    case("missing-training", scenario("yaml", ("training", DELETE)), "training", "missing key"),
    case("missing-input-pixels", scenario("yaml", ("inputs[2].pixels", DELETE)), "inputs[2].pixels", "missing key"),
    case("missing-input-label", scenario("json", ("inputs[0].label", DELETE)), "inputs[0].label", "missing key"),
    case(
        "missing-filter-weights",
        scenario("yaml", ("conv.filters[1].weights", DELETE)),
        "conv.filters[1].weights",
        "missing key",
    ),
    case("missing-conv-filters", scenario("json", ("conv.filters", DELETE)), "conv.filters", "missing key"),
    case("missing-dense-biases", scenario("yaml", ("dense.biases", DELETE)), "dense.biases", "missing key"),
    case(
        "missing-learning-rate",
        scenario("json", ("training.learning_rate", DELETE)),
        "training.learning_rate",
        "missing key",
    ),
    case("missing-claim-value", scenario("yaml", ("claims[3].value", DELETE)), "claims[3].value", "missing key"),
    case("missing-pool-size", scenario("yaml", ("pool", {"kind": "max"})), "pool.size", "missing key"),
    case("missing-activation-kind", scenario("yaml", ("activation", {"slope": 0.1})), "activation.kind", "missing key"),
    # --- unknown keys
    case(
        "unknown-top-key",
        scenario("yaml", ("activaton", "relu")),
        "activaton",
        "unknown key (did you mean 'activation'?)",
        check=True,
    ),
    case(
        "misspelled-classes",
        scenario("json", rename("classes", "clases")),
        "clases",
        "unknown key (did you mean 'classes'?)",
    ),
    case(
        "misspelled-learning-rate",
        scenario("yaml", rename("training.learning_rate", "learning_rat")),
        "training.learning_rat",
        "unknown key (did you mean 'learning_rate'?)",
    ),
    case(
        "misspelled-filter-weights",
        scenario("yaml", rename("conv.filters[0].weights", "weight")),
        "conv.filters[0].weight",
        "unknown key (did you mean 'weights'?)",
    ),
    case("unknown-conv-key", scenario("json", ("conv.dilation", 2)), "conv.dilation", "unknown key"),
    case("unknown-input-key", scenario("yaml", ("inputs[1].colour", "red")), "inputs[1].colour", "unknown key"),
    case(
        "unknown-display-key",
        scenario("yaml", ("display.precison", 2)),
        "display.precison",
        "unknown key (did you mean 'precision'?)",
    ),
    # --- wrong types
    case("classes-is-text", scenario("yaml", ("classes", "cat")), "classes", "expected a list, got text 'cat'"),
    case(
        "inputs-is-a-mapping",
        scenario("json", ("inputs", {"img1": BASE["inputs"][0]})),
        "inputs",
        "expected a list, got a mapping",
    ),
    case("input-is-a-list", scenario("yaml", ("inputs[1]", [1, 2])), "inputs[1]", "expected a mapping, got a list"),
    case("conv-is-a-list", scenario("json", ("conv", [BASE["conv"]])), "conv", "expected a mapping, got a list"),
    case("training-is-a-number", scenario("yaml", ("training", 0.1)), "training", "expected a mapping, got float"),
    case("title-is-a-list", scenario("json", ("title", ["Four", "images"])), "title", "expected text, got a list"),
    case("title-is-a-yaml-date", scenario("yaml", ("title", Raw("2024-01-01"))), "title", "expected text, got date"),
    case(
        "classes-yes-no",
        scenario("yaml", ("classes", Raw("[yes, no]"))),
        "classes[0]",
        "expected text, got a boolean (true)",
    ),
    case("class-is-a-list", scenario("json", ("classes[1]", ["dog"])), "classes[1]", "expected text, got a list"),
    case("blank-input-name", scenario("yaml", ("inputs[0].name", "  ")), "inputs[0].name", "must not be empty"),
    case(
        "stride-is-text", scenario("json", ("conv.stride", "1")), "conv.stride", "expected a whole number, got text '1'"
    ),
    case(
        "stride-is-fractional",
        scenario("yaml", ("conv.stride", 1.5)),
        "conv.stride",
        "expected a whole number, got float",
    ),
    case(
        "dense-weights-is-a-number",
        scenario("yaml", ("dense.weights", 0.1)),
        "dense.weights",
        "expected classes x features numbers, got float",
    ),
    case(
        "dense-biases-is-a-number",
        scenario("json", ("dense.biases", 0.05)),
        "dense.biases",
        "expected one number per class, got float",
    ),
    case(
        "filter-bias-is-text",
        scenario("yaml", ("conv.filters[1].bias", "zero")),
        "conv.filters[1].bias",
        "expected a number, got text 'zero'",
    ),
    case(
        "iterations-is-a-boolean",
        scenario("json", ("training.iterations", True)),
        "training.iterations",
        "expected a whole number, got a boolean (true)",
    ),
    # --- names and classes
    case(
        "duplicate-input-names",
        scenario("yaml", ("inputs[3].name", "img1")),
        "inputs[3].name",
        "duplicate input name 'img1' (also inputs[0])",
        check=True,
    ),
    case(
        "duplicate-filter-names",
        scenario("json", ("conv.filters[1].name", "A")),
        "conv.filters[1].name",
        "duplicate filter name 'A' (also conv.filters[0])",
    ),
    case(
        "one-class", scenario("yaml", ("classes", ["cat"])), "classes", "expected at least 2 entries, got 1", check=True
    ),
    case("no-classes", scenario("json", ("classes", [])), "classes", "expected at least 2 entries, got 0"),
    case("duplicate-classes", scenario("yaml", ("classes", ["cat", "cat"])), "classes[1]", "duplicate class 'cat'"),
    case(
        "label-not-in-classes",
        scenario("yaml", ("inputs[2].label", "bird")),
        "inputs[2].label",
        "'bird' is not one of classes ['cat', 'dog']",
        check=True,
    ),
    case("no-inputs", scenario("json", ("inputs", [])), "inputs", "expected at least 1 entry, got 0"),
    case("no-filters", scenario("yaml", ("conv.filters", [])), "conv.filters", "expected at least 1 entry, got 0"),
    case(
        "name-with-spaces",
        scenario("yaml", ("name", "Four Images")),
        "name",
        "'Four Images' must use only a-z, 0-9 and '-'",
    ),
    case(
        "name-with-underscore",
        scenario("json", ("name", "four_images")),
        "name",
        "'four_images' must use only a-z, 0-9 and '-'",
    ),
    # --- activation
    case(
        "unknown-activation",
        scenario("yaml", ("activation", "relu6")),
        "activation",
        "unknown activation text 'relu6'; expected one of relu, none, sigmoid, tanh, leaky_relu",
        check=True,
    ),
    case(
        "unknown-activation-kind",
        scenario("json", ("activation", {"kind": "swish"})),
        "activation",
        "unknown activation text 'swish'",
    ),
    case("activation-is-a-number", scenario("yaml", ("activation", 1)), "activation", "unknown activation int"),
    case(
        "leaky-relu-slope-text",
        scenario("yaml", ("activation", {"kind": "leaky_relu", "slope": "small"})),
        "activation.slope",
        "expected a number, got text 'small'",
    ),
    case(
        "leaky-relu-slope-null",
        scenario("json", ("activation", {"kind": "leaky_relu", "slope": None})),
        "activation.slope",
        "expected a number, got nothing",
    ),
    case(
        "slope-on-relu",
        scenario("yaml", ("activation", {"kind": "relu", "slope": 0.1})),
        "activation.slope",
        "only leaky_relu takes a slope",
    ),
    # --- convolution geometry
    case(
        "filter-larger-than-image",
        scenario("yaml", ("conv.filters[0].weights", grid(5, 5))),
        "conv.filters[0].weights",
        "filter 5x5 is larger than the padded input 4x4",
        check=True,
    ),
    case(
        "filter-larger-than-padded-image",
        scenario("json", ("conv.padding", 1), ("conv.filters[0].weights", grid(7, 7))),
        "conv.filters[0].weights",
        "filter 7x7 is larger than the padded input 6x6",
    ),
    case(
        "filter-taller-than-image",
        scenario("yaml", ("conv.filters[0].weights", grid(5, 2))),
        "conv.filters[0].weights",
        "filter 5x2 is larger than the padded input 4x4",
    ),
    case(
        "2d-filter-for-3-channel-inputs",
        scenario("yaml", rgb),
        "conv.filters[0].weights",
        "has 1 channel(s), the inputs have 3 (give C x kh x kw)",
        check=True,
    ),
    case(
        "2-channel-filter-for-3-channel-inputs",
        scenario("json", rgb, ("conv.filters[0].weights", [grid(2, 2), grid(2, 2)])),
        "conv.filters[0].weights",
        "has 2 channel(s), the inputs have 3",
    ),
    case(
        "3-channel-filter-for-grayscale",
        scenario("yaml", ("conv.filters[1].weights", [grid(2, 2) for _ in range(3)])),
        "conv.filters[1].weights",
        "has 3 channel(s), the inputs have 1",
    ),
    case(
        "filters-of-different-shapes",
        scenario("yaml", ("conv.filters[1].weights", grid(3, 3))),
        "conv.filters[1].weights",
        "expected 2x2 like conv.filters[0], got 3x3",
        check=True,
    ),
    case(
        "ragged-filter",
        scenario("json", ("conv.filters[0].weights", [[1, -1], [1]])),
        "conv.filters[0].weights",
        "row 1 has 1 values, expected 2",
    ),
    case("stride-zero", scenario("yaml", ("conv.stride", 0)), "conv.stride", "must be >= 1, got 0", check=True),
    case("stride-negative", scenario("json", ("conv.stride", -2)), "conv.stride", "must be >= 1, got -2"),
    case("padding-negative", scenario("yaml", ("conv.padding", -1)), "conv.padding", "must be >= 0, got -1"),
    # --- training
    case(
        "learning-rate-zero",
        scenario("yaml", ("training.learning_rate", 0)),
        "training.learning_rate",
        "must be > 0, got 0",
        check=True,
    ),
    case(
        "learning-rate-negative",
        scenario("json", ("training.learning_rate", -0.1)),
        "training.learning_rate",
        "must be > 0, got -0.1",
    ),
    case(
        "learning-rate-text",
        scenario("json", ("training.learning_rate", "0.1")),
        "training.learning_rate",
        "expected a number, got text '0.1'",
    ),
    case("iterations-zero", scenario("yaml", ("training.iterations", 0)), "training.iterations", "must be >= 1, got 0"),
    case(
        "iterations-negative",
        scenario("json", ("training.iterations", -3)),
        "training.iterations",
        "must be >= 1, got -3",
    ),
    case(
        "unknown-update-mode",
        scenario("yaml", ("training.update", "sgd")),
        "training.update",
        "unknown update text 'sgd'; expected one of per_sample, batch_mean, batch_sum",
        check=True,
    ),
    case(
        "update-filters-text",
        scenario("json", ("training.update_filters", "yes")),
        "training.update_filters",
        "expected true or false, got text 'yes'",
    ),
    case(
        "update-filters-number",
        scenario("yaml", ("training.update_filters", 1)),
        "training.update_filters",
        "expected true or false, got int",
    ),
    # --- optimizers
    case(
        "optimizer-unknown",
        scenario("yaml", ("training.optimizer", "rmsprop")),
        "training.optimizer",
        "unknown optimizer text 'rmsprop'; expected one of sgd, momentum, adam",
        check=True,
    ),
    case(
        "optimizer-unknown-kind",
        scenario("json", ("training.optimizer", {"kind": "adagrad"})),
        "training.optimizer.kind",
        "unknown optimizer text 'adagrad'",
    ),
    case(
        "optimizer-missing-kind",
        scenario("yaml", ("training.optimizer", {"momentum": 0.9})),
        "training.optimizer.kind",
        "missing key",
    ),
    case(
        "momentum-one",
        scenario("yaml", ("training.optimizer", {"kind": "momentum", "momentum": 1})),
        "training.optimizer.momentum",
        "must be >= 0 and < 1, got 1",
    ),
    case(
        "momentum-negative",
        scenario("json", ("training.optimizer", {"kind": "momentum", "momentum": -0.5})),
        "training.optimizer.momentum",
        "must be >= 0 and < 1, got -0.5",
    ),
    case(
        "nesterov-text",
        scenario("yaml", ("training.optimizer", {"kind": "momentum", "nesterov": "yes"})),
        "training.optimizer.nesterov",
        "expected true or false, got text 'yes'",
    ),
    case(
        "nesterov-without-momentum",
        scenario("json", ("training.optimizer", {"kind": "momentum", "momentum": 0, "nesterov": True})),
        "training.optimizer.nesterov",
        "needs a momentum > 0 (as torch.optim.SGD)",
    ),
    case(
        "beta2-one",
        scenario("yaml", ("training.optimizer", {"kind": "adam", "betas": [0.9, 1.0]})),
        "training.optimizer.betas[1]",
        "must be >= 0 and < 1, got 1.0",
        check=True,
    ),
    case(
        "beta1-negative",
        scenario("json", ("training.optimizer", {"kind": "adam", "betas": [-0.1, 0.999]})),
        "training.optimizer.betas[0]",
        "must be >= 0 and < 1, got -0.1",
    ),
    case(
        "betas-three",
        scenario("yaml", ("training.optimizer", {"kind": "adam", "betas": [0.9, 0.99, 0.999]})),
        "training.optimizer.betas",
        "expected 2 numbers [beta1, beta2], got 3",
    ),
    case(
        "betas-text",
        scenario("json", ("training.optimizer", {"kind": "adam", "betas": [0.9, "0.999"]})),
        "training.optimizer.betas[1]",
        "expected a number, got text '0.999'",
    ),
    case(
        "eps-zero",
        scenario("yaml", ("training.optimizer", {"kind": "adam", "eps": 0})),
        "training.optimizer.eps",
        "must be > 0, got 0",
    ),
    case(
        "eps-negative",
        scenario("json", ("training.optimizer", {"kind": "adam", "eps": -1e-8})),
        "training.optimizer.eps",
        "must be > 0, got -1e-08",
    ),
    case(
        "adam-takes-no-momentum",
        scenario("yaml", ("training.optimizer", {"kind": "adam", "momentum": 0.9})),
        "training.optimizer.momentum",
        "unknown key",
    ),
    case(
        "sgd-takes-no-betas",
        scenario("json", ("training.optimizer", {"kind": "sgd", "betas": [0.9, 0.9]})),
        "training.optimizer.betas",
        "unknown key",
    ),
    # --- pooling
    case(
        "pool-window-larger-than-map",
        scenario("yaml", ("pool", {"kind": "max", "size": 4})),
        "pool.size",
        "window 4x4 does not fit the 3x3 feature map",
        check=True,
    ),
    case(
        "pool-window-wider-than-map",
        scenario("json", ("pool", {"kind": "avg", "size": [2, 5]})),
        "pool.size",
        "window 2x5 does not fit the 3x3 feature map",
    ),
    case(
        "unknown-pool-kind",
        scenario("yaml", ("pool", {"kind": "median", "size": 2})),
        "pool.kind",
        "unknown pool text 'median'; expected none, max or avg",
    ),
    case("pool-is-bare-kind", scenario("yaml", ("pool", "max")), "pool", "expected a mapping, got text 'max'"),
    case("pool-size-zero", scenario("json", ("pool", {"kind": "max", "size": 0})), "pool.size", "must be >= 1, got 0"),
    case(
        "pool-size-three-values",
        scenario("yaml", ("pool", {"kind": "max", "size": [2, 2, 2]})),
        "pool.size",
        "expected [h, w], got 3 values",
    ),
    case(
        "pool-stride-zero",
        scenario("yaml", ("pool", {"kind": "avg", "size": 2, "stride": 0})),
        "pool.stride",
        "must be >= 1, got 0",
    ),
    case(
        "global-pool-with-stride",
        scenario("json", ("pool", {"kind": "max", "size": "global", "stride": 1})),
        "pool.stride",
        "a global pool takes no stride",
    ),
    # --- dense layer
    case(
        "dense-weights-too-few-features",
        scenario("yaml", ("dense.weights", grid(2, 17, 0.1))),
        "dense.weights",
        "expected 2x18 (classes x features), got 2x17",
        check=True,
    ),
    case(
        "dense-weights-extra-class-row",
        scenario("json", ("dense.weights", grid(3, 18, 0.1))),
        "dense.weights",
        "expected 2x18 (classes x features), got 3x18",
    ),
    case(
        "dense-weights-transposed",
        scenario("yaml", ("dense.weights", grid(18, 2, 0.1))),
        "dense.weights",
        "expected 2x18 (classes x features), got 18x2",
    ),
    case(
        "dense-weights-ragged",
        scenario("yaml", ("dense.weights[1]", [0.1] * 17)),
        "dense.weights",
        "row 1 has 17 values, expected 18",
    ),
    case(
        "dense-weights-ignore-pooling",
        scenario("yaml", ("pool", {"kind": "max", "size": 2, "stride": 1})),
        "dense.weights",
        "expected 2x8 (classes x features), got 2x18",
    ),
    case(
        "dense-biases-wrong-count",
        scenario("json", ("dense.biases", [0.05, -0.05, 0.0])),
        "dense.biases",
        "expected 2 values (one per class), got 3",
        check=True,
    ),
    case(
        "dense-biases-one-value",
        scenario("yaml", ("dense.biases", [0.05])),
        "dense.biases",
        "expected 2 values (one per class), got 1",
    ),
    case(
        "dense-biases-as-column",
        scenario("yaml", ("dense.biases", [[0.05], [-0.05]])),
        "dense.biases",
        "expected one number per class (1-dimensional), got 2-dimensional",
    ),
    # --- claims (malformed: found by `values` too)
    case(
        "claim-at-double-dot",
        scenario("yaml", ("claims[0].at", "steps[0]..probs[0]")),
        "claims[0].at",
        "cannot read path 'steps[0]..probs[0]'",
        check=True,
    ),
    case(
        "claim-at-unclosed-bracket",
        scenario("json", ("claims[1].at", "steps[0.probs")),
        "claims[1].at",
        "cannot read path 'steps[0.probs'",
    ),
    case(
        "claim-at-starts-with-index",
        scenario("yaml", ("claims[2].at", "[0].probs")),
        "claims[2].at",
        "cannot read path '[0].probs'",
    ),
    case(
        "claim-at-trailing-dot",
        scenario("yaml", ("claims[0].at", "steps[0].probs.")),
        "claims[0].at",
        "cannot read path 'steps[0].probs.'",
    ),
    case(
        "claim-at-negative-index",
        scenario("json", ("claims[0].at", "steps[-1].loss")),
        "claims[0].at",
        "cannot read path 'steps[-1].loss'",
    ),
    case(
        "claim-at-is-a-list",
        scenario("yaml", ("claims[0].at", ["steps", 0])),
        "claims[0].at",
        "expected text, got a list",
    ),
    case(
        "claim-value-is-text",
        scenario("json", ("claims[9].value", "0.786")),
        "claims[9].value",
        "expected a number, got text '0.786'",
    ),
    case("claim-tol-negative", scenario("yaml", ("claims[0].tol", -1)), "claims[0].tol", "must be >= 0"),
    case(
        "claims-is-a-mapping",
        scenario("yaml", ("claims", {"at": "steps[0].loss", "value": 1})),
        "claims",
        "expected a list, got a mapping",
    ),
    # --- claims whose path is well formed but names no number: found by `check`
    case(
        "claim-at-no-value",
        scenario("yaml", ("claims[0].at", "steps[9].probs[0]")),
        "claims[0].at",
        "no value at 'steps[9].probs[0]'",
        only_check=True,
    ),
    case(
        "claim-at-unknown-quantity",
        scenario("json", ("claims[4].at", "steps[0].probabilities[0]")),
        "claims[4].at",
        "no value at 'steps[0].probabilities[0]'",
        only_check=True,
    ),
    case(
        "claim-at-index-past-end",
        scenario("yaml", ("claims[0].at", "final[0].probs[2]")),
        "claims[0].at",
        "no value at 'final[0].probs[2]'",
        only_check=True,
    ),
    case(
        "claim-at-a-list",
        scenario("yaml", ("claims[0].at", "steps[0].probs")),
        "claims[0].at",
        "'steps[0].probs' is not a single number",
        only_check=True,
    ),
    case(
        "claim-at-text",
        scenario("json", ("claims[0].at", "steps[0].sample")),
        "claims[0].at",
        "'steps[0].sample' is not a single number",
        only_check=True,
    ),
    # --- other optional sections
    case(
        "display-precision-negative",
        scenario("yaml", ("display.precision", -1)),
        "display.precision",
        "must be >= 0, got -1",
    ),
    case(
        "display-detail-unknown",
        scenario("json", ("display.detail", "some")),
        "display.detail",
        "expected full or summary",
    ),
    case("notes-is-text", scenario("yaml", ("notes", "one note")), "notes", "expected a list, got text 'one note'"),
    case(
        "exercise-allow-unknown",
        scenario("yaml", ("exercise", {"allow": ["ties"]})),
        "exercise.allow[0]",
        "unknown text 'ties'; expected one of zero-maps, pool-ties, saturated",
    ),
    case(
        "exercise-unknown-key",
        scenario("json", ("exercise", {"allowed": []})),
        "exercise.allowed",
        "unknown key (did you mean 'allow'?)",
    ),
]

RUNS = [pytest.param(c, command, id=f"{command}-{c.id}") for c in CASES for command in c.commands]
# A real process for every problem with the file itself and for every case that also runs `check`
# (about half the table; all of it would take too long). The in-process runs cover every case.
PROCESS_RUNS = [
    pytest.param(c, command, id=f"{command}-{c.id}")
    for c in CASES
    if "check" in c.commands or c.where in (FILE, "scenario")
    for command in c.commands
]


# ----------------------------------------------------------------------------- the checks


def assert_rejected(c: Case, argument: str, code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err, err
    assert code == 2, (code, err)
    assert out == "", out
    assert err.endswith("\n") and err.count("\n") == 1, f"expected exactly one line on stderr, got {err!r}"
    line = err.rstrip("\n")
    where = argument if c.where == FILE else c.where
    assert line.startswith(f"error: {where}: "), f"expected 'error: {where}: ...', got {line!r}"
    assert c.what in line[len(f"error: {where}: ") :], f"expected {c.what!r} in {line!r}"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "symcnn", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_the_table_is_large_and_distinct():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 30
    assert any(c.commands == ("check",) for c in CASES)
    assert len(PROCESS_RUNS) >= 12


@pytest.mark.parametrize("c, command", RUNS)
def test_rejected_in_process(c: Case, command: str, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argument = c.write(tmp_path)
    code = main([command, argument])
    out, err = capsys.readouterr()
    assert_rejected(c, argument, code, out, err)


@pytest.mark.parametrize("c, command", PROCESS_RUNS)
def test_rejected_by_the_command_line(c: Case, command: str, tmp_path: Path) -> None:
    argument = c.write(tmp_path)
    result = run_cli(command, argument, cwd=tmp_path)
    assert_rejected(c, argument, result.returncode, result.stdout, result.stderr)


def test_claim_paths_are_resolved_by_check_not_by_values(tmp_path: Path, capsys) -> None:
    """`values` does not look claims up, so a well-formed path to nothing passes there."""
    argument = scenario("yaml", ("claims[0].at", "steps[9].probs[0]"))(tmp_path)
    assert main(["values", argument]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out)["scenario"] == "four-images"


def test_the_unbroken_base_is_accepted(tmp_path: Path, capsys) -> None:
    """Every case above is the base with one thing broken, so the base itself must pass, as YAML and JSON."""
    for fmt in ("yaml", "json"):
        assert main(["values", scenario(fmt)(tmp_path)]) == 0
        out, err = capsys.readouterr()
        assert err == "" and json.loads(out)["classes"] == ["cat", "dog"]


# ----------------------------------------------------------------------------- symcnn exercise


@dataclass(frozen=True)
class ExerciseCase:
    id: str
    arguments: Callable[[Path], list[str]]  # everything after `exercise` but --out
    where: str
    what: str


def options(*args: str, scenario_file=None) -> Callable[[Path], list[str]]:
    return lambda folder: ([scenario_file(folder)] if scenario_file else []) + list(args)


EXERCISE_CASES = [
    ExerciseCase("seed-not-a-number", options("--seed", "seven"), "--seed", "expected a whole number, got 'seven'"),
    ExerciseCase("seed-decimal", options("--seed", "1.5"), "--seed", "expected a whole number, got '1.5'"),
    ExerciseCase("seed-negative", options("--seed", "-3"), "--seed", "must be >= 0, got -3"),
    ExerciseCase("count-zero", options("--seed", "1", "--count", "0"), "--count", "must be >= 1, got 0"),
    ExerciseCase(
        "count-not-a-number", options("--seed", "1", "--count", "ten"), "--count", "expected a whole number, got 'ten'"
    ),
    ExerciseCase("jobs-zero", options("--seed", "1", "--jobs", "0"), "--jobs", "must be >= 1, got 0"),
    ExerciseCase(
        "difficulty-unknown",
        options("--seed", "1", "--difficulty", "extreme"),
        "--difficulty",
        "unknown 'extreme'; expected one of easy, medium, hard",
    ),
    ExerciseCase(
        "format-unknown",
        options("--seed", "1", "--format", "docx"),
        "--format",
        "unknown 'docx'; expected one of markdown, pdf, html",
    ),
    ExerciseCase(
        "scenario-unknown",
        options("no-such-scenario", "--seed", "1"),
        "no-such-scenario",
        "no such file or built-in scenario (built-ins: four-images, ",
    ),
    ExerciseCase(
        "scenario-missing-file", options("--seed", "1", scenario_file=missing("gone.yaml")), FILE, "no such file"
    ),
    ExerciseCase(
        "scenario-bad-shape",
        options("--seed", "1", scenario_file=scenario("yaml", ("inputs[1].pixels", grid(4, 3)))),
        "inputs[1].pixels",
        "shape 1x4x3 differs from inputs[0] (1x4x4)",
    ),
    ExerciseCase(
        "scenario-bad-allow",
        options("--seed", "1", scenario_file=scenario("json", ("exercise", {"allow": "ties"}))),
        "exercise.allow",
        "expected a list, got text 'ties'",
    ),
]


def assert_exercise_rejected(c: ExerciseCase, arguments: list[str], code: int, out: str, err: str) -> None:
    argument = next((a for a in arguments if a.endswith((".yaml", ".json"))), "")
    assert_rejected(Case(c.id, lambda folder: "", c.where, c.what), argument, code, out, err)


@pytest.mark.parametrize("c", EXERCISE_CASES, ids=[c.id for c in EXERCISE_CASES])
def test_exercise_rejected_in_process(c: ExerciseCase, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    arguments = c.arguments(tmp_path)
    code = main(["exercise", *arguments, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert_exercise_rejected(c, arguments, code, out, err)
    assert not (tmp_path / "out").exists(), "nothing may be written"


@pytest.mark.parametrize("c", EXERCISE_CASES[::3], ids=[c.id for c in EXERCISE_CASES[::3]])
def test_exercise_rejected_by_the_command_line(c: ExerciseCase, tmp_path: Path) -> None:
    arguments = c.arguments(tmp_path)
    result = run_cli("exercise", *arguments, "--out", "out", cwd=tmp_path)
    assert_exercise_rejected(c, arguments, result.returncode, result.stdout, result.stderr)
    assert not (tmp_path / "out").exists(), "nothing may be written"


@pytest.mark.parametrize("out", ["a-file", "a-file/sheets"])
def test_exercise_out_must_be_a_folder(out: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    code = main(["exercise", "--seed", "1", "--out", str(tmp_path / out)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --out: "), err
    assert (tmp_path / "a-file").read_text() == "not a folder"
