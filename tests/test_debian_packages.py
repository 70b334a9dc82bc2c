"""The one list of Debian packages (.ci/debian-packages) is enough on any machine, not just this one:
every document kind is compiled with `latexmk -recorder`, every file TeX read (the .fls INPUT lines) is
mapped to its Debian package with `dpkg -S`, and each package must be in the list or in the list's
dependency closure (`apt-cache depends --recurse`, no recommends). A file that a package installed on
this machine by hand (texlive-fonts-recommended, say) would provide fails the test, whatever else
happens to be installed here. SYMCNN_DEBIAN_PACKAGES=<file> checks another list."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from symcnn.rendering.tex import latex_env, latexmk_command
from symcnn.system import LIST_ENV, apt_line, debian_packages

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("latexmk", "pdflatex", "dpkg", "apt-cache")),
    reason="needs latexmk, pdflatex and Debian's dpkg and apt-cache",
)
# written by TeX Live's own triggers when packages are installed (formats, file name databases), so
# owned by no package; everything else TeX reads must belong to one
GENERATED = ("/var/lib/texmf/", "/etc/texmf/", "/var/cache/")


def symcnn(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "symcnn", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def recorded_inputs(folder: Path) -> set[str]:
    """Compile every .tex under ``folder`` (class.tex last: it includes the sheets' PDFs) with -recorder;
    the absolute paths of the files TeX read outside ``folder``."""
    sources = sorted(folder.rglob("*.tex"), key=lambda p: (p.name == "class.tex", str(p)))
    inputs = set()
    for tex in sources:
        command = latexmk_command(tex.name)
        result = subprocess.run(
            [command[0], "-g", "-recorder", *command[1:]], cwd=tex.parent, env=latex_env(), capture_output=True
        )
        assert result.returncode == 0, f"{tex} did not compile: {result.stdout[-2000:]!r}"
        for line in tex.with_suffix(".fls").read_text(encoding="utf-8", errors="replace").splitlines():
            path = line[len("INPUT ") :] if line.startswith("INPUT ") else None
            if path and os.path.isabs(path) and not Path(path).resolve().is_relative_to(folder.resolve()):
                inputs.add(path)
    return inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> set[str]:
    """Files read by the article and slides (four-images: pictures, tables, a claims table with ✓), a
    set of exercise sheets (student, solution, key, the class file with pdfpages and hyperref) and
    `symcnn doctor`'s probe documents (✓, ✗ and every package the templates load)."""
    folder = tmp_path_factory.mktemp("documents")
    symcnn("render", "four-images", "--format", "latex,beamer", "--out", "article", cwd=folder)
    symcnn("exercise", "zebra-cat", "--seed", "1", "--format", "pdf", "--out", "sheets", "--jobs", "1", cwd=folder)
    probe_sources(folder / "probe")
    return recorded_inputs(folder)


def probe_sources(folder: Path) -> None:
    try:
        from symcnn.doctor import probe_documents
    except ImportError:  # `symcnn doctor` not there yet
        return
    folder.mkdir()
    for name, text in probe_documents().items():
        (folder / name).write_text(text, encoding="utf-8")


def owners(paths: set[str]) -> dict[str, set[str]]:
    """path -> the Debian packages that installed it (none for a file no package owns)."""
    found: dict[str, set[str]] = {p: set() for p in paths}
    queries: dict[str, set[str]] = {}
    for p in paths:  # a path reached through a symbolic link is owned under its real name
        for query in (p, os.path.realpath(p)):
            queries.setdefault(query, set()).add(p)
    result = subprocess.run(["dpkg", "-S", *queries], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    for line in result.stdout.splitlines():
        if line.startswith("diversion by"):
            continue
        names, _, path = line.partition(": ")
        for original in queries.get(path, ()):
            found[original] |= {n.strip().split(":")[0] for n in names.split(",")}
    return found


@cache
def closure(names: tuple[str, ...]) -> frozenset[str]:
    """The packages apt installs for ``names`` without recommends: they and their dependencies (every
    alternative of an `a | b` dependency counts, a slight overestimate)."""
    result = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
         "--no-replaces", "--no-enhances", *names],
        capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return frozenset(line.split(":")[0] for line in result.stdout.splitlines() if line and not line[0].isspace())


def uncovered(inputs: set[str]) -> list[str]:
    """One line per file TeX read that the list does not account for."""
    listed = tuple(p.name for p in debian_packages())
    allowed = closure(listed)
    problems = []
    for path, packages in sorted(owners(inputs).items()):
        if not packages:
            if not path.startswith(GENERATED) and not path.endswith((".fmt", "ls-R")):
                problems.append(f"{path}: installed by no Debian package (by hand?)")
        elif not packages & allowed:
            problems.append(f"{path}: from {', '.join(sorted(packages))}, not in the list nor its dependencies")
    return problems


def test_every_file_tex_reads_comes_from_the_list(inputs):
    assert len(inputs) > 100  # the class files, packages and fonts were recorded
    problems = uncovered(inputs)
    assert not problems, f"{len(problems)} files; add their package to {debian_packages.__module__}'s list:\n" + (
        "\n".join(problems[:40])
    )


def test_a_list_without_a_needed_package_fails(inputs, tmp_path, monkeypatch):
    """The check can fail: without texlive-latex-extra, tabulary.sty (and more) is unaccounted for."""
    reduced = tmp_path / "debian-packages"
    text = (ROOT / ".ci" / "debian-packages").read_text(encoding="utf-8")
    reduced.write_text(text.replace("texlive-latex-extra ", "# removed "), encoding="utf-8")
    monkeypatch.setenv(LIST_ENV, str(reduced))
    assert "texlive-latex-extra" not in {p.name for p in debian_packages()}
    problems = uncovered(inputs)
    assert any("tabulary.sty: from texlive-latex-extra" in p for p in problems), problems


def test_ci_and_readme_install_the_one_list():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = "sed 's/#.*//' .ci/debian-packages | xargs apt-get install -y"
    assert install in ci and "apt-get update" in ci
    first_command = readme.split("```bash\n", 1)[1].splitlines()[0]
    assert first_command.startswith("apt-get update && " + install), first_command
    assert "kpsewhich" not in ci  # no guessing from a few files
    assert not re.search(r"apt-get install[^\n`]*texlive", ci + readme)  # the names live in the list only
    packages = [p.name for p in debian_packages()]
    assert len(packages) == len(set(packages)) and {"latexmk", "texlive-pictures", "chromium"} <= set(packages)
    assert {p.feature for p in debian_packages()} == {"pdf", "tests"}
    assert apt_line(feature="pdf").split()[4:] == [p.name for p in debian_packages("pdf")]
