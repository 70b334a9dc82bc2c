"""`symcnn exercise --format moodle`: the batch as a Moodle XML question bank, ``moodle.xml``.

It follows Moodle's importer (question/format/xml/format.php): one ``<question type="category">`` per
question of the sheet (``$course$/symcnn/<batch>/q3-logit``), then one numerical question per variant,
whose ``<answer fraction="100">`` holds the key's value and ``<tolerance>`` the key's tolerance (an
absolute ±, as ``import_numerical`` reads it). The question text is HTML in CDATA, maths as \\( \\) for
Moodle's MathJax filter; the setup's pictures are SVG files of the question (``<file encoding="base64">``,
shown through ``@@PLUGINFILE@@``). A quiz then draws one variant per student with a random question
from each category. A last category, ``<batch>/sheet``, holds each variant's whole sheet as one cloze
(multianswer) question, ``{1:NUMERICAL:=value:tolerance}`` per question: a random question from it gives
a student one variant with all its questions.
"""

from __future__ import annotations

import base64

from markupsafe import escape

from ..rendering.formats import jinja_environment
from .lms import Batch, by_question, cdata, cloze_html, number_text, question_html

FILE = "moodle.xml"
PICTURES = "file"  # the picture style of lms.setup_html it needs


def moodle_xml(batch: Batch) -> str:
    env = jinja_environment(autoescape=True)
    env.filters.update(
        number=number_text,
        base64=lambda text: base64.b64encode(text.encode("utf-8")).decode("ascii"),
    )
    return env.get_template("lms/moodle.xml.j2").render(
        batch=batch,
        questions=lambda qid: by_question(batch, qid),
        question_html=lambda item, q: question_html(item, q, PICTURES),
        cdata=cdata,
        info=lambda qid: category_info(batch, qid),
        cloze_html=lambda item: cloze_html(item, PICTURES),
        sheet_info=(
            f"<p>{escape(batch.title)}: the whole exercise sheet as one cloze question per variant "
            f"({len(batch.items)} variants, seed {batch.seed}, {escape(batch.difficulty)}). Add a random question "
            "from this category to a quiz: each student gets one variant and answers all its questions.</p>"
        ),
    )


def category_info(batch: Batch, qid: str) -> str:
    """The category's description (HTML): which batch and question it holds."""
    count = len(by_question(batch, qid))
    return (
        f"<p>{escape(batch.title)}: question {escape(qid)} of the exercise sheet, {count} variants "
        f"(seed {batch.seed}, {escape(batch.difficulty)}), written by symcnn exercise. Add a random question "
        "from this category to a quiz: each student gets one variant.</p>"
    )


def write(batch: Batch) -> dict[str, bytes]:
    """File name -> content."""
    return {FILE: moodle_xml(batch).encode("utf-8")}
