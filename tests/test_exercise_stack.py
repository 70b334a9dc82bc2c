"""`symcnn exercise` on a `layers` stack: seeded variants of two-conv whose key is `symcnn values` of the
variant (and PyTorch's autograd), whose questions cover every layer kind, whose solution derives each
answer, and which grade and export like the legacy batches."""

from __future__ import annotations

import json
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import yaml

from symcnn.cli import main
from symcnn.document.model import Settings
from symcnn.engine.algebra import evaluate
from symcnn.engine.numeric import run
from symcnn.engine.stack_cells import derive_stack
from symcnn.exercises.batch import scenario_yaml
from symcnn.exercises.lms import number_text
from symcnn.exercises.questions import tolerance
from symcnn.exercises.sheets import solution_document, student_document
from symcnn.exercises.stack_questions import choose_any_questions
from symcnn.exercises.stack_variants import draw_any_variant
from symcnn.scenario.sources import load, read_source
from symcnn.verify import checked, lookup

torch = pytest.importorskip("torch")
F = torch.nn.functional

HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Three variants of two-conv, seed 1, on two worker processes, with every LMS export."""
    out = tmp_path_factory.mktemp("stackbatch")
    args = ["exercise", "two-conv", "--seed", "1", "--count", "3", "--jobs", "2", "--out", str(out)]
    assert main([*args, "--format", "markdown,moodle,gift,qti"]) == 0
    return out


def key_of(batch: Path) -> dict:
    return json.loads((batch / "key.json").read_text())


# ----------------------------------------------------------------------------- the key is `symcnn values`


def test_every_variant_passes_check_and_the_key_is_its_values(batch):
    key = key_of(batch)
    assert sorted(key["variants"]) == ["1", "2", "3"]
    for number, entry in key["variants"].items():
        sc = load(str(batch / entry["file"]))
        assert sc.is_stack and sc.name == entry["scenario"] == f"two-conv-s1-v{number}"
        assert checked(sc).ok
        values = run(sc).to_dict()
        assert len(entry["questions"]) == 8
        for q in entry["questions"].values():
            assert q["value"] == lookup(values, q["path"]), q
            assert q["tol"] == tolerance(q["value"]) and 0 < q["tol"] <= 0.005


def test_the_questions_cover_every_layer_kind(batch):
    sc = load("two-conv")  # conv1 act pool conv2 act pool hidden act out
    for entry in key_of(batch)["variants"].values():
        paths = [q["path"] for q in entry["questions"].values()]
        assert paths[0].startswith("steps[0].layers[3].output[")  # the second conv layer
        assert paths[1].startswith(("steps[0].layers[2].output[", "steps[0].layers[5].output["))  # a pool
        assert paths[2].startswith("steps[0].layers[7].output[")  # the hidden tanh
        assert paths[3].startswith("steps[0].probs[")
        assert paths[4].startswith("steps[0].layers[6].grad_output[")  # the hidden dense layer's dL/dz
        assert paths[5].startswith("steps[0].layers[0].grad_weights[")  # a first-layer filter
        assert paths[6].startswith("steps[0].grad_input[")
        assert paths[7].startswith("updates[0].layers[0].weights[")
        kinds = {
            sc.layers[int(p.split("layers[")[1].split("]")[0])].layer for p in paths if p.startswith("steps[0].layers")
        }
        assert kinds == {"conv", "pool", "activation", "dense"}
        # the filter gradient has the JSON's shape: two indices for a kh x kw filter after the filter's
        assert paths[5].count("[") == 2 + 3 and paths[6].count("[") == 1 + 2


def torch_first_step(data: dict) -> dict:
    """PyTorch's autograd (float64) on the first sample of a stack scenario file: every layer's output and
    dL/d(output), each conv/dense layer's weight gradient, dL/dx, and the weights after one SGD step."""
    x = torch.tensor(data["inputs"][0]["pixels"], dtype=torch.float64)
    x = (x[None] if x.ndim == 2 else x)[None].requires_grad_(True)
    h, outputs, params = x, [], []
    for item in data["layers"]:
        ((kind, body),) = item.items()
        if kind == "conv":
            w = torch.tensor([f["weights"] for f in body["filters"]], dtype=torch.float64)
            w = (w[:, None] if w.ndim == 3 else w).requires_grad_(True)
            b = torch.tensor([f["bias"] for f in body["filters"]], dtype=torch.float64)
            h = F.conv2d(h, w, b, stride=body.get("stride", 1), padding=body.get("padding", 0))
            params.append(w)
        elif kind == "activation":
            kind_of = body if isinstance(body, str) else body["kind"]
            h = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "none": lambda t: t}[kind_of](h)
        elif kind == "pool":
            size = h.shape[-2:] if body["size"] == "global" else tuple(body["size"])
            stride = size if body["size"] == "global" else tuple(body["stride"])
            pool = F.max_pool2d if body["kind"] == "max" else F.avg_pool2d
            h = pool(h, size, stride)
        else:
            W = torch.tensor(body["weights"], dtype=torch.float64, requires_grad=True)
            h = F.linear(h.reshape(1, -1), W, torch.tensor(body["biases"], dtype=torch.float64))
            params.append(W)
        h.retain_grad()
        outputs.append(h)
    label = data["classes"].index(data["inputs"][0]["label"])
    loss = F.cross_entropy(h, torch.tensor([label]))
    loss.backward()
    rate = data["training"]["learning_rate"]
    return {
        "output": [o.detach()[0].numpy() for o in outputs],
        "grad_output": [o.grad[0].numpy() for o in outputs],
        "grad_weights": [p.grad.numpy() for p in params],
        "weights": [(p - rate * p.grad).detach().numpy() for p in params],
        "grad_input": x.grad[0].numpy(),
        "probs": torch.softmax(h, 1).detach()[0].numpy(),
    }


def test_the_key_agrees_with_pytorch_autograd(batch):
    for entry in key_of(batch)["variants"].values():
        data = yaml.safe_load((batch / entry["file"]).read_text())
        assert data["training"]["update"] == "per_sample" and data["training"]["update_filters"]
        ours = torch_first_step(data)
        learning = [n for n, item in enumerate(data["layers"]) if {"conv", "dense"} & set(item)]
        for q in entry["questions"].values():
            parts = q["path"].replace("]", "").split("[")
            if q["path"].startswith("updates[0].layers["):
                n, index = int(parts[2].split(".")[0]), parts[3:]
                array = ours["weights"][n]
                assert learning[n] == 0
            elif ".layers[" in q["path"]:
                n, key, index = int(parts[2].split(".")[0]), parts[2].split(".")[1], parts[3:]
                array = ours[key][learning.index(n)] if key == "grad_weights" else ours[key][n]
            else:
                key, index = parts[1].split(".")[1], parts[2:]
                array = ours[key][0] if key == "grad_input" and ours[key].shape[0] == 1 else ours[key]
            index = tuple(int(i) for i in index)
            if array.ndim == len(index) + 1:  # a 2-D filter: PyTorch's weights have a channel axis
                array = array[:, 0]
            assert np.isclose(array[index], q["value"], rtol=1e-9, atol=1e-12), q


# ----------------------------------------------------------------------------- the sheets


def sections_of(doc) -> dict:
    return {s.key: s for s in doc.sections}


def test_the_solution_derives_each_answer_and_marks_it(batch):
    entry = key_of(batch)["variants"]["2"]
    sc = load(str(batch / entry["file"]))
    variant = draw_any_variant(load("two-conv"), 1, 2)
    questions = choose_any_questions(variant)
    assert [q.path for q in questions] == [q["path"] for q in entry["questions"].values()]
    report = checked(variant.scenario)
    stack = derive_stack(sc)  # a derivation of its own, from the written file
    doc = solution_document(report, variant, questions, Settings.from_display(sc.display))
    qa = sections_of(doc)["questions"].blocks
    shown = [b for b in qa if b.kind == "equation"]
    assert len(shown) == len(questions)
    for q, eq in zip(questions, shown):
        quantity = stack.quantity_at(q.path)
        assert eq.lhs == quantity.symbol
        assert eq.general is not None and eq.general.free_symbols  # general form, not just the number
        # general -> substituted -> value: the general form with the quantity's own numbers gives the answer
        value = evaluate(quantity.general, quantity.env)
        assert float(value) == pytest.approx(q.value, rel=1e-12, abs=1e-15)
        assert float(eq.value) == pytest.approx(q.value, rel=1e-12, abs=1e-15)
    worked = [s for s in doc.sections if s.key != "questions"]
    for number, q in enumerate(questions, start=1):
        marked = [
            s for s in worked if any(b.kind == "text" and b.text.startswith(f"» Question {number} ") for b in s.blocks)
        ]
        assert len(marked) == 1, q.path
        if q.kind != "probs":  # a cell of a matrix: boxed once in its section
            boxes = [m for b in marked[0].blocks if b.kind == "matrix" for m in b.marks]
            assert boxes, q.path
    student = student_document(report, variant, questions, Settings.from_display(sc.display))
    asked = [b for b in sections_of(student)["questions"].blocks if b.kind == "formula"]
    assert [b.lhs for b in asked] == [stack.quantity_at(q.path).symbol for q in questions]


# ----------------------------------------------------------------------------- seeds, nice numbers


def test_the_seed_alone_decides_each_variant(batch):
    base = load("two-conv")
    again = draw_any_variant(base, 1, 3)
    assert scenario_yaml(again) == (batch / "variant-03/scenario.yaml").read_text()
    assert [q.key_entry() for q in choose_any_questions(again)] == list(
        key_of(batch)["variants"]["3"]["questions"].values()
    )
    assert draw_any_variant(base, 2, 3).data != again.data


def test_the_structure_is_kept_and_the_numbers_are_new(batch):
    base = read_source("two-conv")[0]
    variant = yaml.safe_load((batch / "variant-01/scenario.yaml").read_text())
    assert [list(item) for item in variant["layers"]] == [list(item) for item in base["layers"]]
    sc, original = load(str(batch / "variant-01/scenario.yaml")), load("two-conv")
    assert [layer.name for layer in sc.layers] == [layer.name for layer in original.layers]
    for new, old in zip(sc.layers, original.layers):
        if old.layer == "conv":
            assert [f.name for f in new.filters] == [f.name for f in old.filters]
            assert [f.weights.shape for f in new.filters] == [f.weights.shape for f in old.filters]
            assert (new.stride, new.padding) == (old.stride, old.padding)
        elif old.layer == "dense":
            assert new.weights.shape == old.weights.shape
        else:
            assert new == old
    assert variant["layers"][0]["conv"]["filters"][0]["weights"] != base["layers"][0]["conv"]["filters"][0]["weights"]
    assert "claims" not in variant


@pytest.mark.parametrize(("seed", "index", "difficulty"), [(0, 1, "easy"), (7, 40, "easy"), (123456, 3, "medium")])
def test_easy_stack_variants_are_exact_to_two_decimals_and_not_degenerate(seed, index, difficulty):
    sc = draw_any_variant(load("two-conv"), seed, index, difficulty).scenario
    for layer in sc.layers:
        if layer.layer == "conv":
            assert all(Fraction(repr(float(v))).denominator == 1 for f in layer.filters for v in f.weights.flat)
    stack = derive_stack(sc)  # SymPy-backed exact values, independent of the generator's own check
    first_dense = next(n for n, layer in enumerate(sc.layers) if layer.layer == "dense")
    for step in stack.steps[:1]:  # filters learn: later samples see updated (irrational) filters, never asked
        for n in range(first_dense):
            out = step.layers[n]["output"].values
            assert all(isinstance(v, (Fraction, int)) and (Fraction(v) * 100).denominator == 1 for v in out.flat)
            assert all(np.any(out[k] != 0) for k in range(out.shape[0]))
            if sc.layers[n].layer == "pool":  # global max pool here: one winner per map, above 0
                before = step.layers[n - 1]["output"].values
                for k in range(before.shape[0]):
                    cells = list(before[k].flat)
                    assert cells.count(max(cells)) == 1 or max(cells) == 0 or sc.layers[n].size != "global"
    trace = run(sc)
    first = trace.steps[0]
    assert 0.01 <= first.probs.min() and first.probs.max() <= 0.99
    assert (
        np.any(first.grad_input) and np.any(first.layers[0]["grad_weights"]) and np.any(first.layers[6]["grad_output"])
    )


def test_max_pool_windows_have_one_winner(batch):
    """A tie in a max-pool window would make dL/dx depend on which cell PyTorch picks: never drawn."""
    for entry in key_of(batch)["variants"].values():
        sc = load(str(batch / entry["file"]))
        for step in run(sc).steps:
            for n, layer in enumerate(sc.layers):
                if layer.layer != "pool" or layer.kind != "max":
                    continue
                a = np.asarray(step.layers[n - 1]["output"])
                size = a.shape[1:] if layer.is_global else layer.size
                stride = size if layer.is_global else layer.stride
                for k in range(a.shape[0]):
                    for i in range(0, a.shape[1] - size[0] + 1, stride[0]):
                        for j in range(0, a.shape[2] - size[1] + 1, stride[1]):
                            window = list(a[k, i : i + size[0], j : j + size[1]].flat)
                            assert window.count(max(window)) == 1 or max(window) == 0


# ----------------------------------------------------------------------------- grading and LMS exports


def test_right_answers_grade_full_marks(batch, tmp_path, capsys):
    questions = key_of(batch)["variants"]["1"]["questions"]
    lines = [f"  {qid}: {q['value']:.6g}" for qid, q in questions.items()]
    answers = tmp_path / "ada.yaml"
    answers.write_text("variant: 1\nanswers:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert main(["grade", str(answers), "--key", str(batch / "key.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("✓") == 8 and "✗" not in out and "score: 8 of 8" in out
    wrong = {qid: q["value"] + 10 * q["tol"] for qid, q in questions.items()}
    answers.write_text(json.dumps({"variant": 1, "answers": wrong}), encoding="utf-8")
    assert main(["grade", str(answers), "--key", str(batch / "key.json")]) == 0
    assert "score: 0 of 8" in capsys.readouterr().out


def test_the_lms_exports_hold_every_question_of_the_key(batch):
    key = key_of(batch)["variants"]
    moodle = (batch / "moodle.xml").read_text(encoding="utf-8")
    gift = (batch / "questions.gift").read_text(encoding="utf-8")
    with zipfile.ZipFile(batch / "qti.zip") as archive:
        qti = "".join(archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".xml"))
    for slug in ("q1-conv", "q2-pooling", "q5-hidden-gradient", "q6-weight-gradient", "q7-input-gradient"):
        assert slug in moodle and slug in gift
    for entry in key.values():
        for q in entry["questions"].values():
            value = number_text(q["value"])
            assert value in moodle and value in gift and value in qti, q


@pytest.mark.skipif(not HAVE_TEX, reason="latexmk and pdflatex are needed")
def test_pdf_sheets_of_a_stack_compile(tmp_path):
    out = tmp_path / "pdf"
    assert (
        main(
            ["exercise", "two-conv", "--seed", "4", "--count", "1", "--jobs", "1", "--format", "pdf", "--out", str(out)]
        )
        == 0
    )
    for name in ("variant-01/student.pdf", "variant-01/solution.pdf", "key.pdf", "class.pdf"):
        assert (out / name).read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    "optimizer", [{"kind": "momentum", "momentum": 0.9, "nesterov": True}, {"kind": "adam", "betas": [0.8, 0.9]}]
)
def test_a_variant_keeps_the_optimizer_and_its_key_is_its_values(optimizer, tmp_path):
    data = read_source("two-conv")[0]
    data["training"] = {**data["training"], "optimizer": optimizer, "iterations": 2}
    source = tmp_path / "opt.yaml"
    source.write_text(yaml.safe_dump(data), encoding="utf-8")
    variant = draw_any_variant(load(str(source)), 3, 1)  # Adam: the second sample's conv gradients are all 0
    assert variant.scenario.training.optimizer == load(str(source)).training.optimizer
    written = tmp_path / "variant.yaml"
    written.write_text(scenario_yaml(variant), encoding="utf-8")
    values = run(load(str(written))).to_dict()
    questions = choose_any_questions(variant)
    for q in questions:
        assert q.value == lookup(values, q.path)
    # the state of the weight asked about and the weight itself after the second update
    at, weight = questions[-1].path.split(".weights")
    m = int(at.split("layers[")[1].rstrip("]"))
    n = [k for k, layer in enumerate(variant.scenario.layers) if layer.layer in ("conv", "dense")][m]
    # a weight the second update moves: its gradient of the second sample is not rounding noise of 0
    assert abs(lookup(values, f"steps[1].layers[{n}].grad_weights{weight}")) > 1e-12
    states = ["velocity"] if optimizer["kind"] == "momentum" else ["m", "v"]
    assert [q.path for q in questions[8:]] == [
        *(f"updates[1].layers[{m}].state.{state}{weight}" for state in states),
        f"updates[1].layers[{m}].weights{weight}",
    ]
    report = checked(variant.scenario)
    doc = solution_document(report, variant, questions, Settings.from_display(sc_display(variant)))
    shown = [b for b in sections_of(doc)["questions"].blocks if b.kind == "equation"]
    for q, eq in zip(questions, shown, strict=True):
        quantity = report.derivation.quantity_at(q.path)
        assert eq.lhs == quantity.symbol and eq.general is not None
        assert float(evaluate(quantity.general, quantity.env)) == pytest.approx(q.value, rel=1e-12, abs=1e-15)
    marked = [b for s in doc.sections if s.key == "it1-bar-h-update" for b in s.blocks if b.kind == "text"]
    assert sum(b.text.startswith("» Question") for b in marked) == len(questions) - 8


def sc_display(variant):
    return variant.scenario.display
