"""Network stacks (`layers`): the contract's parsing rules (each bad input: one `error: <path>: ...`
line, exit 2), default names, the per-layer keys every scenario reports (legacy scenarios repeat their
legacy keys), and the stack built-ins. The numbers themselves: test_stacks.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import symcnn
from symcnn.cli import main
from symcnn.scenario.sources import read_source

try:
    from reference import reference_run, reference_stack_run
    from stack_oracles import degenerate, engine_values, torch_stack_run
    from test_bad_input import DELETE, assert_rejected, put, run_cli
    from test_bad_input import Case as BadCase
    from test_properties import assert_same
except ImportError:  # tests/ imported as a package
    from tests.reference import reference_run, reference_stack_run
    from tests.stack_oracles import degenerate, engine_values, torch_stack_run
    from tests.test_bad_input import DELETE, assert_rejected, put, run_cli
    from tests.test_bad_input import Case as BadCase
    from tests.test_properties import assert_same

TWO_CONV: dict = read_source("two-conv")[0]
LEGACY = ("four-images", "zebra-cat", "mnist-like")
STACK_RTOL, STACK_ATOL = 1e-9, 1e-11


def with_training(scenario: dict, **training: Any) -> dict:
    data = copy.deepcopy(scenario)
    data["training"] = {**data["training"], **training}
    return data


# ============================================================================= parsing: the contract's rules

FOUR = read_source("four-images")[0]
GRID_2x2 = [[0.1, 0.2], [0.3, 0.4]]


def stack(*edits) -> Any:
    """A writer: two-conv with ``edits`` applied (callables, or (path, value) with DELETE), as YAML."""

    def write(folder: Path) -> str:
        import yaml

        data = copy.deepcopy(TWO_CONV)
        for edit in edits:
            if callable(edit):
                edit(data)
            else:
                put(data, *edit)
        target = folder / "stack.yaml"
        target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return str(target)

    return write


def insert(index: int, layer: dict):
    return lambda data: data["layers"].insert(index, layer)


def keep(count: int):
    return lambda data: data.update(layers=data["layers"][:count])


def also(key: str):
    return lambda data: data.update({key: copy.deepcopy(FOUR[key])})


CONV_LAYER = {"conv": {"filters": [{"name": "Z", "weights": [[1.0]]}]}}
STACK_CASES = [
    BadCase(
        "conv-after-dense",
        stack(insert(7, CONV_LAYER)),
        "layers[7].conv",
        "a conv layer must come before the first dense layer",
    ),
    BadCase(
        "pool-after-dense",
        stack(insert(7, {"pool": {"kind": "max", "size": 2}})),
        "layers[7].pool",
        "a pool layer must come before the first dense layer",
    ),
    BadCase(
        "last-layer-activation",
        stack(lambda d: d["layers"].append({"activation": "relu"})),
        "layers[9]",
        "the last layer must be dense, one row per class",
    ),
    BadCase("no-dense-layer", stack(keep(3)), "layers[2]", "the last layer must be dense"),
    BadCase(
        "last-dense-rows-not-classes",
        stack(("layers[8].dense.weights", [[0.1] * 3] * 3), ("layers[8].dense.biases", [0, 0, 0])),
        "layers[8].dense.weights",
        "expected 2x3 (outputs x inputs, one row per class",
    ),
    BadCase(
        "hidden-dense-wrong-inputs",
        stack(("layers[6].dense.weights", [[0.1] * 4] * 3)),
        "layers[6].dense.weights",
        "expected 3x2 (outputs x inputs), got 3x4",
    ),
    BadCase(
        "hidden-dense-biases-wrong-count",
        stack(("layers[6].dense.biases", [0, 0])),
        "layers[6].dense.biases",
        "expected 3 values (one per output), got 2",
    ),
    BadCase(
        "hidden-dense-missing-biases",
        stack(("layers[6].dense.biases", DELETE)),
        "layers[6].dense.biases",
        "missing key",
    ),
    BadCase("layers-and-conv", stack(also("conv")), "conv", "not both"),
    BadCase("layers-and-dense", stack(also("dense")), "dense", "not both"),
    BadCase("layers-and-activation", stack(lambda d: d.update(activation="relu")), "activation", "not both"),
    BadCase("layers-and-pool", stack(lambda d: d.update(pool="none")), "pool", "not both"),
    BadCase(
        "name-used-twice",
        stack(("layers[3].conv.name", "conv1")),
        "layers[3].conv.name",
        "layer name 'conv1' is already used by layers[0]",
    ),
    BadCase(
        "name-takes-a-default-name",
        stack(("layers[6].dense.name", "dense2"), ("layers[8].dense.name", DELETE)),
        "layers[8].dense",
        "layer name 'dense2' is already used by layers[6]",
    ),
    BadCase(
        "name-across-kinds",
        stack(("layers[1]", {"activation": {"kind": "relu", "name": "pool1"}})),
        "layers[2].pool",
        "layer name 'pool1' is already used by layers[1]",
    ),
    BadCase(
        "second-conv-2d-filter",
        stack(("layers[3].conv.filters[0].weights", GRID_2x2)),
        "layers[3].conv.filters[0].weights",
        "has 1 channel(s), the layer's input has 2 (give C x kh x kw)",
    ),
    BadCase(
        "second-conv-3-channels",
        stack(("layers[3].conv.filters[1].weights", [GRID_2x2] * 3)),
        "layers[3].conv.filters[1].weights",
        "has 3 channel(s), the layer's input has 2",
    ),
    BadCase(
        "second-conv-filter-too-large",
        stack(
            ("layers[3].conv.filters[0].weights", [[[0.1] * 4] * 4] * 2),
            ("layers[3].conv.filters[1].weights", [[[0.1] * 4] * 4] * 2),
        ),
        "layers[3].conv.filters[0].weights",
        "filter 4x4 is larger than the padded input 3x3",
    ),
    BadCase(
        "second-conv-filters-differ",
        stack(("layers[3].conv.filters[1].weights", [[[0.1] * 3] * 3] * 2)),
        "layers[3].conv.filters[1].weights",
        "expected 2x2x2 like layers[3].conv.filters[0], got 2x3x3",
    ),
    BadCase(
        "duplicate-filter-names",
        stack(("layers[3].conv.filters[1].name", "P")),
        "layers[3].conv.filters[1].name",
        "duplicate filter name 'P'",
    ),
    BadCase(
        "unknown-layer-kind",
        stack(("layers[2]", {"maxpool": {"size": 2}})),
        "layers[2]",
        "unknown layer kind text 'maxpool'; expected one of conv, activation, pool, dense",
    ),
    BadCase(
        "two-kinds-in-one-item",
        stack(("layers[1]", {"activation": "relu", "pool": {"kind": "max", "size": 2}})),
        "layers[1]",
        "expected one of conv, activation, pool, dense as the only key",
    ),
    BadCase("layer-is-text", stack(("layers[1]", "relu")), "layers[1]", "as the only key, got text 'relu'"),
    BadCase("empty-layers", stack(("layers", [])), "layers", "expected at least 1 entry, got 0"),
    BadCase("layers-is-a-mapping", stack(("layers", {"conv": {}})), "layers", "expected a list, got a mapping"),
    BadCase(
        "pool-none-in-a-stack",
        stack(("layers[2].pool", {"kind": "none", "size": 2})),
        "layers[2].pool.kind",
        "leave the layer out",
    ),
    BadCase(
        "pool-does-not-fit",
        stack(("layers[5].pool", {"kind": "max", "size": 3})),
        "layers[5].pool.size",
        "window 3x3 does not fit the 2x2 feature map",
    ),
    BadCase("unknown-conv-key", stack(("layers[0].conv.dilation", 2)), "layers[0].conv.dilation", "unknown key"),
    BadCase(
        "unknown-dense-key",
        stack(("layers[6].dense.bias", [0, 0, 0])),
        "layers[6].dense.bias",
        "unknown key (did you mean 'biases'?)",
    ),
    BadCase(
        "slope-on-relu",
        stack(("layers[1].activation", {"kind": "relu", "slope": 0.1})),
        "layers[1].activation.slope",
        "only leaky_relu takes a slope",
    ),
    BadCase(
        "unknown-activation",
        stack(("layers[7].activation", "gelu")),
        "layers[7].activation",
        "unknown activation text 'gelu'",
    ),
    BadCase(
        "name-is-a-list", stack(("layers[6].dense.name", ["h"])), "layers[6].dense.name", "expected text, got a list"
    ),
]


def test_the_stack_table_is_distinct() -> None:
    assert len({c.id for c in STACK_CASES}) == len(STACK_CASES) >= 25


@pytest.mark.parametrize("c", STACK_CASES, ids=[c.id for c in STACK_CASES])
def test_bad_stack_rejected_in_process(c: BadCase, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argument = c.write(tmp_path)
    code = main(["values", argument])
    out, err = capsys.readouterr()
    assert_rejected(c, argument, code, out, err)


@pytest.mark.parametrize("c", STACK_CASES[::4], ids=[c.id for c in STACK_CASES[::4]])
def test_bad_stack_rejected_by_python_m_symcnn_values(c: BadCase, tmp_path: Path) -> None:
    argument = c.write(tmp_path)
    result = run_cli("values", argument, cwd=tmp_path)
    assert_rejected(c, argument, result.returncode, result.stdout, result.stderr)


def test_the_unbroken_stack_base_is_accepted(tmp_path: Path, capsys) -> None:
    assert main(["values", stack()(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "two-conv"


def _names(scenario: dict) -> list[str]:
    return [entry["name"] for entry in engine_values(scenario)["steps"][0]["layers"]]


def test_default_names_count_each_kind() -> None:
    data = copy.deepcopy(TWO_CONV)
    for item in data["layers"]:
        ((_, body),) = item.items()
        if isinstance(body, dict):
            body.pop("name", None)
    assert _names(data) == [
        "conv1",
        "activation1",
        "pool1",
        "conv2",
        "activation2",
        "pool2",
        "dense1",
        "activation3",
        "dense2",
    ]
    assert _names(TWO_CONV) == [
        "conv1",
        "activation1",
        "pool1",
        "conv2",
        "activation2",
        "pool2",
        "hidden",
        "activation3",
        "out",
    ]
    kinds = [e["kind"] for e in engine_values(TWO_CONV)["steps"][0]["layers"]]
    assert kinds == ["conv", "activation", "pool", "conv", "activation", "pool", "dense", "activation", "dense"]


def test_long_forms_name_layers_and_change_no_number() -> None:
    data = copy.deepcopy(TWO_CONV)
    data["layers"][1] = {"activation": {"kind": "relu", "name": "r"}}
    data["layers"][2] = {"pool": {"kind": "max", "size": 2, "name": "p"}}
    data["layers"][0]["conv"]["name"] = "edges"
    assert _names(data)[:4] == ["edges", "r", "p", "conv2"]  # the count of conv layers goes on: conv2
    a, b = engine_values(data), engine_values(TWO_CONV)
    for x, y in zip(a["steps"][0]["layers"], b["steps"][0]["layers"]):
        assert x["output"] == y["output"] and x["grad_output"] == y["grad_output"]


def test_leaky_relu_alone_means_slope_one_hundredth() -> None:
    alone, explicit = copy.deepcopy(TWO_CONV), copy.deepcopy(TWO_CONV)
    alone["layers"][1] = {"activation": "leaky_relu"}
    explicit["layers"][1] = {"activation": {"kind": "leaky_relu", "slope": 0.01}}
    a = engine_values(alone)
    assert a == engine_values(explicit)
    z, out = np.array(a["steps"][0]["layers"][0]["output"]), np.array(a["steps"][0]["layers"][1]["output"])
    assert np.any(z < 0)
    np.testing.assert_allclose(out, np.where(z > 0, z, 0.01 * z), rtol=0, atol=0)
    assert_same(a, reference_stack_run(alone), STACK_RTOL, STACK_ATOL)


def test_a_stack_without_conv_layers_is_a_plain_network_on_the_flattened_input() -> None:
    rng = np.random.default_rng(3)
    scenario = {
        "name": "mlp",
        "classes": ["a", "b", "c"],
        "inputs": [
            {"name": f"x{i}", "label": "abc"[i], "pixels": rng.uniform(0, 1, (2, 3, 2)).tolist()} for i in range(3)
        ],
        "layers": [
            {"dense": {"weights": rng.uniform(-1, 1, (4, 12)).tolist(), "biases": [0.1] * 4}},
            {"activation": "sigmoid"},
            {"dense": {"weights": rng.uniform(-1, 1, (3, 4)).tolist(), "biases": [0.0] * 3}},
        ],
        "training": {"learning_rate": 0.5, "iterations": 2, "update": "batch_sum"},
    }
    actual = engine_values(scenario)
    assert np.array(actual["steps"][0]["grad_input"]).shape == (2, 3, 2)
    assert_same(actual, reference_stack_run(scenario), STACK_RTOL, STACK_ATOL)
    assert_same(actual, torch_stack_run(scenario), STACK_RTOL, STACK_ATOL)


def test_what_every_stack_step_reports() -> None:
    """The contract's shapes and identities, on two-conv: the last dense output is the logits, each
    activation's input is the previous layer's output, updates list the learning layers in order."""
    values = engine_values(TWO_CONV)
    shapes = [(2, 6, 6), (2, 6, 6), (2, 3, 3), (2, 2, 2), (2, 2, 2), (2, 1, 1), (3,), (3,), (2,)]
    for step in values["steps"]:
        entries = step["layers"]
        assert [np.array(e["output"]).shape for e in entries] == shapes
        assert [np.array(e["grad_output"]).shape for e in entries] == shapes
        assert entries[-1]["output"] == step["logits"] and entries[-1]["grad_output"] == step["grad_logits"]
        np.testing.assert_array_equal(entries[1]["output"], np.maximum(entries[0]["output"], 0))
        np.testing.assert_allclose(entries[7]["output"], np.tanh(entries[6]["output"]), rtol=1e-15)
        assert [("grad_weights" in e, "grad_biases" in e) for e in entries] == [
            (e["kind"] in ("conv", "dense"),) * 2 for e in entries
        ]
        assert np.array(entries[0]["grad_weights"]).shape == (2, 3, 3)  # per filter, as given (2-D)
        assert np.array(entries[3]["grad_weights"]).shape == (2, 2, 2, 2)
        assert np.array(step["grad_input"]).shape == (6, 6)  # the input was given as H x W
    for update in values["updates"]:
        assert [e["name"] for e in update["layers"]] == ["conv1", "conv2", "hidden", "out"]
    frozen = with_training(TWO_CONV, update_filters=False)
    assert [e["name"] for e in engine_values(frozen)["updates"][0]["layers"]] == ["hidden", "out"]
    for final in values["final"]:
        assert [set(e) for e in final["layers"]] == [{"kind", "name", "output"}] * 9
        assert final["layers"][-1]["output"] == final["logits"]


# ============================================================================= legacy scenarios


def _legacy_as_layers(data: dict) -> dict:
    """The legacy keys rewritten as the `layers` list they mean (a `none` pool left out)."""
    stacked = {k: v for k, v in data.items() if k not in ("conv", "activation", "pool", "dense", "claims")}
    pool = data.get("pool", "none")
    stacked["layers"] = (
        [{"conv": data["conv"]}, {"activation": data.get("activation", "relu")}]
        + ([] if pool == "none" else [{"pool": pool}])
        + [{"dense": data["dense"]}]
    )
    return stacked


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_layer_keys_repeat_the_legacy_keys(name: str) -> None:
    data = read_source(name)[0]
    values = engine_values(data)
    has_pool = data.get("pool", "none") != "none"
    names = ["conv1", "activation1"] + (["pool1"] if has_pool else []) + ["dense1"]
    for step in values["steps"]:
        entries = {e["name"]: e for e in step["layers"]}
        assert [e["name"] for e in step["layers"]] == names
        conv, act, dense = entries["conv1"], entries["activation1"], entries["dense1"]
        pooled = entries["pool1"] if has_pool else act
        assert conv["output"] == step["conv"] and conv["grad_output"] == step["grad_conv"]
        assert act["output"] == step["activated"] and act["grad_output"] == step["grad_activated"]
        assert pooled["output"] == step["pooled"] and pooled["grad_output"] == step["grad_pooled"]
        assert dense["output"] == step["logits"] and dense["grad_output"] == step["grad_logits"]
        assert conv["grad_weights"] == step["grad_filters"] and conv["grad_biases"] == step["grad_filter_biases"]
        assert dense["grad_weights"] == step["grad_dense_weights"]
        assert dense["grad_biases"] == step["grad_dense_biases"]
        assert np.array(step["grad_input"]).shape == np.array(data["inputs"][0]["pixels"]).shape
    learns_filters = data["training"].get("update_filters", False)
    for update in values["updates"]:
        entries = {e["name"]: e for e in update["layers"]}
        assert list(entries) == (["conv1"] if learns_filters else []) + ["dense1"]
        assert entries["dense1"]["weights"] == update["dense_weights"]
        assert entries["dense1"]["biases"] == update["dense_biases"]
        if learns_filters:
            assert entries["conv1"]["weights"] == update["filters"]
    for final in values["final"]:
        assert final["layers"][0]["output"] == final["conv"] and final["layers"][-1]["output"] == final["logits"]
    # the same network given as `layers`: the same numbers, and no legacy keys needed
    stacked = engine_values(_legacy_as_layers(data))
    for a, b in zip(stacked["steps"], values["steps"]):
        assert a["layers"] == b["layers"] and a["grad_input"] == b["grad_input"] and a["loss"] == b["loss"]
    assert [u["layers"] for u in stacked["updates"]] == [u["layers"] for u in values["updates"]]


@pytest.mark.parametrize("name", ["four-images", "zebra-cat"])
def test_legacy_keys_still_match_the_legacy_reference(name: str) -> None:
    data = read_source(name)[0]
    assert_same(engine_values(data), reference_run(data))
    assert_same(engine_values(data), reference_stack_run(data))


# ============================================================================= the stack built-ins


def test_lenet_like_is_what_the_generator_writes() -> None:
    from symcnn.scenario.lenet import lenet_like, to_yaml
    from symcnn.scenario.sources import builtin_dir

    committed = (builtin_dir() / "lenet-like.yaml").read_text(encoding="utf-8")
    assert committed == to_yaml(lenet_like()), (
        "regenerate: python -m symcnn.scenario.lenet > symcnn/scenario/builtins/lenet-like.yaml"
    )


def test_lenet_like_has_lenet_shapes_and_live_gradients() -> None:
    sc = symcnn.load("lenet-like")
    assert sc.inputs[0].pixels.shape == (1, 28, 28) and len(sc.inputs) == 2 and len(sc.classes) == 10
    step = symcnn.run(sc).to_dict()["steps"][0]
    shapes = [np.array(e["output"]).shape for e in step["layers"]]
    assert shapes == [
        (6, 28, 28),
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 10, 10),
        (16, 5, 5),
        (120,),
        (120,),
        (84,),
        (84,),
        (10,),
    ]
    assert max(step["probs"]) < 0.5 and min(step["probs"]) > 0.01  # not saturated
    for e in step["layers"]:
        if "grad_weights" in e:
            assert np.count_nonzero(e["grad_weights"]) > 0.1 * np.size(e["grad_weights"]), e["name"]
    assert np.count_nonzero(step["grad_input"]) > 100


def test_two_conv_is_hand_sized_and_not_degenerate() -> None:
    values = engine_values(TWO_CONV)
    assert not degenerate(TWO_CONV, reference_stack_run(TWO_CONV), 0.01)
    numbers = [x for s in TWO_CONV["inputs"] for row in s["pixels"] for x in row]
    numbers += [
        x
        for item in TWO_CONV["layers"]
        for body in item.values()
        if isinstance(body, dict)
        for f in body.get("filters", [])
        for x in np.ravel(f["weights"])
    ]
    assert all(round(x, 1) == x for x in numbers)  # tenths and integers
    for step in values["steps"]:
        assert 0.2 < min(step["probs"]) and max(step["probs"]) < 0.8
        for e in step["layers"]:
            if "grad_weights" in e:
                assert np.count_nonzero(e["grad_weights"]) >= 3, e["name"]
    # one step of training raises the right class for both samples
    for step, final in zip(values["steps"], values["final"]):
        label = values["classes"].index(step["label"])
        assert final["probs"][label] > step["probs"][label]
