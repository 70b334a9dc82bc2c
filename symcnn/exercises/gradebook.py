"""`symcnn grade ANSWERS.csv --key key.json`: a whole class's answers from a CSV into a gradebook CSV.

ANSWERS.csv has a header row naming its columns, in any order: ``student``, ``email`` or ``id`` (at
least one; all that are there are kept), ``variant``, and one column per question of the key (``q1``
... ``q7``); any other column is kept as it is. It is what a form or an LMS response export gives after
renaming its columns. Separators ``,``, ``;`` or tab are recognised; a UTF-8 byte-order mark (Excel)
is skipped. An empty answer cell scores 0.

The gradebook has the identifying columns, the other kept columns and ``variant``, then ``score`` and
``percent``, then one column per question with its mark (1 right, 0 wrong or not answered). Rows are
numbered as a spreadsheet shows them (the header is row 1). Everything is checked before anything is
written: a bad row is one error naming the file, the row and the column, and no gradebook is written.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScenarioError
from .grading import Mark, read_key

WHO = ("student", "email", "id")  # identifying columns: at least one
SEPARATORS = ",;\t"


@dataclass(frozen=True)
class Row:
    kept: tuple[str, ...]  # the identifying and other kept cells, in the gradebook's column order
    variant: int
    marks: tuple[Mark, ...]

    @property
    def score(self) -> int:
        return sum(m.ok for m in self.marks)


@dataclass(frozen=True)
class Gradebook:
    kept: tuple[str, ...]  # the header of the kept columns
    questions: tuple[str, ...]  # q1, q2, ...
    rows: tuple[Row, ...]

    def header(self) -> list[str]:
        return [*self.kept, "variant", "score", "percent", *self.questions]

    def lines(self):
        yield self.header()
        for row in self.rows:
            marks = {m.id: m for m in row.marks}
            percent = f"{100 * row.score / len(row.marks):.1f}" if row.marks else "0.0"
            cells = ["1" if qid in marks and marks[qid].ok else "0" for qid in self.questions]
            yield [*row.kept, str(row.variant), str(row.score), percent, *cells]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows(self.lines())
        return out.getvalue()

    def summary(self) -> str:
        if not self.rows:
            return "no students"
        asked = sum(len(r.marks) for r in self.rows)
        right = sum(r.score for r in self.rows)
        count = len(self.rows)
        percent = 100 * right / max(asked, 1)
        return f"{count} students, mean score {right / count:.2f} of {asked / count:g} ({percent:.1f}%)"


def read_rows(path: Path, label: str) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError(label, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(label, f"cannot read file: {reason}") from None
    first = text.split("\n", 1)[0]
    separator = max(SEPARATORS, key=first.count) if any(c in first for c in SEPARATORS) else ","
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True))
    except csv.Error as exc:
        raise ScenarioError(label, f"not a CSV file: {exc}") from None


def columns(header: list[str], questions: tuple[str, ...], label: str) -> tuple[dict[str, int], list[int]]:
    """The positions of the columns symcnn reads (by lower-case name) and of the kept ones."""
    names = [cell.strip() for cell in header]
    where: dict[str, int] = {}
    for position, name in enumerate(names):
        lower = name.lower()
        if lower in (*WHO, "variant", *questions):
            if lower in where:
                raise ScenarioError(label, f"row 1: {name}: a second column of that name")
            where[lower] = position
    if not any(name in where for name in WHO):
        raise ScenarioError(label, "row 1: no student, email or id column (the header names the columns)")
    for name in ("variant", *questions):
        if name not in where:
            raise ScenarioError(label, f"row 1: no {name} column (expected variant and {', '.join(questions)})")
    read = {where[name] for name in ("variant", *questions)}
    kept = [where[name] for name in WHO if name in where]
    kept += [p for p in range(len(names)) if p not in read and p not in kept and names[p]]
    return where, kept


def number(cell: str, where: str) -> float | None:
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        hint = " (use . as the decimal point)" if "," in text else ""
        raise ScenarioError(where, f"expected a number, got '{text}'{hint}") from None
    if not math.isfinite(value):
        raise ScenarioError(where, f"expected a finite number, got '{text}'")
    return value


def gradebook(answers: str | Path, key: str | Path) -> Gradebook:
    """Mark every row of the CSV ``answers`` against ``key`` (a key.json of `symcnn exercise`)."""
    variants = read_key(key)
    label = str(answers)
    rows = read_rows(Path(answers), label)
    if not rows:
        raise ScenarioError(label, "empty file: expected a header row and one row per student")
    questions = tuple(dict.fromkeys(qid for entry in variants.values() for qid in entry["questions"]))
    where, kept = columns(rows[0], questions, label)
    known = sorted(int(n) for n in variants)
    out = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        cells = cells + [""] * (len(rows[0]) - len(cells))
        if len(cells) > len(rows[0]):
            raise ScenarioError(label, f"row {line}: {len(cells)} cells, but the header names {len(rows[0])}")
        text = cells[where["variant"]].strip()
        if not text.isdigit() or str(int(text)) not in variants:
            raise ScenarioError(
                label, f"row {line}: variant: '{text}' is not a variant of the key ({known[0]} to {known[-1]})"
            )
        entry = variants[str(int(text))]
        marks = []
        for qid, q in entry["questions"].items():
            try:
                given = number(cells[where[qid]], qid)
            except ScenarioError as exc:
                raise ScenarioError(label, f"row {line}: {exc.where}: {exc.what}") from None
            marks.append(Mark(qid, q.get("question", ""), given, q["value"], q["tol"]))
        out.append(Row(tuple(cells[p] for p in kept), int(text), tuple(marks)))
    return Gradebook(tuple(rows[0][p].strip() for p in kept), questions, tuple(out))


def write_gradebook(book: Gradebook, out: str | Path) -> Path:
    """The gradebook CSV at ``out``, written whole or not at all."""
    out = Path(out)
    if out.is_dir():
        raise ScenarioError("--out", f"{out} is a folder; give a file name such as grades.csv")
    text = book.csv()
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=out.parent, prefix=".symcnn-", suffix=".csv", delete=False
        ) as tmp:
            tmp.write(text)
        os.replace(tmp.name, out)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp.name):
            os.unlink(tmp.name)
        raise ScenarioError("--out", f"cannot write {out}: {exc.strerror or exc}") from None
    return out
