"""output/<name>/ holds the built-in scenarios rendered in every format (committed, for readers who
do not install symcnn). It must be what the current code renders: regenerate it with

    python -m symcnn examples --out output
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

import symcnn
from symcnn.rendering.formats import render_to_dir

OUTPUT = Path(__file__).resolve().parents[1] / "output"
BUILTINS = tuple(symcnn.builtin_names())  # every built-in, the stacks and zebra-cat-adam included
TEXT_FORMATS = ("markdown", "latex", "beamer", "snippets", "html")  # the Markdown with its SVG pictures
REGENERATE = "output/ is stale: run `python -m symcnn examples --out output` (or `symcnn examples --out output`)"


def normalise(text: str) -> str:
    """The NumPy-vs-SymPy gap ("agree to 2e-16 at most") is floating-point noise that can differ
    between machines and NumPy builds; it is the one number not pinned."""
    return re.sub(r"agree to \S+ at most", "agree to <max diff> at most", text)


def text_files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in (".md", ".tex", ".html", ".svg")
    }


@pytest.mark.parametrize("name", BUILTINS)
def test_committed_text_outputs_are_fresh(tmp_path, name):
    sc = symcnn.load(name)
    render_to_dir(sc, TEXT_FORMATS, tmp_path)
    committed = OUTPUT / name
    assert committed.is_dir(), f"output/{name}/ is missing: {REGENERATE}"
    fresh, stored = text_files(tmp_path), text_files(committed)
    assert fresh == stored, (
        f"output/{name}/: files not rendered any more {sorted(stored - fresh)}, "
        f"files missing {sorted(fresh - stored)}; {REGENERATE}"
    )
    stale = []
    for f in sorted(fresh):
        new = normalise((tmp_path / f).read_text(encoding="utf-8"))
        old = normalise((committed / f).read_text(encoding="utf-8"))
        if new != old:
            diff = list(
                difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), f"output/{name}/{f}", f"rendered/{f}", n=1
                )
            )
            stale.append("".join(diff[:20]))
    assert not stale, f"{len(stale)} file(s) of output/{name}/ differ; {REGENERATE}\n" + "\n".join(stale[:3])


@pytest.mark.parametrize("name", BUILTINS)
def test_committed_pdfs_exist(name):
    for pdf in (f"{name}.pdf", f"{name}-slides.pdf"):
        path = OUTPUT / name / pdf
        assert path.is_file(), f"output/{name}/{pdf} is missing: {REGENERATE}"
        with path.open("rb") as handle:
            assert handle.read(5) == b"%PDF-", f"output/{name}/{pdf} is not a PDF"
        assert path.stat().st_size > 10_000
