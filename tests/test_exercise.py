"""`symcnn exercise`: seeded variants are deterministic, checked, nice at easy, and their sheets and key agree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symcnn.cli import main
from symcnn.document.model import Settings
from symcnn.engine.exact import derive
from symcnn.engine.numeric import run
from symcnn.errors import ScenarioError
from symcnn.exercises.questions import choose_questions, tolerance
from symcnn.exercises.sheets import solution_document, student_document
from symcnn.exercises.variants import LEVELS, draw_variant
from symcnn.rendering import formats as rendering
from symcnn.scenario.sources import load, read_source
from symcnn.verify import check, checked, lookup

BUILTINS = ("four-images", "zebra-cat")
HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


def exercise(out: Path, *args: str) -> int:
    return main(["exercise", *args, "--out", str(out)])


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Three variants of four-images, seed 11, on two worker processes."""
    out = tmp_path_factory.mktemp("batch")
    assert exercise(out, "four-images", "--seed", "11", "--count", "3", "--jobs", "2") == 0
    return out


# ----------------------------------------------------------------------------- layout and determinism


def test_a_batch_has_a_folder_per_variant_and_a_key(batch):
    names = sorted(name for name in files(batch) if "-figures/" not in name)  # the sheets' SVG pictures
    assert names == ["key.json", "key.md"] + [
        f"variant-0{k}/{f}" for k in (1, 2, 3) for f in ("scenario.yaml", "solution.md", "student.md")
    ]
    for k in (1, 2, 3):  # each picture a sheet shows is there
        for sheet in ("student", "solution"):
            text = (batch / f"variant-0{k}/{sheet}.md").read_text()
            for picture in re.findall(rf"\]\(({sheet}-figures/[^)]+\.svg)\)", text):
                assert (batch / f"variant-0{k}" / picture).is_file(), picture
    key = json.loads((batch / "key.json").read_text())
    assert (key["scenario"], key["seed"], key["count"], key["difficulty"]) == ("four-images", 11, 3, "easy")
    assert sorted(key["variants"]) == ["1", "2", "3"]
    for entry in key["variants"].values():
        assert list(entry["questions"]) == [f"q{n}" for n in range(1, 8)]
    table = (batch / "key.md").read_text()
    for number, entry in key["variants"].items():  # one row per variant: the answers, rounded
        row = next(line for line in table.splitlines() if line.startswith(f"| {number} |"))
        cells = [c.strip().strip("$") for c in row.strip("|").split("|")[1:]]
        assert [float(c) for c in cells] == pytest.approx([q["value"] for q in entry["questions"].values()], abs=5e-4)


def test_same_seed_same_bytes_whatever_the_number_of_processes(batch, tmp_path):
    assert exercise(tmp_path, "four-images", "--seed", "11", "--count", "3", "--jobs", "1") == 0
    assert files(tmp_path) == files(batch)


def test_same_bytes_from_another_process_with_another_hash_seed(batch, tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ,
        PYTHONHASHSEED="123",
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    )
    command = [sys.executable, "-m", "symcnn", "exercise", "--seed", "11", "--count", "3", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert files(tmp_path) == files(batch)


def test_variant_k_does_not_depend_on_count(batch, tmp_path):
    assert exercise(tmp_path, "four-images", "--seed", "11", "--count", "2") == 0
    again = files(tmp_path)
    for name, content in files(batch).items():
        if name.startswith(("variant-01/", "variant-02/")):
            assert again[name] == content, name
    key, bigger = (json.loads((f / "key.json").read_text())["variants"] for f in (tmp_path, batch))
    assert key == {k: bigger[k] for k in ("1", "2")}


def test_different_seeds_give_different_variants(batch, tmp_path):
    assert exercise(tmp_path, "four-images", "--seed", "12") == 0
    for name in ("scenario.yaml", "student.md", "solution.md"):
        assert (tmp_path / "variant-01" / name).read_bytes() != (batch / "variant-01" / name).read_bytes()
    variants = [yaml.safe_load((batch / f"variant-0{k}/scenario.yaml").read_text()) for k in (1, 2, 3)]
    assert len({json.dumps(v["inputs"]) for v in variants}) == 3


def test_latex_sheets_are_deterministic():
    texts = []
    for _ in range(2):
        variant = draw_variant(load("zebra-cat"), 5, 2)
        questions = choose_questions(variant)
        report = checked(variant.scenario)
        settings = Settings.from_display(variant.scenario.display)
        docs = [sheet(report, variant, questions, settings) for sheet in (student_document, solution_document)]
        texts.append([rendering.render_text(doc, "latex") for doc in docs])
    assert texts[0] == texts[1]
    assert list(texts[0][0]) == ["student.tex"] and list(texts[0][1]) == ["solution.tex"]


# ----------------------------------------------------------------------------- checked, and the key is `symcnn values`


def test_every_variant_passes_check_and_the_key_is_its_values(batch):
    key = json.loads((batch / "key.json").read_text())
    for number, entry in key["variants"].items():
        sc = load(str(batch / entry["file"]))
        assert sc.name == entry["scenario"] == f"four-images-s11-v{number}"
        assert check(sc).ok
        values = run(sc).to_dict()
        for q in entry["questions"].values():
            assert q["value"] == lookup(values, q["path"]), q
            if q["path"].endswith("loss"):  # allows for the probability rounded to 3 decimals before the log
                p = values["steps"][0]["probs"][sc.classes.index(sc.inputs[0].label)]
                assert q["tol"] == max(tolerance(q["value"]), float(f"{0.0005 / p:.2g}"))
            else:
                assert 0 < q["tol"] <= 0.005


def test_the_structure_is_kept_and_the_numbers_are_new(batch):
    base = read_source("four-images")[0]
    variant = yaml.safe_load((batch / "variant-01/scenario.yaml").read_text())
    assert variant["classes"] == base["classes"]
    assert [(x["name"], x["label"]) for x in variant["inputs"]] == [(x["name"], x["label"]) for x in base["inputs"]]
    assert [np.shape(x["pixels"]) for x in variant["inputs"]] == [np.shape(x["pixels"]) for x in base["inputs"]]
    assert np.shape(variant["dense"]["weights"]) == np.shape(base["dense"]["weights"])
    assert variant["training"]["learning_rate"] == base["training"]["learning_rate"]
    assert variant["dense"]["weights"] != base["dense"]["weights"]
    assert "claims" not in variant


# ----------------------------------------------------------------------------- nice numbers, nothing degenerate


def exact(number: float) -> Fraction:
    return Fraction(repr(float(number)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(1, 500),
    name=st.sampled_from(BUILTINS),
    difficulty=st.sampled_from(["easy", "easy", "medium"]),
)
def test_easy_variants_are_exact_to_two_decimals_and_not_degenerate(seed, index, name, difficulty):
    variant = draw_variant(load(name), seed, index, difficulty)
    sc = variant.scenario
    for x in sc.inputs:  # inputs and weights: small integers or one decimal
        assert all(exact(v) * 10 == int(exact(v) * 10) for v in x.pixels.flat)
    assert all(exact(v).denominator == 1 for f in sc.conv.filters for v in f.weights.flat)
    assert all((exact(v) * 10).denominator == 1 for v in sc.dense.weights.flat)
    derivation = derive(sc)  # SymPy's exact values, independent of the generator's own check
    maps = [q for q in derivation.quantities() if re.search(r"\.(conv|activated|pooled)\[", q.path)]
    assert maps
    for q in maps:
        assert q.value.is_Rational and (q.value * 100).q == 1, (q.path, q.value)
    trace = variant.trace
    assert 0.01 <= trace.steps[0].probs.min() and trace.steps[0].probs.max() <= 0.99
    for step in (*trace.steps, *trace.final):
        assert all(np.any(m != 0) for m in step.activated)


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_other_difficulties_draw_checked_variants(difficulty):
    for name in BUILTINS:
        variant = draw_variant(load(name), 3, 1, difficulty)
        assert check(variant.scenario).ok
    pixels = draw_variant(load("four-images"), 3, 1, "hard").scenario.inputs[0].pixels
    assert not np.all(pixels == np.round(pixels))  # hard: decimals


def test_a_wide_dense_layer_gets_smaller_weights_not_saturated_probabilities():
    variant = draw_variant(load("mnist-like"), 1, 1)  # 1,352 features, ten classes
    probs = variant.trace.steps[0].probs
    assert 0.01 <= probs.min() and probs.max() <= 0.99
    assert np.abs(variant.scenario.dense.weights).max() < 0.1  # two decimals here, not the one of easy's ±0.5


def test_the_python_api_stays_callable(tmp_path):
    import symcnn

    for n in (1, 2):  # importing the batch module must not replace the function of the same name
        folders = symcnn.exercise("zebra-cat", seed=n, count=1, out=tmp_path / str(n), jobs=1)
        assert folders[0] == tmp_path / str(n) / "variant-01"
    (tmp_path / "a.yaml").write_text("variant: 1\nanswers: {q1: 0}\n")
    assert len(symcnn.grade(tmp_path / "a.yaml", tmp_path / "2" / "key.json").marks) == 7


def test_the_seed_alone_decides_each_draw():
    a, b = (draw_variant(load("zebra-cat"), 9, 4) for _ in range(2))
    assert a.data == b.data and a.draws == b.draws
    assert draw_variant(load("zebra-cat"), 9, 5).data != a.data
    assert LEVELS["easy"].nice and not LEVELS["hard"].nice


def test_a_scenario_that_cannot_be_drawn_says_why(monkeypatch):
    from symcnn.exercises import variants

    monkeypatch.setattr(variants, "MAX_DRAWS", 3)
    data = read_source("zebra-cat")[0]
    classes = [f"c{n}" for n in range(200)]  # 200 classes: some probability is always below 0.01
    data.update(classes=classes, dense={"weights": [[0.1]] * 200, "biases": [0] * 200})
    for x, label in zip(data["inputs"], ("c0", "c1")):
        x["label"] = label
    data["exercise"] = {"allow": ["zero-maps"]}
    reason = r"no usable easy variant in 3 draws.*probability below 0.01 or above 0.99.*allow: \[saturated\]"
    with pytest.raises(ScenarioError, match=reason):
        draw_variant(load(data), 1, 1)
    data["exercise"] = {"allow": ["zero-maps", "saturated"]}
    assert draw_variant(load(data), 1, 1).trace.steps[0].probs.min() < 0.01


def structure(**changes) -> dict:
    data = read_source("four-images")[0]
    data.pop("claims")
    return {**data, **changes}


TWO_CHANNELS = [[[0, 1, 0, 1]] * 4, [[1, 0, 1, 0]] * 4]
STRUCTURES = {
    "channels-padding-stride-avg-leaky-batch": structure(
        classes=["a", "b", "c"],
        inputs=[
            {"name": "p", "label": "a", "pixels": TWO_CHANNELS},
            {"name": "q", "label": "c", "pixels": TWO_CHANNELS},
        ],
        conv={"stride": 2, "padding": 1, "filters": [{"name": "A", "weights": [[[1, 0], [0, 1]], [[0, 1], [1, 0]]]}]},
        activation={"kind": "leaky_relu", "slope": 0.5},
        pool={"kind": "avg", "size": [1, 3]},
        dense={"weights": [[0.1] * 3] * 3, "biases": [0, 0, 0]},
        training={"learning_rate": 0.5, "update": "batch_mean"},
    ),
    "sigmoid-global-max-two-passes": structure(
        activation="sigmoid",
        pool={"kind": "max", "size": "global"},
        dense={"weights": [[0.1, 0.2], [0.3, 0.4]], "biases": [0, 0]},
        training={"learning_rate": 0.1, "iterations": 2, "update": "batch_sum"},
    ),
    "tanh-filters-learn": structure(activation="tanh", training={"learning_rate": 0.1, "update_filters": True}),
    "no-activation-overlapping-max": structure(
        activation="none",
        pool={"kind": "max", "size": 2, "stride": 1},
        dense={"weights": [[0.1] * 8, [0.2] * 8], "biases": [0, 0]},
    ),
}


@pytest.mark.parametrize("name", STRUCTURES)
def test_any_structure_gives_checked_variants_and_sheets(name, tmp_path, capsys):
    scenario = tmp_path / f"{name}.yaml"
    scenario.write_text(yaml.safe_dump({**STRUCTURES[name], "name": name}))
    assert exercise(tmp_path / "out", str(scenario), "--seed", "8", "--count", "2", "--jobs", "1") == 0
    key = json.loads((tmp_path / "out/key.json").read_text())
    for entry in key["variants"].values():
        sc = load(str(tmp_path / "out" / entry["file"]))
        assert check(sc).ok
        values = run(sc).to_dict()
        assert all(q["value"] == lookup(values, q["path"]) for q in entry["questions"].values())


# ----------------------------------------------------------------------------- the sheets


def test_the_student_sheet_asks_and_the_solution_answers(batch):
    key = json.loads((batch / "key.json").read_text())["variants"]["2"]
    student = (batch / "variant-02/student.md").read_text()
    solution = (batch / "variant-02/solution.md").read_text()
    assert student.count(r"\boxed{\rule") == 7
    assert "Questions and answers" not in student and "derived exactly with SymPy" not in student
    assert "variant: 2" in student
    for n, q in enumerate(key["questions"].values(), start=1):
        assert f"{n}. {q['question']}" in student and f"{n}. {q['question']}" in solution
        assert f"» Question {n} asks for" in solution
    head, worked = solution.split("## Setup", 1)
    assert "## Questions and answers" in head
    assert r"\boxed{" in worked  # the asked cells in their matrices


def test_html_goes_through_the_generic_renderer(tmp_path, capsys):
    code = exercise(tmp_path, "zebra-cat", "--seed", "1", "--count", "2", "--format", "html", "--jobs", "1")
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(files(tmp_path)) == ["key.html", "key.json"] + [
        f"variant-0{k}/{f}" for k in (1, 2) for f in ("scenario.yaml", "solution.html", "student.html")
    ]
    assert "Exercise 2: A zebra and a cat" in (tmp_path / "variant-02/student.html").read_text()


@pytest.mark.skipif(not HAVE_TEX, reason="needs latexmk and pdflatex (Debian: texlive-latex-extra latexmk)")
def test_pdf_sheets_and_the_class_set_compile(tmp_path, capsys):
    assert exercise(tmp_path, "--seed", "4", "--count", "3", "--format", "pdf") == 0
    out = capsys.readouterr().out.split()
    assert out[-5:] == [str(tmp_path / f) for f in ("key.json", "key.tex", "key.pdf", "class.tex", "class.pdf")]
    names = files(tmp_path)
    for k in (1, 2, 3):
        for sheet in ("student", "solution"):
            assert names[f"variant-0{k}/{sheet}.pdf"].startswith(b"%PDF")
            assert f"variant-0{k}/{sheet}.tex" in names
    assert not [n for n in names if n.endswith((".log", ".aux"))]
    if shutil.which("pdfinfo"):

        def pages(path):
            info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
            return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))

        # student sheets, the key, solutions: each starts on an odd page of the class set (duplex printing)
        sheets = [pages(tmp_path / f"variant-0{k}/{s}.pdf") for s in ("student", "solution") for k in (1, 2, 3)]
        sheets.append(pages(tmp_path / "key.pdf"))
        assert pages(tmp_path / "class.pdf") == sum(n + n % 2 for n in sheets)
