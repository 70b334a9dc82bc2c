"""PDFs from LaTeX: latexmk with shell escape off, reads and writes confined to the working folder, and
errors that say what went wrong and where to look (`symcnn doctor`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import RenderError


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
        raise RenderError(f"latexmk and pdflatex are needed ({tex_fix()})")
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
            said = (result.stderr or result.stdout).strip().splitlines()
            what = (
                first_latex_error(log)
                if log.is_file()
                else f"latexmk exited with {result.returncode}, no log" + (f": {said[-1]}" if said else "")
            )
            raise RenderError(f"{tex.name}: {what} ({tex_fix(apt=False)})")
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
