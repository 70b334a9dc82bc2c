"""The command line as a user meets it: real `python -m symcnn` processes, exit codes, output formats."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from symcnn.scenario.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = ("four-images", "zebra-cat")
# step: the optimizer step t, an int
TEXT_KEYS = {"scenario", "classes", "iteration", "sample", "label", "after", "step"}
TOTAL = re.compile(r"^total\s+(\d+)\s+\S+\s+all agree\b", re.MULTILINE)
CLAIMS_HELD = re.compile(r"^(\d+) of (\d+) claims hold$", re.MULTILINE)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def run(*args: str, cwd: Path | None = None, command: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(command or [sys.executable, "-m", "symcnn"]), *args],
        capture_output=True,
        encoding="utf-8",
        cwd=cwd or ROOT,
        env=_env(),
        timeout=120,
    )


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, encoding="utf-8", cwd=ROOT, env=_env(), timeout=120
    )


def shape(value) -> tuple[int, ...]:
    """The shape of a rectangular nested list of numbers; fails on ragged ones."""
    if not isinstance(value, list):
        return ()
    assert value, "empty list"
    inner = [shape(v) for v in value]
    assert all(s == inner[0] for s in inner), f"ragged: {inner}"
    return (len(value), *inner[0])


def numbers(data, path: str = ""):
    """(path, leaf) for every leaf of a values dict except the text/index keys."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in TEXT_KEYS | {"kind", "name"}:
                yield from numbers(value, f"{path}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from numbers(value, f"{path}[{i}]")
    else:
        yield path, data


@pytest.fixture(scope="module")
def four_images_values() -> dict:
    result = run("values", "four-images")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- list


def test_list_prints_both_builtins_with_titles_tab_separated():
    result = run("list")
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout.endswith("\n")
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(row) == 2 for row in rows), rows
    titles = dict(rows)
    assert set(BUILTINS) <= set(titles)
    for name in BUILTINS:
        assert titles[name] == read_source(name)[0]["title"]
        assert titles[name].strip()
    assert titles["four-images"] == "Four 4x4 images, two filters"


# ----------------------------------------------------------------------------- values


def test_values_four_images_has_the_contract_schema(four_images_values):
    v = four_images_values
    assert {"scenario", "classes", "steps", "updates", "final"} <= set(v)
    assert v["scenario"] == "four-images"
    assert v["classes"] == ["cat", "dog"]

    step_shapes = {
        "conv": (2, 3, 3),
        "activated": (2, 3, 3),
        "pooled": (2, 3, 3),
        "features": (18,),
        "logits": (2,),
        "probs": (2,),
        "loss": (),
        "grad_logits": (2,),
        "grad_dense_weights": (2, 18),
        "grad_dense_biases": (2,),
        "grad_filters": (2, 2, 2),
        "grad_filter_biases": (2,),
    }
    assert len(v["steps"]) == 4
    for i, step in enumerate(v["steps"]):
        assert {"iteration", "sample", "label", *step_shapes} <= set(step), sorted(step)
        assert step["iteration"] == 1
        assert step["sample"] == f"img{i + 1}"
        assert step["label"] == ["cat", "cat", "dog", "dog"][i]
        for key, expected in step_shapes.items():
            assert shape(step[key]) == expected, (i, key, shape(step[key]))
        assert math.isclose(sum(step["probs"]), 1.0, rel_tol=1e-12)

    update_shapes = {"dense_weights": (2, 18), "dense_biases": (2,), "filters": (2, 2, 2), "filter_biases": (2,)}
    assert len(v["updates"]) == 4
    assert [u["after"] for u in v["updates"]] == ["img1", "img2", "img3", "img4"]
    for u in v["updates"]:
        assert {"iteration", "after", *update_shapes} <= set(u)
        assert u["iteration"] == 1
        for key, expected in update_shapes.items():
            assert shape(u[key]) == expected, (key, shape(u[key]))

    assert len(v["final"]) == 4
    assert [f["sample"] for f in v["final"]] == ["img1", "img2", "img3", "img4"]
    for f in v["final"]:
        assert {"sample", "logits", "probs", "loss"} <= set(f)
        assert shape(f["logits"]) == (2,) and shape(f["probs"]) == (2,) and shape(f["loss"]) == ()


def test_values_numbers_are_finite_floats(four_images_values):
    leaves = list(numbers(four_images_values))
    assert len(leaves) > 500
    not_floats = [(path, value) for path, value in leaves if type(value) is not float]
    assert not not_floats, not_floats[:5]
    assert all(math.isfinite(value) for _, value in leaves)


def test_values_zebra_cat_shapes():
    result = run("values", "zebra-cat")
    assert result.returncode == 0 and result.stderr == ""
    v = json.loads(result.stdout)
    assert v["classes"] == ["zebra", "cat"]
    assert [(s["iteration"], s["sample"]) for s in v["steps"]] == [(1, "zebra"), (1, "cat"), (2, "zebra"), (2, "cat")]
    assert [(u["iteration"], u["after"]) for u in v["updates"]] == [(1, "zebra"), (1, "cat"), (2, "zebra"), (2, "cat")]
    step = v["steps"][0]
    assert shape(step["conv"]) == (1, 1, 1) and shape(step["pooled"]) == (1, 1, 1)
    assert shape(step["features"]) == (1,) and shape(step["grad_dense_weights"]) == (2, 1)
    assert shape(step["grad_filters"]) == (1, 3, 3)
    assert [f["sample"] for f in v["final"]] == ["zebra", "cat"]


def test_values_reads_yaml_yml_and_json_alike(tmp_path):
    data = copy.deepcopy(read_source("four-images")[0])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (tmp_path / "s.yml").write_text(yaml.safe_dump(data, default_flow_style=True), encoding="utf-8")
    (tmp_path / "s.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    outputs = {}
    for name in ("s.yaml", "s.yml", "s.json", "four-images"):
        result = run("values", str(tmp_path / name) if name.startswith("s.") else name, cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr)
        assert result.stderr == ""
        outputs[name] = result.stdout
    assert json.loads(outputs["s.yaml"])["scenario"] == "four-images"
    assert outputs["s.yaml"] == outputs["s.yml"] == outputs["s.json"] == outputs["four-images"]


def test_values_of_a_changed_scenario_differ(tmp_path):
    """The equality above is not vacuous: one changed weight changes the output."""
    data = copy.deepcopy(read_source("four-images")[0])
    data["dense"]["weights"][0][1] = 0.2  # feature 1 of img1 is 2 (feature 0 is 0)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    changed = run("values", str(path))
    original = run("values", "four-images")
    assert changed.returncode == original.returncode == 0
    assert json.loads(changed.stdout)["steps"][0]["logits"] != json.loads(original.stdout)["steps"][0]["logits"]


def test_values_does_not_import_sympy():
    result = run_python(
        "import sys, symcnn.cli; code = symcnn.cli.main(['values', 'four-images']); "
        "assert code == 0, code; assert 'sympy' not in sys.modules, 'values imported sympy'"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scenario"] == "four-images"


def test_check_does_import_sympy():
    """The control for the test above: the same probe sees SymPy once `check` has run."""
    result = run_python(
        "import sys, symcnn.cli; code = symcnn.cli.main(['check', 'zebra-cat']); "
        "assert code == 0, code; assert 'sympy' in sys.modules"
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- check


@pytest.mark.parametrize("name", BUILTINS)
def test_check_builtin_agrees(name):
    result = run("check", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    total = TOTAL.search(result.stdout)
    assert total, result.stdout
    assert int(total.group(1)) > 0
    held = CLAIMS_HELD.search(result.stdout)
    assert held and held.group(1) == held.group(2), result.stdout
    assert "✗" not in result.stdout


def test_check_with_a_false_claim_exits_1_and_marks_it(tmp_path):
    data = copy.deepcopy(read_source("zebra-cat")[0])
    data["claims"].append({"at": "final[0].probs[0]", "value": 0.9, "tol": 0.001, "note": "wrong on purpose"})
    path = tmp_path / "false-claim.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = run("check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ""
    assert TOTAL.search(result.stdout), "the symbolic/numeric comparison itself still agrees"
    marked = [line for line in result.stdout.splitlines() if "✗" in line]
    assert len(marked) == 1 and "wrong on purpose" in marked[0] and marked[0].startswith("final[0].probs[0]")
    n = len(data["claims"])
    assert f"{n - 1} of {n} claims hold" in result.stdout


# ----------------------------------------------------------------------------- help


HELP_PURPOSE = {
    "list": "built-in scenarios",
    "values": "JSON",
    "check": "SymPy",
    "render": "worked solution",
}


def _subcommands() -> list[str]:
    from symcnn.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sorted(actions[0].choices)


def test_top_level_help_names_every_subcommand():
    result = run("--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: symcnn")
    for name in HELP_PURPOSE:
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.MULTILINE), name


@pytest.mark.parametrize("name", sorted(set(HELP_PURPOSE) | set(_subcommands())))
def test_every_subcommand_has_help(name):
    result = run(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"usage: symcnn {name}")
    description = result.stdout.split("\n\n")[1]  # argparse: usage, blank line, description
    assert len(description.split()) >= 4, result.stdout
    if name in HELP_PURPOSE:
        assert HELP_PURPOSE[name].lower() in result.stdout.lower(), result.stdout


def test_no_subcommand_is_a_usage_error():
    result = run()
    assert result.returncode == 2
    assert result.stdout == ""
    assert "usage: symcnn" in result.stderr and "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- entry points


def _console_script() -> str | None:
    found = shutil.which("symcnn")
    if found:
        return found
    beside = Path(sys.executable).with_name("symcnn")
    return str(beside) if beside.exists() else None


@pytest.mark.parametrize("args", [("list",), ("values", "zebra-cat"), ("values", "no-such-scenario")])
def test_console_script_matches_python_m(args):
    script = _console_script()
    if script is None:
        pytest.skip("the `symcnn` console script is not installed (pip install . puts it on PATH)")
    via_module = run(*args)
    via_script = run(*args, command=[script])
    assert (via_script.returncode, via_script.stdout, via_script.stderr) == (
        via_module.returncode,
        via_module.stdout,
        via_module.stderr,
    )
