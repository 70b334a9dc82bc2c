"""What the LMS exports (Moodle XML, GIFT, QTI) share: each variant as an ``Item``, its setup as HTML.

A worker of the batch turns its variant into an Item: the setup (images, filters, dense layer, training)
as an HTML fragment with the maths as ``\\( ... \\)`` for the LMS's MathJax, rendered once per picture
style an export asks for, the pictures as SVG files, and the questions with the key's values and
tolerances. The exports (moodle.py, gift.py, qti.py) only lay the Items out in their format; every
answer value and tolerance they write is the one key.json holds.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup

import symcnn.escape as escape

from ..document.model import Document
from ..errors import RenderError
from ..rendering import drawing
from ..rendering.formats import jinja_environment, matrix_tex, printer_settings
from ..rendering.latex import SymcnnLatexPrinter
from ..verify import Report
from .questions import Question
from .variants import Variant

# how an export shows the setup's pictures: a file of the question (Moodle), inline (QTI), none (GIFT)
PICTURE_STYLES = ("file", "inline", "none")
KIND_SLUGS = {  # the question category's name after its id: q3-logit
    "conv": "conv",
    "activated": "activation",
    "pooled": "pooling",
    "logits": "logit",
    "probs": "probability",
    "loss": "loss",
    "grad_dense_weights": "weight-gradient",
    "dense_weights": "updated-weight",
    "optimizer_state": "optimizer-state",
    "layer_conv": "conv",
    "layer_pool": "pooling",
    "layer_activation": "activation",
    "layer_grad_output": "hidden-gradient",
    "layer_grad_weights": "weight-gradient",
    "grad_input": "input-gradient",
    "layer_weights": "updated-weight",
    "layer_state": "optimizer-state",
}
SETUP_BLOCKS = {"text", "matrix", "formula", "figure", "table"}  # what templates/lms/setup.html.j2 shows


@dataclass(frozen=True)
class LmsQuestion:
    id: str  # q1, q2, ... as in key.json
    kind: str
    text: str  # plain text, escaped by each format
    value: float  # key.json's value
    tol: float  # key.json's tolerance, absolute


@dataclass(frozen=True)
class Item:
    """One variant as the LMS exports take it."""

    index: int
    setup: dict[str, str]  # picture style -> the setup as an HTML fragment
    instructions: str  # plain text: how to work and which sample comes first (the student sheet's)
    pictures: tuple[tuple[str, str], ...]  # (file name, SVG document) of the setup's pictures
    questions: tuple[LmsQuestion, ...]


@dataclass(frozen=True)
class Batch:
    """What names the batch in an LMS: category paths, question names, the quiz title."""

    scenario: str
    title: str
    seed: int
    difficulty: str
    items: tuple[Item, ...]

    @property
    def name(self) -> str:
        return f"{self.scenario}-seed{self.seed}-{self.difficulty}"

    def category(self, question: LmsQuestion) -> str:
        return f"{question.id}-{kind_slug(question.kind)}"

    def question_ids(self) -> list[str]:
        """Every question id of the batch in sheet order (variants may, in principle, ask different ones)."""
        return list(dict.fromkeys(q.id for item in self.items for q in item.questions))


def kind_slug(kind: str) -> str:
    return KIND_SLUGS.get(kind) or escape.slug(kind).lower()


def number_text(value: float) -> str:
    """A float as the shortest plain decimal that reads back as the same float (no exponent: 1e-05 is
    0.00001), what an LMS's number field parses."""
    text = np.format_float_positional(float(value), unique=True, trim="-")
    return "0" if text == "-0" else text


def picture_name(key: str, number: int) -> str:
    return f"{escape.slug(key)}-{number + 1}.svg"


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def cdata(text: str) -> Markup:
    """``text`` as XML CDATA; a ``]]>`` inside is split across two sections, so it cannot end it."""
    return Markup("<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>")


def setup_html(doc: Document, section, style: str, pictures: dict) -> str:
    """The setup section as an HTML fragment (maths in \\( \\) for MathJax, user text escaped)."""
    unknown = {b.kind for b in section.blocks} - SETUP_BLOCKS
    if unknown:
        raise RenderError(
            f"LMS export: the setup has blocks of kind {', '.join(sorted(unknown))}, which it cannot show"
        )
    env = jinja_environment(autoescape=True)
    settings = {**printer_settings(doc), "text_escape": escape.math_text}
    printer = SymcnnLatexPrinter(settings)
    fixed = SymcnnLatexPrinter({**settings, "scientific": False})
    env.filters.update(math=printer.doprint, matrix=lambda m: matrix_tex(m, fixed))
    sources = {
        "file": lambda key, i: f"@@PLUGINFILE@@/{picture_name(key, i)}",
        "inline": lambda key, i: data_uri(pictures[picture_name(key, i)]),
        "none": None,
    }
    return env.get_template("lms/setup.html.j2").render(section=section, source=sources[style])


def build_item(report: Report, variant: Variant, questions: list[Question], settings, styles) -> Item:
    """The variant ``variant`` with its ``questions`` as an Item, its setup in each picture style of ``styles``."""
    from .sheets import setup_section, student_document

    doc = student_document(report, variant, questions, settings)
    section = setup_section(report, settings)
    figures = [b for b in section.blocks if b.kind == "figure"]
    pictures = {
        picture_name(f.key, i): '<?xml version="1.0" encoding="UTF-8"?>\n' + drawing.svg(panel)
        for f in figures
        for i, panel in enumerate(f.panels)
    }
    return Item(
        variant.index,
        {style: setup_html(doc, section, style, pictures) for style in styles},
        doc.description,
        tuple(pictures.items()),
        tuple(LmsQuestion(q.id, q.kind, q.text, q.value, q.tol) for q in questions),
    )


def question_html(item: Item, question: LmsQuestion, style: str) -> str:
    """The text of one question of one variant: how to work (the student sheet's words), the variant's
    setup, then what to compute."""
    number = question.id[1:] if question.id[1:].isdigit() else question.id
    return (
        f"<p><em>{Markup.escape(item.instructions)}</em></p>\n{item.setup[style]}"
        f"<p><strong>Question {Markup.escape(number)}.</strong> {Markup.escape(question.text)}</p>\n"
    )


def by_question(batch: Batch, qid: str) -> list[tuple[Item, LmsQuestion]]:
    """(variant, its question ``qid``) for every variant that asks it, in variant order."""
    return [(item, q) for item in batch.items for q in item.questions if q.id == qid]


def no_braces(html: str) -> str:
    """HTML with { and } as character references: a Moodle cloze question reads {1:NUMERICAL:...} (and
    {#1}) in its raw text, so text of ours or the user's can never form one; MathJax reads the decoded
    text, so the maths is unchanged."""
    return html.replace("{", "&#123;").replace("}", "&#125;")


def cloze_html(item: Item, style: str) -> str:
    """The whole sheet of one variant as a Moodle cloze (multianswer) text: the setup, then each question
    with its embedded numerical answer, {1:NUMERICAL:=value:tolerance}, the key's value and tolerance."""
    parts = [f"<p><em>{no_braces(str(Markup.escape(item.instructions)))}</em></p>\n", no_braces(item.setup[style])]
    for q in item.questions:
        number = q.id[1:] if q.id[1:].isdigit() else q.id
        text = no_braces(str(Markup.escape(q.text)))
        answer = f"{{1:NUMERICAL:={number_text(q.value)}:{number_text(q.tol)}}}"
        parts.append(
            f"<p><strong>Question {no_braces(str(Markup.escape(number)))}.</strong> {text}</p>\n<p>{answer}</p>\n"
        )
    return "".join(parts)
