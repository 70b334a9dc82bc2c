"""`symcnn doctor`: what this machine can do. One row per feature: what it needs, ✓ or ✗, and the line
that fixes it (Debian packages from the one list, .ci/debian-packages). The PDF rows compile probe
documents that load every LaTeX package the templates load and print every character they map."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import SymcnnError
from .system import apt_line, debian_packages

ESSENTIAL = ("python", "pdf")  # every document format needs these; the rest is for the tests
PREAMBLE_COMMAND = re.compile(r"^\\(usepackage|usetheme|usetikzlibrary|DeclareUnicodeCharacter)\b.*$", re.MULTILINE)
INCLUDE = re.compile(r"""\\BLOCK\{\s*(?:include|import)\s+"([^"]+)\"""")
DOCUMENTCLASS = re.compile(r"^\\documentclass(\[[^\]\n]*\])?\{(\w+)\}", re.MULTILINE)
UNICODE = re.compile(r"\\DeclareUnicodeCharacter\{([0-9A-Fa-f]+)\}")
PROBE_TEXT = r"""Roman \textbf{bold} \textit{italic} \textsl{slanted} \textsc{Caps} \texttt{typewriter} \textsf{sans
\textbf{bold}} {\footnotesize small {\scriptsize smaller}} {\Large\bfseries large} {\huge huge}
$x_{i,j}^{2} = \frac{\partial L}{\partial w} \cdot \eta - \sum_{k} e^{o_k} \approx \log(0.5)$ %s
\[ \max\left(0, \frac{1}{3}\right) \times 10^{-7} \]"""
TIKZ_TEXT = r"\begin{tikzpicture}\draw (0,0) rectangle (1,1); \node at (0.5,0.5) {\scriptsize 0.125};\end{tikzpicture}"


@dataclass(frozen=True)
class Row:
    feature: str
    needs: str
    ok: bool
    fix: str = ""
    detail: str = ""  # why it failed, e.g. the LaTeX error


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]

    @property
    def ok(self) -> bool:
        """Every document format can be produced (the test tools and the cache are not needed for that)."""
        return all(row.ok for row in self.rows if row.feature.split(":")[0] in ESSENTIAL)

    def table(self) -> str:
        header = ("feature", "", "needs", "fix")
        cells = [header] + [(r.feature, "✓" if r.ok else "✗", r.needs, r.fix) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(3)]
        lines = ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
        lines = [line.rstrip() for line in lines]
        lines += [f"{r.feature}: {r.detail}" for r in self.rows if r.detail]
        verdict = "every document format can be produced" if self.ok else "some document formats cannot be produced"
        return "\n".join(lines + [verdict])


def diagnose() -> Report:
    return Report((*python_rows(), *pdf_rows(), *test_rows(), cache_row()))


# ---------------------------------------------------------------------------------------- Python
def python_rows() -> list[Row]:
    """symcnn's own requirements (from its installed metadata), then the test extra's."""
    try:
        requirements = metadata.requires("symcnn") or []
    except metadata.PackageNotFoundError:
        return [Row("python: packages", "symcnn installed", False, "python -m pip install .")]
    plain = [r for r in requirements if ";" not in r]
    tests = [r.split(";")[0].strip() for r in requirements if "extra == 'test'" in r.replace('"', "'")]
    return [
        requirement_row("python: packages", plain, "python -m pip install ."),
        requirement_row("tests: python packages", tests, "python -m pip install '.[test]'"),
    ]


def requirement_row(feature: str, requirements: list[str], fix: str) -> Row:
    missing = []
    for requirement in requirements:
        name, _, bound = _split(requirement)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(f"{name} (missing)")
            continue
        if bound and _version(have) < _version(bound):
            missing.append(f"{name} {have} < {bound}")
    ok = not missing
    return Row(feature, ", ".join(requirements), ok, "" if ok else fix, "" if ok else "; ".join(missing))


def _split(requirement: str) -> tuple[str, str, str]:
    match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(>=|==)?\s*([0-9][0-9A-Za-z.]*)?", requirement)
    return match.group(1), match.group(2) or "", match.group(3) or ""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# ---------------------------------------------------------------------------------------- TeX
def pdf_rows() -> list[Row]:
    from .rendering.tex import compile_pdf

    rows = [tool_row("pdf", tool) for tool in ("pdflatex", "latexmk")]
    for name, text in probe_documents().items():
        packages = re.findall(r"\\usepackage(?:\[[^\]]*\])?\{([^}]+)\}", text)
        needs = "LaTeX: " + ", ".join(sorted({p.strip() for group in packages for p in group.split(",")}))
        feature = f"pdf: {name.removesuffix('.tex')}"
        if not all(row.ok for row in rows[:2]):
            rows.append(Row(feature, needs, False, "", "not compiled: pdflatex or latexmk is missing (above)"))
            continue
        with tempfile.TemporaryDirectory(prefix="symcnn-doctor-") as tmp:
            (Path(tmp) / name).write_text(text, encoding="utf-8")
            try:
                compile_pdf([Path(tmp) / name], Path(tmp))
                rows.append(Row(feature, needs, True))
            except SymcnnError as exc:
                rows.append(Row(feature, needs, False, apt_line(feature="pdf"), str(exc).split(" (`symcnn doctor`")[0]))
    return rows


def probe_documents() -> dict[str, str]:
    """One probe per document class the templates use (article, beamer): every \\usepackage, theme and
    TikZ library of the templates of that class and what they include, and a body printing each
    character they map with \\DeclareUnicodeCharacter, in the fonts and sizes documents use."""
    from .rendering.templates import template_dir

    root = template_dir()
    preambles: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.tex.j2")):
        text = path.read_text(encoding="utf-8")
        match = DOCUMENTCLASS.search(text)
        if match:
            lines = preambles.setdefault(match.group(2), [])
            lines += [line for line in preamble_lines(root, path.relative_to(root).as_posix()) if line not in lines]
    probes = {}
    for cls, lines in preambles.items():
        characters = "".join(chr(int(code, 16)) for line in lines for code in UNICODE.findall(line))
        body = PROBE_TEXT % characters + ("\n" + TIKZ_TEXT if any("{tikz}" in line for line in lines) else "")
        if cls == "beamer":
            body = "\\begin{frame}{Probe \\checkmark}\n" + body + "\n\\end{frame}"
        source = "\n".join([f"\\documentclass{{{cls}}}", *lines, "\\begin{document}", body, "\\end{document}", ""])
        probes[f"probe-{cls}.tex"] = source
    return probes


def preamble_lines(root: Path, name: str, seen: frozenset = frozenset()) -> list[str]:
    """The template's preamble commands and those of the templates it includes, in order; options
    computed by the template (\\VAR{...}) are dropped."""
    text = (root / name).read_text(encoding="utf-8")
    lines = []
    for include in INCLUDE.findall(text):
        if include not in seen:
            lines += preamble_lines(root, include, seen | {name})
    for match in PREAMBLE_COMMAND.finditer(text.split("\\begin{document}")[0]):
        line = match.group(0).strip()
        if "\\VAR{" in line or "\\BLOCK{" in line:
            line = re.sub(r"\[[^\]]*\]", "", line, count=1)
        if "\\VAR{" not in line and "\\BLOCK{" not in line:
            lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------- tools
def package_for(tool: str) -> str:
    """The listed Debian package that gives ``tool`` (named so, or naming it in its comment)."""
    for package in debian_packages():
        if package.name == tool or re.search(rf"\b{re.escape(tool)}\b", package.gives):
            return package.name
    raise LookupError(f"no package of the list gives {tool}")


def tool_row(feature: str, tool: str) -> Row:
    found = shutil.which(tool) is not None
    return Row(f"{feature}: {tool}", f"{tool} on PATH", found, "" if found else apt_line([package_for(tool)]))


def test_rows() -> list[Row]:
    rows = [tool_row("tests", tool) for tool in ("pandoc", "pdftotext")]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    fix = apt_line([p.name for p in debian_packages("tests") if p.name.startswith("chromium")])
    rows.append(Row("tests: chromium", "chromium on PATH (browser tests)", bool(chromium), "" if chromium else fix))
    return rows


def cache_row() -> Row:
    from .rendering.templates import cache_folder

    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            ok = True
    except OSError:
        ok = False
    fix = "" if ok else "set XDG_CACHE_HOME to a writable folder (templates are then compiled on every run)"
    return Row("cache: templates", f"a writable {folder}", ok, fix)
