"""Jinja over templates/<format>/: one environment per format family, a few filters, no maths here.

``render_to_dir`` writes into a temporary folder first and moves the finished files into ``--out``,
so a failure never leaves half-written output.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import jinja2

import symcnn.escape as escape

from ..document.model import Document, Matrix, Settings
from ..document.numbers import format_number
from ..errors import PartialFailure, RenderError, SymcnnError, UsageError
from ..scenario.model import Scenario
from . import FORMATS, drawing
from .latex import SymcnnLatexPrinter
from .slides import ASPECTS, reveal, template_context
from .templates import LATEX_DELIMITERS, jinja_environment, printer_settings
from .tex import compile_pdf, have_tex, tex_fix  # noqa: F401 (have_tex, tex_fix: for the callers)

LINES_PER_VALUE, LINES_PER_PAGE = 4, 50  # an expanded equation takes about 4 lines of an A4 page
MAX_FULL_PAGES = 200  # --detail full beyond this asks for --force


def environment(family: str, doc: Document) -> jinja2.Environment:
    env = jinja_environment(**(LATEX_DELIMITERS if family == "latex" else {}))
    settings = {**printer_settings(doc), "text_escape": escape.latex if family == "latex" else escape.math_text}
    printer = SymcnnLatexPrinter(settings)
    fixed = SymcnnLatexPrinter({**settings, "scientific": False})  # matrix cells stay narrow: 0.000
    env.filters.update(
        math=remembered(printer.doprint),
        rel=lambda value: (
            "=" if format_number(value, doc.settings.precision, doc.settings.fractions)[1] else r"\approx"
        ),
        matrix=remembered(lambda m: matrix_tex(m, fixed), key=id),
        cell=remembered(fixed.doprint),  # numbers in table cells, fixed point like matrices
        esc=escape.latex if family == "latex" else escape.markdown,
        columns=table_columns,
        tex=escape.latex,
    )
    env.filters.update(drawing.PICTURE_FILTERS)
    if family == "latex":  # a figure's TikZ, drawn once for the article, the slides and the snippets
        env.filters["tikz"] = remembered(
            lambda f: str(env.get_template("latex/figure.tex.j2").module.figure(f)), key=id
        )
    files = drawing.panel_files(doc) if family == "markdown" else {}
    env.globals["figure_file"] = lambda key, i: files[key, i]
    return env


def remembered(function, key=lambda value: value):
    """``function`` printing each value once: the LaTeX formats share their printed pieces."""
    memo: dict = {}

    def once(value):
        k = key(value)
        if k not in memo:
            memo[k] = (value, function(value))  # the value is kept so that an id() key stays unique
        return memo[k][1]

    return once


TEX_DOTS = {"diagonal": r"\ddots", "vertical": r"\vdots", "horizontal": r"\cdots"}


def matrix_tex(m: Matrix, printer: SymcnnLatexPrinter) -> str:
    rows = []
    for i, row in enumerate(m.values):
        cells = []
        for j, value in enumerate(row):
            if value is None:  # elided: dots along the gap
                cells.append(TEX_DOTS[m.dots(i, j)])
                continue
            tex = printer.doprint(value)
            cells.append(rf"\boxed{{{tex}}}" if (i, j) in m.marks else tex)
        rows.append(" & ".join(cells))
    return printer.doprint(m.name) + r" = \begin{bmatrix} " + r" \\ ".join(rows) + r" \end{bmatrix}"


def table_columns(table) -> str:
    """tabulary column types: numbers (maths) stay on one line (l), text columns may wrap (L)."""
    return "".join("l" if all(row[i].math for row in table.rows) else "L" for i in range(len(table.header)))


def render_text(doc: Document, fmt: str, envs: dict | None = None) -> dict[str, str]:
    """File name -> content for one text format. ``envs`` (family -> Jinja environment) lets several
    formats share templates and printed pieces."""
    if fmt == "html":  # its own environment: autoescaped, MathML
        from .html import page

        return {f"{doc.name}.html": page(doc)}
    envs = {} if envs is None else envs
    family = "markdown" if fmt == "markdown" else "latex"
    if family not in envs:
        envs[family] = environment(family, doc)
    env, name = envs[family], doc.name
    if fmt == "markdown":
        text = env.get_template("markdown/document.md.j2").render(doc=doc)
        return {f"{name}.md": text, **drawing.svg_files(doc)}
    if fmt == "latex":
        return {f"{name}.tex": env.get_template("latex/document.tex.j2").render(doc=doc)}
    if fmt == "beamer":
        template = env.get_template("beamer/slides.tex.j2")
        return {f"{name}-slides.tex": template.render(doc=doc, **template_context(doc, env.filters["math"]))}
    if fmt == "snippets":
        files = {}
        template = env.get_template("snippets/snippet.tex.j2")
        for section in doc.sections:
            if section.blocks:
                items = reveal(section.blocks)[0]
                files[f"snippets/{section.key}.tex"] = template.render(doc=doc, section=section, items=items)
        files["snippets/index.tex"] = env.get_template("snippets/index.tex.j2").render(
            doc=doc, files=[k.split("/", 1)[1] for k in files], sections=[s for s in doc.sections if s.blocks]
        )
        return files
    raise RenderError(f"unknown format {fmt}")


def document_for(
    sc: Scenario,
    detail: str | None = None,
    precision: int | None = None,
    iterations: str = "all",
    fractions: bool | None = None,
    force: bool = False,
    samples=None,
    aspect: str = "16:9",
) -> Document:
    """Check the scenario (SymPy against NumPy) and build its worked solution. ``samples`` (names, a list
    or "img1,img2") are worked in full, the others only summarised; ``aspect`` is the slides'."""
    from ..document.stack_builder import build_any_document as build_document
    from ..verify import checked

    samples = sample_list(sc, samples)
    if aspect not in ASPECTS:
        raise UsageError(f"--aspect: expected one of {', '.join(ASPECTS)}, got '{aspect}'")
    report = checked(sc)
    settings = Settings.from_display(sc.display, detail, precision, fractions, iterations)
    settings = dataclasses.replace(settings, aspect=aspect, samples=samples)
    shown = report.compared if sc.is_stack else report.derivation_values  # a legacy document: the legacy keys
    pages = round(shown * LINES_PER_VALUE / LINES_PER_PAGE)
    if settings.detail == "full" and pages > MAX_FULL_PAGES and not force:
        raise UsageError(
            f"--detail full: about {pages:,} pages ({shown:,} values, each an equation); "
            "add --force to write them anyway, or use --detail summary"
        )
    return build_document(report, settings)


def sample_list(sc: Scenario, samples) -> tuple[str, ...] | None:
    """--samples as a tuple of the scenario's sample names (None: every sample); UsageError names a
    sample the scenario does not have."""
    if samples is None:
        return None
    names = [n.strip() for n in samples.split(",")] if isinstance(samples, str) else [str(n) for n in samples]
    known = [x.name for x in sc.inputs]
    for name in names:
        if name not in known:
            raise UsageError(f"--samples: no sample '{name}' in {sc.name}; its samples are {', '.join(known)}")
    if not names:
        raise UsageError("--samples: name at least one sample")
    return tuple(dict.fromkeys(names))


def format_list(fmt) -> list[str]:
    """A format, a list of them or "markdown,latex" as a list; RenderError names an unknown one."""
    formats = fmt.split(",") if isinstance(fmt, str) else list(fmt)
    for name in formats:
        if name not in FORMATS:
            raise RenderError(f"unknown format '{name}'; expected one of {', '.join(FORMATS)}")
    return formats


def write_formats(doc: Document, formats, out: str | Path) -> list[Path]:
    """Render each of ``formats`` into its own temporary folder inside ``out``, then move the finished
    files in: a format that fails writes nothing, the others are still written (PartialFailure lists
    them and the failures). Nothing is moved before every format is done, so an interrupted run
    writes nothing at all."""
    formats = format_list(formats)
    out = Path(out)
    staged, failures = {}, []
    with new_folder(out), tempfile.TemporaryDirectory(dir=out, prefix=".symcnn-") as tmp:
        envs = {}
        for fmt in formats:
            try:
                staged[fmt] = stage(doc, fmt, Path(tmp) / fmt, envs)
            except SymcnnError as exc:
                failures.append(f"{fmt}: {exc}")
        written = []
        for fmt, names in staged.items():
            for name in names:
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(Path(tmp) / fmt / name, target)
                written.append(target)
        if "markdown" in staged:  # NAME-figures/ is ours: pictures of an earlier rendering go
            pictures = out / drawing.figure_folder(doc)
            for old in set(pictures.glob("*.svg")) - set(written):
                old.unlink()
    if failures:
        raise PartialFailure(written, failures)
    return written


def stage(doc: Document, fmt: str, work: Path, envs: dict) -> list[str]:
    """Write one format's files into ``work`` (a pdf: its LaTeX, compiled); the names to keep."""
    files = (
        {**render_text(doc, "latex", envs), **render_text(doc, "beamer", envs)}
        if fmt == "pdf"
        else render_text(doc, fmt, envs)
    )
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    if fmt == "pdf":
        return [p.name for p in compile_pdf([work / n for n in files], work)]
    return list(files)


@contextmanager
def new_folder(out: Path):
    """``out`` created (with its missing parents) for the block; afterwards those it created that stayed
    empty are removed again: no command leaves an empty folder behind."""
    created, folder = [], out
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    try:
        yield out
    finally:
        for folder in created:  # the deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty: it holds what was written
                break


def render_to_dir(
    sc: Scenario,
    fmt,
    out: str | Path,
    detail: str | None = None,
    precision: int | None = None,
    iterations: str = "all",
    fractions: bool | None = None,
    force: bool = False,
    samples=None,
    aspect: str = "16:9",
) -> list[Path]:
    """Check, build the document and write ``fmt`` (a format, or several: a list or "markdown,latex")
    into ``out``; returns the files written. Options left as None take the scenario's ``display``
    hints (else summary, 3 decimals, decimals). ``samples``: the samples worked in full (default all);
    ``aspect``: of the slides, "16:9" or "4:3"."""
    formats = format_list(fmt)  # before the check: a bad name costs nothing
    doc = document_for(sc, detail, precision, iterations, fractions, force, samples, aspect)
    return write_formats(doc, formats, out)


def render_examples(out: str | Path, pdf: bool = True) -> list[Path]:
    """Every built-in scenario in every format, into ``out/<name>/`` (PDFs only when ``pdf``). A format
    that fails does not stop the others: PartialFailure lists what was written and what failed."""
    from ..scenario.sources import builtin_names, load

    written, failures = [], []
    for name in builtin_names():
        formats = [f for f in FORMATS if pdf or f != "pdf"]
        try:
            written += write_formats(document_for(load(name)), formats, Path(out) / name)
        except PartialFailure as exc:
            written += exc.written
            failures += [f"{name}: {failure}" for failure in exc.failures]
    if failures:
        raise PartialFailure(written, failures)
    return written
