"""`symcnn grade ANSWERS.csv`: a class's answers into a gradebook CSV. Columns in any order, other
columns kept, each mark what the key's tolerance says; a bad row is one error line naming the row and
the column (exit 2), and nothing is written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from symcnn.cli import main

QIDS = [f"q{n}" for n in range(1, 8)]


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exercise")
    main(
        ["exercise", "four-images", "--seed", "8", "--count", "3", "--format", "gift", "--jobs", "1", "--out", str(out)]
    )
    return out / "key.json"


def variants(key: Path) -> dict:
    return json.loads(key.read_text())["variants"]


def write_csv(path: Path, rows: list[list], delimiter: str = ",", bom: bool = False) -> Path:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    path.write_text(("\ufeff" if bom else "") + out.getvalue(), encoding="utf-8")
    return path


def grade(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["grade", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def read_book(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def class_answers(key: Path, students: int, seed: int = 0):
    """Rows of answers for ``students`` students, each answer right, off by a little less than the
    tolerance, off by a little more, or left empty; with the marks an independent check expects."""
    rng = np.random.default_rng(seed)
    keyed = variants(key)
    rows, expected = [], []
    for s in range(students):
        number = str(rng.integers(1, len(keyed) + 1))
        cells, marks = {}, {}
        for qid, q in keyed[number]["questions"].items():
            how = rng.integers(4)
            if how == 3:
                cells[qid], marks[qid] = "", 0
                continue
            offset = [0.0, 0.9, 1.5][how] * q["tol"] * rng.choice([-1, 1])
            given = float(f"{q['value'] + offset:.6g}")  # as a student types it
            cells[qid] = repr(given)
            marks[qid] = int(abs(given - q["value"]) <= q["tol"] * (1 + 1e-9))
        rows.append({"email": f"s{s}@school.example", "variant": number, **cells})
        expected.append(marks)
    return rows, expected


def test_a_class_is_graded_with_the_keys_tolerances(key, tmp_path, capsys):
    rows, expected = class_answers(key, 60)
    header = ["q3", "variant", "section", "email", *[q for q in QIDS if q != "q3"], "comment"]  # any order
    table = [header] + [
        [r.get(h, "") if h not in ("section", "comment") else f"{h} {i}" for h in header] for i, r in enumerate(rows)
    ]
    answers = write_csv(tmp_path / "answers.csv", table)
    code, out, err = grade(capsys, answers, "--key", key)
    assert (code, err) == (0, "")
    book = read_book(out)
    assert list(book[0]) == ["email", "section", "comment", "variant", "score", "percent", *QIDS]
    assert len(book) == 60
    for i, (line, marks) in enumerate(zip(book, expected)):
        assert (line["email"], line["section"], line["comment"]) == (rows[i]["email"], f"section {i}", f"comment {i}")
        assert line["variant"] == rows[i]["variant"]
        assert {q: int(line[q]) for q in QIDS} == marks
        assert int(line["score"]) == sum(marks.values())
        assert float(line["percent"]) == pytest.approx(100 * sum(marks.values()) / 7, abs=0.05)
    assert {int(line["score"]) for line in book} != {7}  # the draw has wrong answers, and right ones
    assert sum(int(line["score"]) for line in book) > 0


def test_the_gradebook_goes_to_out_with_a_summary(key, tmp_path, capsys):
    keyed = variants(key)
    right = [str(q["value"]) for q in keyed["2"]["questions"].values()]
    answers = write_csv(
        tmp_path / "a.csv",
        [["student", "id", "variant", *QIDS], ["Ada Lovelace", "17", "2", *right], ["Bob", "18", "1", *[""] * 7]],
        delimiter=";",
        bom=True,  # as Excel saves it in many countries
    )
    code, out, err = grade(capsys, answers, "--key", key, "--out", tmp_path / "grades.csv")
    assert (code, err) == (0, "")
    assert out == f"{tmp_path / 'grades.csv'}: 2 students, mean score 3.50 of 7 (50.0%)\n"
    book = read_book((tmp_path / "grades.csv").read_text(encoding="utf-8"))
    assert [(b["student"], b["id"], b["score"], b["percent"]) for b in book] == [
        ("Ada Lovelace", "17", "7", "100.0"),
        ("Bob", "18", "0", "0.0"),
    ]


BAD = [
    (["id", "variant", *QIDS], ["1", "2", "0.5", "x", *[""] * 5], "row 2: q2: expected a number, got 'x'"),
    (
        ["id", "variant", *QIDS],
        ["1", "2", "0,5", *[""] * 6],
        "row 2: q1: expected a number, got '0,5' (use . as the decimal point)",
    ),
    (["id", "variant", *QIDS], ["1", "9", *[""] * 7], "row 2: variant: '9' is not a variant of the key (1 to 3)"),
    (["id", "variant", *QIDS], ["1", "", *[""] * 7], "row 2: variant: '' is not a variant of the key (1 to 3)"),
    (["id", "variant", *QIDS], ["1", "1", "nan", *[""] * 6], "row 2: q1: expected a finite number, got 'nan'"),
    (
        ["id", "variant", *QIDS[:-1]],
        ["1", "1", *[""] * 6],
        "row 1: no q7 column (expected variant and q1, q2, q3, q4, q5, q6, q7)",
    ),
    (
        ["name", "variant", *QIDS],
        ["x", "1", *[""] * 7],
        "row 1: no student, email or id column (the header names the columns)",
    ),
    (["id", "Variant", "variant", *QIDS], ["1", "1", "1", *[""] * 7], "row 1: variant: a second column of that name"),
    (["id", "variant", *QIDS], ["1", "1", *[""] * 7, "extra"], "row 2: 10 cells, but the header names 9"),
]


@pytest.mark.parametrize(("header", "row", "message"), BAD, ids=[m.split(": ", 2)[1] + " " + m[-12:] for *_, m in BAD])
def test_a_bad_row_is_one_error_line_and_nothing_is_written(key, tmp_path, capsys, header, row, message):
    rows = [header, row]
    if not message.startswith("row 1:"):  # a good row first: the bad one's number is the spreadsheet's
        rows.insert(1, ["5", "1", *[""] * 7])
        message = message.replace("row 2:", "row 3:")
    answers = write_csv(tmp_path / "answers.csv", rows)
    out_file = tmp_path / "grades.csv"
    code, out, err = grade(capsys, answers, "--key", key, "--out", out_file)
    assert code == 2 and out == ""
    assert err == f"error: {answers}: {message}\n"
    assert not out_file.exists() and [p.name for p in tmp_path.iterdir()] == ["answers.csv"]


def test_the_python_api_grades_a_csv_too(key, tmp_path):
    import symcnn

    right = [str(q["value"]) for q in variants(key)["3"]["questions"].values()]
    answers = write_csv(tmp_path / "a.csv", [["id", "variant", *QIDS], ["7", "3", *right]])
    book = symcnn.grade(answers, key)
    assert [row.score for row in book.rows] == [7]
    assert book.csv().splitlines()[1] == "7,3,7,100.0," + ",".join(["1"] * 7)


def test_yaml_answers_take_no_out(key, tmp_path, capsys):
    answers = tmp_path / "ada.yaml"
    answers.write_text("variant: 1\nanswers: {q1: 1}\n", encoding="utf-8")
    code, out, err = grade(capsys, answers, "--key", key)
    assert code == 0 and "score:" in out
    code, out, err = grade(capsys, answers, "--key", key, "--out", tmp_path / "g.csv")
    assert code == 2 and err == "error: --out: only a CSV of a class's answers writes a gradebook\n"


def test_a_missing_or_empty_csv_is_one_error_line(key, tmp_path, capsys):
    code, _, err = grade(capsys, tmp_path / "none.csv", "--key", key)
    assert (code, err) == (2, f"error: {tmp_path / 'none.csv'}: no such file\n")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    code, _, err = grade(capsys, tmp_path / "empty.csv", "--key", key)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'empty.csv'}: empty file")
