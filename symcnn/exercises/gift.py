"""`symcnn exercise --format gift`: the batch as Moodle's GIFT text format, ``questions.gift``.

Per question of the sheet a ``$CATEGORY:`` line (as in moodle.xml), then one numerical question per
variant: ``::name::[html]text{#value:tolerance}``, the key's value and absolute tolerance. The text is
the variant's setup and the question as HTML on one line, escaped as Moodle's own GIFT writer does
(``repchar`` in question/format/gift/format.php: backslash, ``# = ~ { } :`` and newlines). GIFT has
no files, so the setup's pictures are left out (the matrices hold every number).
"""

from __future__ import annotations

from .lms import Batch, by_question, number_text, question_html

FILE = "questions.gift"
PICTURES = "none"
RESERVED = {"\\": "\\\\", "#": "\\#", "=": "\\=", "~": "\\~", "{": "\\{", "}": "\\}", ":": "\\:", "\n": "\\n", "\r": ""}


def escape_gift(text: str) -> str:
    """GIFT's escapes, as Moodle's exporter writes them (the importer reads ``\\n`` as a newline)."""
    return "".join(RESERVED.get(c, c) for c in text)


def gift_text(batch: Batch) -> str:
    # the title goes in a comment line: on one line, else a line break would start a question
    count = f"{len(batch.items)} variant{'' if len(batch.items) == 1 else 's'}"
    lines = [
        f"// {' '.join(batch.title.split())}: {count} of {batch.scenario}, seed {batch.seed}, {batch.difficulty}.",
        "// Written by symcnn exercise. In Moodle: Question bank > Import > GIFT format; then add a random",
        "// question from each category to a quiz, so that each student gets one variant.",
        "",
    ]
    for qid in batch.question_ids():
        pairs = by_question(batch, qid)
        # category paths are built from the scenario's name ([a-z0-9-]) and slugs: nothing to escape
        lines += [f"$CATEGORY: $course$/symcnn/{batch.name}/{batch.category(pairs[0][1])}", ""]
        for item, q in pairs:
            name = escape_gift(f"{batch.name} variant {item.index} {q.id}")
            text = escape_gift(" ".join(question_html(item, q, PICTURES).split("\n")))
            lines += [f"::{name}::[html]{text}{{#{number_text(q.value)}:{number_text(q.tol)}}}", ""]
    return "\n".join(lines)


def write(batch: Batch) -> dict[str, bytes]:
    return {FILE: gift_text(batch).encode("utf-8")}
