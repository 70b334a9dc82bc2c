"""`symcnn grade`: mark a student's answers file against the key.json of an exercise batch.

The answers file (YAML or JSON) is one student's work on one variant::

    variant: 3                 # the variant number on the sheet
    student: Ada Lovelace      # optional, printed with the result
    answers:                   # question id -> number; a question left out (or empty) scores 0
      q1: 2
      q2: 0.35

An answer is right when it is within the key's tolerance of the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScenarioError
from ..scenario.checks import as_integer, as_mapping, as_text, describe
from ..scenario.sources import read_data


@dataclass(frozen=True)
class Mark:
    id: str
    question: str
    given: float | None  # None: not answered
    expected: float
    tol: float

    @property
    def ok(self) -> bool:
        return self.given is not None and abs(self.given - self.expected) <= self.tol * (1 + 1e-9)


@dataclass(frozen=True)
class Grade:
    variant: int
    scenario: str
    student: str
    marks: tuple[Mark, ...]

    @property
    def score(self) -> int:
        return sum(m.ok for m in self.marks)

    def table(self) -> str:
        who = f", {self.student}" if self.student else ""
        lines = [f"symcnn grade: variant {self.variant} ({self.scenario}){who}", ""]
        for m in self.marks:
            given = "no answer" if m.given is None else short(m.given)
            mark = "✓" if m.ok else "✗"
            lines.append(f"{m.id:<4} {mark}  {given:>10}  expected {short(m.expected):<9} ± {m.tol:<7g} {m.question}")
        total = len(self.marks)
        lines += ["", f"score: {self.score} of {total} ({100 * self.score / total:.0f}%)"]
        return "\n".join(lines)


def short(number: float) -> str:
    """At most 4 decimals, no trailing zeros: 0.14190 -> 0.1419, 2.0 -> 2."""
    text = f"{number:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def in_file(label: str, error: ScenarioError) -> ScenarioError:
    """An error about a key path inside ``label``: `label: path: what`."""
    return ScenarioError(label, f"{error.where}: {error.what}" if error.where else error.what)


def read_key(path: str | Path) -> dict[str, dict]:
    """variant number (as text) -> {scenario, questions: {id: {value, tol, question, path}}}."""
    data = read_data(path, "json")
    try:
        variants = mapping(mapping(data, "", ("variants",))["variants"], "variants")
        for number, entry in variants.items():
            if not str(number).isdigit():
                raise ScenarioError(f"variants.{number}", "expected a variant number")
            entry = mapping(entry, f"variants.{number}", ("scenario", "questions"))
            for qid, item in mapping(entry["questions"], f"variants.{number}.questions").items():
                where = f"variants.{number}.questions.{qid}"
                item = mapping(item, where, ("value", "tol"))
                for field in ("value", "tol"):
                    if not is_number(item[field]):
                        raise ScenarioError(f"{where}.{field}", f"expected a number, got {describe(item[field])}")
    except ScenarioError as exc:
        raise in_file(str(path), exc) from None
    return variants


def mapping(value, where: str, required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise ScenarioError(where or "key", f"expected a mapping, got {describe(value)}")
    for name in required:
        if name not in value:
            raise ScenarioError(f"{where}.{name}" if where else name, "missing key")
    return value


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def grade(answers: str | Path, key: str | Path) -> Grade:
    """Mark the answers file ``answers`` against ``key`` (a key.json of `symcnn exercise`)."""
    variants = read_key(key)
    label = str(answers)
    data = read_data(answers)
    try:
        if not isinstance(data, dict):
            raise ScenarioError("", f"expected a mapping with variant and answers, got {describe(data)}")
        data = as_mapping(data, "", ("variant", "student", "answers"), ("variant", "answers"))
        number = as_integer(data["variant"], "variant", 1)
        if str(number) not in variants:
            known = sorted(int(n) for n in variants)
            raise ScenarioError("variant", f"{number} is not in the key (variants {known[0]} to {known[-1]})")
        entry = variants[str(number)]
        student = as_text(data["student"], "student") if "student" in data else ""
        given = data["answers"]
        if given is None:
            given = {}
        ids = tuple(entry["questions"])
        if not isinstance(given, dict):
            raise ScenarioError(
                "answers", f"expected a mapping of question ids ({', '.join(ids)}), got {describe(given)}"
            )
        for qid, value in given.items():
            if qid not in ids:
                raise ScenarioError(f"answers.{qid}", f"unknown question; variant {number} has {', '.join(ids)}")
            if value is not None and not is_number(value):
                raise ScenarioError(f"answers.{qid}", f"expected a number, got {describe(value)}")
    except ScenarioError as exc:
        raise in_file(label, exc) from None
    marks = tuple(
        Mark(qid, q.get("question", ""), None if given.get(qid) is None else float(given[qid]), q["value"], q["tol"])
        for qid, q in entry["questions"].items()
    )
    return Grade(number, str(entry["scenario"]), student, marks)
