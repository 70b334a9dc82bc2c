"""`symcnn grade`: right and wrong answers are marked (exit 0); a malformed answers file is one error line (exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symcnn.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exercise")
    assert main(["exercise", "zebra-cat", "--seed", "21", "--count", "2", "--jobs", "1", "--out", str(out)]) == 0
    return out / "key.json"


def questions(key: Path, variant: int = 2) -> dict:
    return json.loads(key.read_text())["variants"][str(variant)]["questions"]


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return str(folder / name)


def grade(answers: str, key: Path, capsys) -> tuple[int, str, str]:
    code = main(["grade", answers, "--key", str(key)])
    out, err = capsys.readouterr()
    return code, out, err


def test_right_answers_score_full_marks(key, tmp_path, capsys):
    # as a student would write them: rounded to three decimals
    lines = [f"  {qid}: {round(q['value'], 3)}" for qid, q in questions(key).items()]
    answers = write(tmp_path, "ada.yaml", "variant: 2\nstudent: Ada\nanswers:\n" + "\n".join(lines) + "\n")
    code, out, err = grade(answers, key, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("symcnn grade: variant 2 (zebra-cat-s21-v2), Ada\n")
    assert out.count("✓") == 7 and "✗" not in out
    assert out.rstrip().endswith("score: 7 of 7 (100%)")


def test_wrong_and_missing_answers_are_marked_with_the_expected_value(key, tmp_path, capsys):
    q = questions(key, 1)
    answers = {"q1": q["q1"]["value"], "q2": q["q2"]["value"] + 0.1, "q3": None}  # q4..q7 left out
    code, out, err = grade(write(tmp_path, "bob.json", json.dumps({"variant": 1, "answers": answers})), key, capsys)
    assert (code, err) == (0, "")
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("q")}
    assert "✓" in lines["q1"]
    assert "✗" in lines["q2"] and f"expected {round(q['q2']['value'], 4):g}" in lines["q2"]
    assert all("✗" in lines[f"q{n}"] and "no answer" in lines[f"q{n}"] for n in range(3, 8))
    assert out.rstrip().endswith("score: 1 of 7 (14%)")


def test_the_tolerance_fits_hand_work(key, tmp_path, capsys):
    q = questions(key)
    big = next(qid for qid, item in q.items() if abs(item["value"]) >= 0.1)
    value = q[big]["value"]
    near = write(tmp_path, "near.yaml", f"variant: 2\nanswers: {{{big}: {value + 0.004}}}\n")
    far = write(tmp_path, "far.yaml", f"variant: 2\nanswers: {{{big}: {value + 0.006}}}\n")
    assert "score: 1 of 7" in grade(near, key, capsys)[1]
    assert "score: 0 of 7" in grade(far, key, capsys)[1]


MALFORMED = [
    ("not-yaml", "answers.yaml", "variant: 2\nanswers: {q1: [\n", "", "invalid YAML"),
    ("not-a-mapping", "answers.yaml", "- 1\n- 2\n", "", "expected a mapping with variant and answers, got a list"),
    (
        "non-numeric",
        "answers.yaml",
        "variant: 2\nanswers: {q1: 0.7, q2: seven}\n",
        "answers.q2",
        "expected a number, got text 'seven'",
    ),
    ("boolean", "answers.yaml", "variant: 2\nanswers: {q1: yes}\n", "answers.q1", "expected a number, got a boolean"),
    (
        "unknown-question",
        "answers.yaml",
        "variant: 2\nanswers: {q1: 1, q8: 2}\n",
        "answers.q8",
        "unknown question; variant 2 has q1, q2",
    ),
    (
        "unknown-variant",
        "answers.yaml",
        "variant: 3\nanswers: {q1: 1}\n",
        "variant",
        "3 is not in the key (variants 1 to 2)",
    ),
    ("variant-missing", "answers.yaml", "answers: {q1: 1}\n", "variant", "missing key"),
    ("variant-text", "answers.yaml", "variant: two\nanswers: {q1: 1}\n", "variant", "expected a whole number"),
    ("answers-list", "answers.yaml", "variant: 2\nanswers: [1, 2]\n", "answers", "expected a mapping"),
    ("unknown-key", "answers.yaml", "variant: 2\nanswer: {q1: 1}\n", "answer", "unknown key (did you mean 'answers'?)"),
    ("json-syntax", "answers.json", '{"variant": 2,', "", "invalid JSON"),
    ("missing-file", None, "", "", "no such file"),
]


def assert_one_error(code: int, out: str, err: str, prefix: str, what: str) -> None:
    assert "Traceback" not in err
    assert (code, out) == (2, "")
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"error: {prefix}"), err
    assert what in err, err


@pytest.mark.parametrize("name, file, text, where, what", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_answers_file_is_one_error_line(key, tmp_path, capsys, name, file, text, where, what):
    answers = write(tmp_path, file, text) if file else str(tmp_path / "nowhere.yaml")
    code, out, err = grade(answers, key, capsys)
    assert_one_error(code, out, err, f"{answers}: " + (f"{where}: " if where else ""), what)


@pytest.mark.parametrize("text, what", [("[1]", "key: expected a mapping"), ('{"variants": {"1": 5}}', "variants.1")])
def test_a_malformed_key_is_one_error_line(key, tmp_path, capsys, text, what):
    bad = write(tmp_path, "key.json", text)
    code, out, err = grade(write(tmp_path, "a.yaml", "variant: 1\nanswers: {}\n"), Path(bad), capsys)
    assert_one_error(code, out, err, f"{bad}: ", what)


def test_grade_on_the_command_line(key, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    good = write(tmp_path, "good.yaml", "variant: 1\nanswers: {q1: 0}\n")
    bad = write(tmp_path, "bad.yaml", "variant: 1\nanswers: {q1: abc}\n")
    runs = [
        subprocess.run(
            [sys.executable, "-m", "symcnn", "grade", answers, "--key", str(key)],
            capture_output=True,
            encoding="utf-8",
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
        for answers in (good, bad)
    ]
    assert runs[0].returncode == 0 and "score:" in runs[0].stdout and runs[0].stderr == ""
    assert_one_error(runs[1].returncode, runs[1].stdout, runs[1].stderr, f"{bad}: answers.q1: ", "expected a number")


@pytest.mark.parametrize(
    "value, tol", [(3.049, 0.005), (-0.1, 0.005), (0.0, 0.005), (0.05, 0.0025), (-0.0123, 0.00062), (1e-4, 5e-6)]
)
def test_tolerance_is_absolute_above_a_tenth_and_relative_below(value, tol):
    from symcnn.exercises.questions import tolerance

    assert tolerance(value) == tol
