"""The solution sheet of a `layers` stack variant: the stack's worked solution (StackBuilder) with the
questions answered first, each as general form = substituted numbers = value from the stack derivation,
and, in the worked sections, the asked value marked and its matrix cell boxed."""

from __future__ import annotations

import dataclasses

from ..document.model import Cell, Document, Section, Settings, Table, Text, equation
from ..document.stack_builder import StackBuilder
from ..errors import VerificationError
from ..escape import slug
from ..scenario.model import parse_path
from ..verify import Report
from .questions import Question
from .variants import Variant


def stack_solution_document(
    report: Report, variant: Variant, questions: list[Question], settings: Settings
) -> Document:
    """The worked solution of the stack with the questions answered first and marked where worked out."""
    builder = StackBuilder(report, settings)
    doc = builder.build()
    sections = [dataclasses.replace(s, blocks=list(s.blocks)) for s in doc.sections]
    by_key = {s.key: s for s in sections}
    elide = settings.detail == "summary"
    rows, details = [], []
    for number, q in enumerate(questions, start=1):
        quantity = report.derivation.quantity_at(q.path)
        shown = equation(quantity, elide=elide)
        key, name, occurrence, cell = target(builder, q)
        section = by_key.get(key)
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
        mark(section, number, quantity, shown, name, occurrence, cell)
    header = (Cell("question"), Cell("asks for"), Cell("answer"), Cell("accepted ±"), Cell("worked out in"))
    blocks = [
        Text(
            "The answers at a glance, then each with its equation (general form, the numbers substituted, "
            "the value). In the worked solution below, each asked value is marked and its matrix cell is boxed."
        ),
        Table(header, tuple(rows)),
        *details,
    ]
    qa = Section("Questions and answers", "questions", blocks, 1)
    return dataclasses.replace(doc, name="solution", title=f"{doc.title} (solution)", sections=(qa, *sections))


def target(builder: StackBuilder, q: Question):
    """Where the worked solution shows the asked value: (section key, matrix name, which matrix of that
    name (the channel of a filter), cell in the matrix)."""
    d, layers = builder.d, builder.sc.layers
    part, r, key, *index = parse_path(q.path)
    record = (d.steps if part == "steps" else d.updates)[r]
    prefix = sample_key(builder, record)
    if key == "layers":
        n, key, *index = index
    cell = tuple(index[-2:]) if len(index) >= 2 else (0, index[0]) if index else (0, 0)
    if part == "updates" and key == "state":  # not shown in the update section: the answer is added there
        return f"{prefix}-update", None, 0, None
    if part == "updates":
        n = [m for m, p in enumerate(record.values["params"]) if p is not None and builder.sc.learns(layers[m])][n]
        channel = builder._channel(n, index[1]) if len(index) == 4 else None
        return f"{prefix}-update", builder._param_name(n, index[0], new=True, channel=channel), 0, cell
    if key == "output":
        name = builder.name(n)(index[0] if len(index) == 3 else 0)
        return f"{prefix}-{slug(layers[n].name)}", name, 0, cell
    if key == "grad_output":
        name = builder.name(n, True, record.sample)(index[0] if len(index) == 3 else 0)
        return f"{prefix}-grad-{slug(layers[n + 1].name)}", name, 0, cell
    if key == "grad_input":
        name = builder.name(-1, True, record.sample)(0)
        return f"{prefix}-grad-{slug(layers[0].name)}", name, index[0] if len(index) == 3 else 0, cell
    if key == "grad_weights":
        k = index[0] if layers[n].layer == "conv" else 0
        channel = builder._channel(n, index[1]) if len(index) == 4 else None
        name = builder._param_name(n, k, channel=channel, grad=True, sample=record.sample)
        return f"{prefix}-grad-{slug(layers[n].name)}", name, 0, cell
    if key in ("probs", "logits"):
        return f"{prefix}-{'softmax' if key == 'probs' else slug(layers[-1].name)}", None, 0, None
    raise VerificationError(f"{q.path}: no section of the worked solution shows it")


def sample_key(builder: StackBuilder, record) -> str:
    """The section key prefix the stack builder gives a step or an update (see StackBuilder.build)."""
    passes = len({s.iteration for s in builder.d.steps}) > 1
    if record.sample is None:
        return f"it{record.iteration}-batch"
    return (f"it{record.iteration}-" if passes else "") + builder.sample_keys[record.sample]


def mark(section: Section, number: int, quantity, shown, name, occurrence: int, cell) -> None:
    """Say where the asked value is worked out; box its cell in the ``occurrence``-th matrix called ``name``."""
    blocks = section.blocks
    at = next((i for i, b in enumerate(blocks) if b.kind == "equation" and b.lhs == quantity.symbol), None)
    if at is not None:
        blocks.insert(at, Text(f"» Question {number} asks for this value:"))
    elif name is not None:
        at = next((i for i, b in enumerate(blocks) if b.kind == "matrix" and b.name == name), len(blocks))
        blocks[at:at] = [Text(f"» Question {number} asks for this value (its cell is boxed below):"), shown]
    else:  # a value the section does not show (an optimizer's state): worked out here
        blocks += [Text(f"» Question {number} asks for this value:"), shown]
    if name is None:
        return
    i, j = cell
    seen = -1  # a filter with channels is one matrix per channel, all with the filter's name
    for position, b in enumerate(blocks):
        if b.kind != "matrix" or b.name != name:
            continue
        start, stop = (b.columns[0] - 1, b.columns[1]) if b.columns else (0, b.values.shape[1])
        seen += start == 0  # a wide matrix comes in chunks of columns; its first starts at column 0
        if seen != occurrence or b.shape is not None:
            continue  # an elided matrix may not show the cell; the equation above does
        if start <= j < stop:
            blocks[position] = dataclasses.replace(b, marks=b.marks | {(i, j - start)})
