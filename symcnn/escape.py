"""Escaping of the user's text (names, titles, labels, notes) for each output format."""

from __future__ import annotations

import re

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
}
LATEX_PATTERN = re.compile("|".join(re.escape(c) for c in LATEX_SPECIALS))
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def latex(text: object) -> str:
    """Plain text safe inside a LaTeX paragraph or ``\\text{...}``: no command can be formed."""
    clean = CONTROL.sub("", str(text)).replace("\n", " ")
    return LATEX_PATTERN.sub(lambda m: LATEX_SPECIALS[m.group()], clean)


MATH_TEXT_SPECIALS = {
    **{k: v for k, v in LATEX_SPECIALS.items() if k not in '<>|"'},
    # maths readers know no \textless: step out of \text{} for a maths symbol (no raw < > in Markdown)
    "<": r"}\lt\text{",
    ">": r"}\gt\text{",
    "|": r"}\vert\text{",
}
MATH_TEXT_PATTERN = re.compile("|".join(re.escape(c) for c in MATH_TEXT_SPECIALS))


def math_text(text: object) -> str:
    """Plain text for ``\\text{...}`` in Markdown maths (pandoc, MathJax): as ``latex``, but < > |
    become maths symbols outside the text (never raw HTML), and " stays literal."""
    clean = CONTROL.sub("", str(text)).replace("\n", " ")
    return MATH_TEXT_PATTERN.sub(lambda m: MATH_TEXT_SPECIALS[m.group()], clean)


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]#|$~^])")  # ^ too: pandoc reads ^x^ as superscript


def markdown(text: object) -> str:
    """Plain text safe in Markdown prose: Markdown, HTML and math delimiters are escaped."""
    clean = CONTROL.sub("", str(text)).replace("\n", " ")
    clean = clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MARKDOWN_SPECIALS.sub(r"\\\1", clean)


def slug(text: object) -> str:
    """A file-name-safe slug, case kept: img1 -> img1, 'Cat & Dog' -> Cat-Dog."""
    value = re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-")
    return value or "x"
