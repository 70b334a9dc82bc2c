"""The two sheets of an exercise variant, as Documents that every format renders.

The student sheet is the setup (images, filters, dense layer, learning rate) and the numbered questions,
each with a box for the answer. The solution is the full worked solution of the variant with a
"Questions and answers" section first (each answer with its equation and where it is worked out) and,
in the worked sections, the asked values marked and the asked matrix cells boxed.
"""

from __future__ import annotations

import dataclasses

import sympy

from ..document.builder import Builder, build_document, section_key
from ..document.model import Cell, Document, Formula, Section, Settings, Table, Text, equation, relu_display
from ..document.names import unique_slugs
from ..document.stack_builder import StackBuilder
from ..errors import VerificationError
from ..scenario.model import Scenario, parse_path
from ..verify import Report
from .questions import KIND_TEXT, Question
from .stack_sheets import stack_solution_document
from .variants import Variant

ANSWER_BOX = r"\boxed{\rule{0pt}{2.8ex}\hspace{3.5cm}}"
ANSWER_BOX_MATHML = {"width": "8em", "height": "1.2em", "depth": "0.4em", "style": "border: 1px solid"}
# question kind -> (section key suffix, matrix notation kind or None)
SECTION_OF = {
    "conv": ("conv-{filter}", "conv"),
    "activated": ("activation", "activated"),
    "pooled": ("pool", "pooled"),
    "logits": ("logits", None),
    "probs": ("softmax", None),
    "loss": ("loss", None),
    "grad_dense_weights": ("grad-dense", "grad_dense_weight"),
    "dense_weights": ("update", "new_dense_weight"),
    "optimizer_state": ("update", None),
}


class AnswerBox(sympy.Atom):
    """An empty box to write an answer in; printed by symcnn's LaTeX and MathML printers."""

    def _symcnn_latex(self, printer) -> str:
        return ANSWER_BOX

    def _symcnn_mathml(self, printer):
        box = printer.el("mspace")  # MathML Core has no menclose: the border is CSS, which browsers draw
        for name, value in ANSWER_BOX_MATHML.items():
            box.setAttribute(name, value)
        return box


def setup_section(report: Report, settings: Settings) -> Section:
    """The setup of the variant at full detail (every number a question needs), per layer for a stack."""
    builder = StackBuilder if report.scenario.is_stack else Builder
    return builder(report, dataclasses.replace(settings, detail="full")).setup()


# ---------------------------------------------------------------- the student sheet


def student_document(report: Report, variant: Variant, questions: list[Question], settings: Settings) -> Document:
    """The setup of the variant and its numbered questions, each with a box for the answer."""
    sc = report.scenario
    first = sc.inputs[0].name
    description = (
        "Work by hand; a calculator is needed only for exp and ln. Give each answer to at least 3 decimals "
        "(3 significant figures for values below 0.1) and carry at least 4 significant figures in between. "
        f"Pass 1 starts with the parameters below, and {first} is its first sample."
    )
    ids = ", ".join(f"{q.id}: ..." for q in questions[:2])
    notes = (
        f"To hand in for symcnn grade: a YAML file with variant: {variant.index} and answers: {{{ids}}} "
        f"(q1 is question 1, and so on).",
    )
    blocks = []
    for number, q in enumerate(questions, start=1):
        blocks.append(Text(f"{number}. {q.text}"))
        blocks.append(Formula(report.derivation.quantity_at(q.path).symbol, AnswerBox()))
    # every number a question needs is on the sheet: the setup's matrices are never elided; its pictures
    # (which repeat the matrices) stay in the solution, so a sheet prints on two pages
    setup = setup_section(report, settings)
    setup.blocks = [b for b in setup.blocks if b.kind != "figure"]
    sections = (setup, Section("Questions", "questions", blocks, 1))
    return Document(
        "student",
        sc.title,
        description,
        notes,
        sections,
        settings,
        report.derivation.notation,
        sc.training.update != "per_sample",
        0,
        0.0,
        0,
        0,
        kind="student",
    )


# ---------------------------------------------------------------- the answer key of a batch

KEY_ROWS = 40  # variants per table: a LaTeX table does not break across pages


def key_document(sc: Scenario, seed: int, difficulty: str, answers: dict, kinds: list[str], checked: int) -> Document:
    """Every variant's answers in one table (rounded; key.json has full values and tolerances)."""
    ids = [f"q{n}" for n in range(1, len(kinds) + 1)]
    legend = ", ".join(f"{qid} {KIND_TEXT[kind]}" for qid, kind in zip(ids, kinds))
    blocks = [
        Text(
            f"{legend}. Each variant asks about its own cells and samples (see its sheet or its solution); "
            "key.json holds the full values and the accepted tolerances."
        )
    ]
    header = (Cell("variant"), *(Cell(qid) for qid in ids))
    rows = [(Cell(str(index)), *(Cell(value, True) for value in values)) for index, values in sorted(answers.items())]
    blocks += [Table(header, tuple(rows[i : i + KEY_ROWS])) for i in range(0, len(rows), KEY_ROWS)]
    return Document(
        "key",
        f"Answer key: {sc.title}",
        f"{len(answers)} variants of {sc.name}, seed {seed}, {difficulty}.",
        (),
        (Section("Answers", "answers", blocks, 1),),
        Settings(),
        None,
        False,
        checked,
        0.0,
        0,
        0,
        kind="key",
    )


# ---------------------------------------------------------------- the solution


def solution_document(report: Report, variant: Variant, questions: list[Question], settings: Settings) -> Document:
    """The worked solution of the variant with the questions answered first and marked where worked out."""
    if report.scenario.is_stack:
        return stack_solution_document(report, variant, questions, settings)
    doc = build_document(report, settings)
    d, sc = report.derivation, report.scenario
    sections = [dataclasses.replace(s, blocks=list(s.blocks)) for s in doc.sections]
    by_key = {s.key: s for s in sections}
    elide = settings.detail == "summary"
    rows, details = [], []
    for number, q in enumerate(questions, start=1):
        quantity = d.quantity_at(q.path)
        shown = answer_equation(sc, d, q, quantity, elide)
        suffix, matrix = SECTION_OF[q.kind]
        index = [part for part in parse_path(q.path) if isinstance(part, int)][1:]
        if q.kind == "conv":
            suffix = suffix.format(filter=unique_slugs(f.name for f in sc.conv.filters)[index[0]])
        record = d.steps[q.step] if q.step is not None else d.updates[q.update]
        section = by_key.get(f"{section_key(d, record)}-{suffix}")
        if section is None:
            raise VerificationError(f"{q.path}: no section of the worked solution shows it")
        where = f"{section.context}: {section.title}"
        rows.append(
            (
                Cell(str(number)),
                Cell(quantity.symbol, True),
                Cell(quantity.value, True),
                Cell(f"{q.tol:g}"),
                Cell(where),
            )
        )
        details += [Text(f"{number}. {q.text} Worked out in {where}."), shown]
        name = matrix_name(d.notation, sc, matrix, index)
        cell = tuple(index[-2:]) if name is not None else None
        mark(section, number, quantity, shown, name, cell)
    header = (Cell("question"), Cell("asks for"), Cell("answer"), Cell("accepted ±"), Cell("worked out in"))
    blocks = [
        Text(
            "The answers at a glance, then each with its equation. In the worked solution below, each asked "
            "value is marked and an asked matrix cell is boxed."
        ),
        Table(header, tuple(rows)),
        *details,
    ]
    qa = Section("Questions and answers", "questions", blocks, 1)
    return dataclasses.replace(doc, name="solution", title=f"{doc.title} (solution)", sections=(qa, *sections))


def answer_equation(sc: Scenario, d, q: Question, quantity, elide: bool):
    """The asked value as general = substituted = value, displayed as the worked solution shows it."""
    if q.kind == "activated":
        z = d.quantity_at(q.path.replace(".activated", ".conv"))
        shown = relu_display(sc.activation.kind, z.symbol, sympy.Rational(repr(sc.activation.slope)))
        if shown is not None:
            return equation(quantity, shown, {z.symbol: z.value}, elide=elide)
    return equation(quantity, elide=elide)


def matrix_name(N, sc: Scenario, matrix: str | None, index: list[int]):
    if matrix is None:
        return None
    if matrix == "grad_dense_weight":
        return N.grad("dense_weight", None)
    if matrix == "new_dense_weight":
        return N("dense_weight", None, new=True)
    return N(matrix, sc.conv.filters[index[0]].name)


def mark(section: Section, number: int, quantity, shown, name, cell) -> None:
    """Say where the asked value is worked out; box the asked cell in its matrix."""
    blocks = section.blocks
    at = next((i for i, b in enumerate(blocks) if b.kind == "equation" and b.lhs == quantity.symbol), None)
    if at is not None:
        blocks.insert(at, Text(f"» Question {number} asks for this value:"))
    elif name is not None:
        at = next((i for i, b in enumerate(blocks) if b.kind == "matrix" and b.name == name), len(blocks))
        where = f"row {cell[0] + 1}, column {cell[1] + 1}"
        blocks[at:at] = [Text(f"» Question {number} asks for the cell at {where} (boxed below):"), shown]
    if name is None:
        return
    i, j = cell
    for position, b in enumerate(blocks):
        if b.kind != "matrix" or b.name != name or b.shape is not None:
            continue  # an elided matrix may not show the cell; the equation above does
        start, stop = (b.columns[0] - 1, b.columns[1]) if b.columns else (0, b.values.shape[1])
        if start <= j < stop:
            blocks[position] = dataclasses.replace(b, marks=b.marks | {(i, j - start)})
