"""Jinja over templates/<format>/: one environment per format family, a few filters, no maths here.

``render_to_dir`` writes into a temporary folder first and moves the finished files into ``--out``,
so a failure never leaves half-written output.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jinja2

from .. import escape
from ..document.model import Document, Matrix, Settings
from ..document.numbers import format_number
from ..errors import RenderError, UsageError
from ..scenario.model import Scenario
from . import FORMATS, drawing
from .latex import SymcnnLatexPrinter
from .templates import LATEX_DELIMITERS, jinja_environment, printer_settings

LINES_PER_VALUE, LINES_PER_PAGE = 4, 50  # an expanded equation takes about 4 lines of an A4 page
MAX_FULL_PAGES = 200  # --detail full beyond this asks for --force
FRAME_BUDGET = 11.0  # lines of a Beamer frame body
TABLE_ROW_LINES = 0.7  # a \footnotesize table row, in frame lines
SLIDE_SCALE = 0.75  # pictures on slides, of their size in the article
SLIDE_WIDTH_PT, SLIDE_LINE_PT, PANEL_GAP_PT, PANEL_TITLE_PT = 390.0, 18.0, 13.0, 12.0


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
    env.globals["frames"] = lambda blocks: frames(blocks, env.filters["math"])
    if family == "latex":  # a figure's TikZ, drawn once for the article, the slides and the snippets
        env.filters["tikz"] = remembered(
            lambda f: str(env.get_template("latex/figure.tex.j2").module.figure(f)), key=id
        )
    env.globals["slide_scale"] = SLIDE_SCALE
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


SLIDE_LINE_CHARS = 150  # characters of LaTeX source that fill about one line of a slide


def block_lines(block, printer=None) -> float:
    """A rough height of a block in slide lines, to pack Beamer frames."""
    if block.kind == "matrix":
        return 1.0 + 0.8 * block.values.shape[0]
    if block.kind == "table":
        return 1.5 + TABLE_ROW_LINES * len(block.rows)
    if block.kind == "figure":
        return 1.2 + sum(row_lines(row) for row in figure_rows(block.panels))
    if block.kind in ("equation", "derivative"):
        if printer is None:
            return 3.2
        parts = [getattr(block, name, None) for name in ("general", "substituted", "raw", "simplified")]
        wraps = sum(len(printer(p)) // SLIDE_LINE_CHARS for p in parts if p is not None)
        return 3.2 + 1.1 * wraps
    return 1.5


def figure_rows(panels) -> list[list]:
    """Panels as TeX sets them side by side on a slide: as many per row as fit the frame's width."""
    rows, width = [], SLIDE_WIDTH_PT
    for panel in panels:
        w = drawing.layout(panel).width * SLIDE_SCALE
        if rows and width + PANEL_GAP_PT + w <= SLIDE_WIDTH_PT:
            rows[-1].append(panel)
            width += PANEL_GAP_PT + w
        else:
            rows.append([panel])
            width = w
    return rows


def row_lines(row) -> float:
    return (max(drawing.layout(p).height for p in row) * SLIDE_SCALE + PANEL_TITLE_PT) / SLIDE_LINE_PT


def split_tables(blocks) -> list:
    """Tables too long for one frame, cut into runs of rows that each repeat the header; figures too
    tall for one frame, cut into runs of panel rows that each repeat the caption."""
    per_frame = max(1, int((FRAME_BUDGET - 1.5) / TABLE_ROW_LINES))
    out = []
    for block in blocks:
        if block.kind == "table" and len(block.rows) > per_frame:
            out += [
                dataclasses.replace(block, rows=block.rows[i : i + per_frame])
                for i in range(0, len(block.rows), per_frame)
            ]
        elif block.kind == "figure" and block_lines(block) > FRAME_BUDGET:
            chunks, used = [[]], 1.2
            for row in figure_rows(block.panels):
                if chunks[-1] and used + row_lines(row) > FRAME_BUDGET:
                    chunks.append([])
                    used = 1.2
                chunks[-1] += row
                used += row_lines(row)
            out += [dataclasses.replace(block, panels=tuple(chunk)) for chunk in chunks]
        else:
            out.append(block)
    return out


def frames(blocks, printer=None) -> list[list]:
    """Blocks packed into frames of at most FRAME_BUDGET lines, never splitting a block; a text that
    ends a full frame (a caption such as "Image x2 (label bar):") moves on with the block it introduces.
    ``printer`` (expression -> LaTeX) measures equations; without it they count as one line each."""
    out, current, used = [], [], 0.0
    for block in split_tables(blocks):
        lines = block_lines(block, printer)
        if current and used + lines > FRAME_BUDGET:
            carry = []
            while len(current) > 1 and current[-1].kind == "text":
                carry.insert(0, current.pop())
            out.append(current)
            current, used = carry, sum(block_lines(b) for b in carry)
        current.append(block)
        used += lines
    if current:
        out.append(current)
    return out


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
        return {f"{name}-slides.tex": env.get_template("beamer/slides.tex.j2").render(doc=doc)}
    if fmt == "snippets":
        files = {}
        template = env.get_template("snippets/snippet.tex.j2")
        for section in doc.sections:
            if section.blocks:
                files[f"snippets/{section.key}.tex"] = template.render(doc=doc, section=section)
        files["snippets/index.tex"] = env.get_template("snippets/index.tex.j2").render(
            doc=doc, files=[k.split("/", 1)[1] for k in files], sections=[s for s in doc.sections if s.blocks]
        )
        return files
    raise RenderError(f"unknown format {fmt}")


def tex_fix(apt: bool = True) -> str:
    """What every LaTeX error message ends with: `symcnn doctor`, and where TeX is missing the apt line."""
    from ..system import apt_line

    return "`symcnn doctor` checks this machine" + (f"; Debian: {apt_line(feature='pdf')}" if apt else "")


def have_tex() -> bool:
    return shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


def latexmk_command(tex_name: str) -> list[str]:
    return ["latexmk", "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "-quiet", tex_name]


def latex_env() -> dict[str, str]:
    """Reads and writes confined to the folder, shell escape off, reproducible dates, unwrapped logs."""
    return {
        **os.environ,
        "openin_any": "p",
        "openout_any": "p",
        "shell_escape": "f",
        "max_print_line": "10000",  # TeX wraps its log at 79 characters otherwise
        "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"),
        "FORCE_SOURCE_DATE": "1",
    }


def compile_pdf(tex_files: list[Path], workdir: Path) -> list[Path]:
    """latexmk -pdf with shell escape off and reads/writes confined to the folder."""
    if not have_tex():
        raise RenderError(f"pdf: latexmk and pdflatex are needed ({tex_fix()})")
    pdfs = []
    for tex in tex_files:
        result = subprocess.run(
            latexmk_command(tex.name),
            cwd=workdir,
            env=latex_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        log = workdir / tex.with_suffix(".log").name
        if result.returncode != 0:
            raise RenderError(f"{tex.name}: {first_latex_error(log)} ({tex_fix(apt=False)})")
        pdfs.append(workdir / tex.with_suffix(".pdf").name)
    return pdfs


def first_latex_error(log: Path) -> str:
    """The log's first error, whole (TeX runs with max_print_line raised; a log wrapped at 79 characters
    anyway is joined back), and its line number."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "LaTeX failed and wrote no log"
    for i, line in enumerate(lines):
        if line.startswith("!"):
            message, j = line, i
            while len(lines[j]) == TEX_LOG_WIDTH and j + 1 < len(lines) and not lines[j + 1].startswith("l."):
                j += 1
                message += lines[j]
            where = next((l.split(" ", 1)[0] for l in lines[j + 1 : j + 12] if l.startswith("l.")), "")
            return f"LaTeX error {message[1:].strip()}" + (f" at line {where[2:]}" if where else "")
    return "LaTeX failed (see the .log)"


TEX_LOG_WIDTH = 79  # TeX's default max_print_line


def document_for(
    sc: Scenario,
    detail: str | None = None,
    precision: int | None = None,
    iterations: str = "all",
    fractions: bool | None = None,
    force: bool = False,
) -> Document:
    """Check the scenario (SymPy against NumPy) and build its worked solution."""
    from ..document.stack_builder import build_any_document as build_document
    from ..verify import checked

    report = checked(sc)
    settings = Settings.from_display(sc.display, detail, precision, fractions, iterations)
    shown = report.compared if sc.is_stack else report.derivation_values  # a legacy document: the legacy keys
    pages = round(shown * LINES_PER_VALUE / LINES_PER_PAGE)
    if settings.detail == "full" and pages > MAX_FULL_PAGES and not force:
        raise UsageError(
            f"--detail full: about {pages:,} pages ({shown:,} values, each an equation); "
            "add --force to write them anyway, or use --detail summary"
        )
    return build_document(report, settings)


def format_list(fmt) -> list[str]:
    """A format, a list of them or "markdown,latex" as a list; RenderError names an unknown one."""
    formats = fmt.split(",") if isinstance(fmt, str) else list(fmt)
    for name in formats:
        if name not in FORMATS:
            raise RenderError(f"unknown format '{name}'; expected one of {', '.join(FORMATS)}")
    return formats


def write_formats(doc: Document, formats, out: str | Path) -> list[Path]:
    """Render ``formats`` into a temporary folder inside ``out``, then move the finished files in."""
    formats = format_list(formats)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".symcnn-") as tmp:
        work = Path(tmp)
        keep, envs = [], {}
        for fmt in formats:
            files = (
                {**render_text(doc, "latex", envs), **render_text(doc, "beamer", envs)}
                if fmt == "pdf"
                else render_text(doc, fmt, envs)
            )
            for name, text in files.items():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                (work / name).write_text(text, encoding="utf-8")
            if fmt == "pdf":
                keep += [p.name for p in compile_pdf([work / n for n in files], work)]
            else:
                keep += list(files)
        written = []
        for name in dict.fromkeys(keep):
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(work / name, target)
            written.append(target)
        if "markdown" in formats:  # NAME-figures/ is ours: pictures of an earlier rendering go
            pictures = out / drawing.figure_folder(doc)
            for old in set(pictures.glob("*.svg")) - set(written):
                old.unlink()
    return written


def render_to_dir(
    sc: Scenario,
    fmt,
    out: str | Path,
    detail: str | None = None,
    precision: int | None = None,
    iterations: str = "all",
    fractions: bool | None = None,
    force: bool = False,
) -> list[Path]:
    """Check, build the document and write ``fmt`` (a format, or several: a list or "markdown,latex")
    into ``out``; returns the files written. Options left as None take the scenario's ``display``
    hints (else summary, 3 decimals, decimals)."""
    formats = format_list(fmt)  # before the check: a bad name costs nothing
    return write_formats(document_for(sc, detail, precision, iterations, fractions, force), formats, out)


def render_examples(out: str | Path, pdf: bool = True) -> list[Path]:
    """Every built-in scenario in every format, into ``out/<name>/`` (PDFs only when ``pdf``)."""
    from ..scenario.sources import builtin_names, load

    written = []
    for name in builtin_names():
        formats = [f for f in FORMATS if pdf or f != "pdf"]
        written += write_formats(document_for(load(name)), formats, Path(out) / name)
    return written
