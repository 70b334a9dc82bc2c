"""A fresh machine (issue 11): `symcnn doctor`, partial failure keeps what succeeded, LaTeX errors shown
whole, run-size guards, Ctrl-C. The commands run as subprocesses, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from symcnn.doctor import diagnose, pdf_rows, probe_documents
from symcnn.engine.numeric import run
from symcnn.engine.size import MAX_STEPS, count, estimate
from symcnn.rendering import templates
from symcnn.rendering.tex import compile_pdf, first_latex_error
from symcnn.scenario.sources import builtin_names, load, read_source
from symcnn.system import apt_line

ROOT = Path(__file__).resolve().parent.parent
HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="needs latexmk and pdflatex (`symcnn doctor` says how)")


def symcnn(*args, cwd: Path, path: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if path is not None:
        env["PATH"] = path
    command = [sys.executable, "-m", "symcnn", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def failing_latexmk(tmp_path) -> str:
    """PATH with a latexmk that exits 1 first."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "latexmk").write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    (folder / "latexmk").chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def folders(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_dir()]


# ------------------------------------------------------------------------------ partial failure
def test_render_writes_the_formats_that_work_and_one_error_line_per_failure(tmp_path, failing_latexmk):
    result = symcnn("render", "zebra-cat", "--format", "markdown,latex,html,pdf", "--out", "out", cwd=tmp_path,
                    path=failing_latexmk)  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pdf: zebra-cat.tex: latexmk exited with 1"), lines
    assert "symcnn doctor" in lines[0]
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir() if p.is_file()} == {"zebra-cat.md", "zebra-cat.tex", "zebra-cat.html"}
    assert sorted(result.stdout.split()) == sorted(str(Path("out") / p.relative_to(out)) for p in out.rglob("*")
                                                   if p.is_file())  # fmt: skip
    assert not [p for p in out.rglob("*") if p.name.startswith(".symcnn-") or p.suffix in (".log", ".aux")]


def test_nothing_written_leaves_no_folder(tmp_path, failing_latexmk):
    result = symcnn("render", "zebra-cat", "--format", "pdf", "--out", "a/b/c", cwd=tmp_path, path=failing_latexmk)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "a").exists()


def test_examples_write_every_text_format_when_pdfs_fail(tmp_path, failing_latexmk):
    """The issue's check: latexmk replaced by a script that exits 1."""
    result = symcnn("examples", "--out", "D", cwd=tmp_path, path=failing_latexmk)
    assert result.returncode == 1
    names = builtin_names()
    lines = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == names, lines
    assert all(line.startswith(f"error: {n}: pdf: {n}.tex: ") for line, n in zip(lines, names))
    for name in names:
        for suffix in (".md", ".tex", "-slides.tex", ".html"):
            assert (tmp_path / "D" / name / f"{name}{suffix}").is_file(), (name, suffix)
        assert (tmp_path / "D" / name / "snippets" / "index.tex").is_file()
    assert not list((tmp_path / "D").rglob("*.pdf"))
    assert not [p for p in folders(tmp_path / "D") if not any(p.iterdir())]  # no empty folder


def test_cli_error_lines_without_tex(tmp_path, monkeypatch, capsys):
    from symcnn import cli
    from symcnn.rendering import tex

    monkeypatch.setattr(tex, "have_tex", lambda: False)
    assert cli.main(["render", "zebra-cat", "--format", "pdf,markdown", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: pdf: latexmk and pdflatex are needed"), err
    assert "symcnn doctor" in err[0] and apt_line(feature="pdf") in err[0]


# ------------------------------------------------------------------------------ LaTeX errors
@needs_tex
def test_a_latex_error_is_shown_whole(tmp_path):
    """TeX wraps its log at 79 characters: `found` came out as `foun`."""
    font = "symcnnnosuchfontwithaverylongnamesothatthelinewraps"
    (tmp_path / "a.tex").write_text(
        f"\\documentclass{{article}}\n\\begin{{document}}\n\\font\\x={font} at 10.95pt \\x x\n\\end{{document}}\n",
        encoding="utf-8",
    )
    with pytest.raises(Exception) as caught:
        compile_pdf([tmp_path / "a.tex"], tmp_path)
    message = str(caught.value)
    assert f"Font \\x={font} at 10.95pt not loadable: Metric (TFM) file not found. at line 3" in message
    assert "symcnn doctor" in message


def test_a_log_wrapped_at_79_characters_is_joined(tmp_path):
    error = "! Font U/pzd/m/n/10.95=pzdr at 10.95pt not loadable: Metric (TFM) file not found."
    log = tmp_path / "x.log"
    log.write_text("\n".join(["(./x.tex", error[:79], error[79:], "l.63 \\ding{51}", ""]), encoding="utf-8")
    assert first_latex_error(log) == f"LaTeX error {error[2:]} at line 63"


# ------------------------------------------------------------------------------ doctor
@needs_tex
def test_doctor_passes_here(tmp_path):
    result = symcnn("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    for feature in ("python: packages", "pdf: pdflatex", "pdf: latexmk", "pdf: probe-article", "pdf: probe-beamer"):
        assert "✓" in rows[feature], rows
    assert result.stdout.rstrip().endswith("every document format can be produced")


def test_doctor_names_a_missing_latexmk_and_its_apt_line(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("pdflatex", "pandoc", "pdftotext", "chromium"):
        if shutil.which(tool):
            (bin_ / tool).symlink_to(shutil.which(tool))
    result = symcnn("doctor", cwd=tmp_path, path=str(bin_))
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("pdf: latexmk"))
    assert "✗" in row and row.endswith("apt-get install -y --no-install-recommends latexmk"), row
    assert result.stdout.rstrip().endswith("some document formats cannot be produced")


def test_the_probes_load_what_the_templates_load(tmp_path, monkeypatch):
    """Derived from the templates: a package added to the shared preamble is in both probes, and one
    that does not exist makes the probes fail with the list's apt line."""
    copy = tmp_path / "templates"
    shutil.copytree(templates.template_dir(), copy)
    preamble = copy / "latex" / "preamble.tex.j2"
    preamble.write_text(preamble.read_text(encoding="utf-8") + "\\usepackage{symcnnnosuchpackage}\n", encoding="utf-8")
    monkeypatch.setattr(templates, "template_dir", lambda: copy)
    probes = probe_documents()
    assert set(probes) == {"probe-article.tex", "probe-beamer.tex"}
    for text in probes.values():
        assert "\\usepackage{symcnnnosuchpackage}" in text and "✓" in text and "✗" in text
    assert "\\usepackage{pdfpages}" in probes["probe-article.tex"]  # from the class file of exercise sheets
    assert "{beamer}" in probes["probe-beamer.tex"]
    if HAVE_TEX:
        rows = {row.feature: row for row in pdf_rows()}
        probe = rows["pdf: probe-article"]
        assert not probe.ok and "symcnnnosuchpackage.sty' not found" in probe.detail
        assert probe.fix == apt_line(feature="pdf")


def test_doctor_report_is_ok_only_when_documents_can_be_made(monkeypatch):
    import symcnn.doctor as doctor

    monkeypatch.setattr(doctor, "pdf_rows", lambda: [doctor.Row("pdf: latexmk", "latexmk on PATH", False, "x")])
    assert not diagnose().ok
    monkeypatch.setattr(doctor, "pdf_rows", lambda: [])
    monkeypatch.setattr(doctor, "test_rows", lambda: [doctor.Row("tests: pandoc", "pandoc", False, "y")])
    assert diagnose().ok  # the test tools are not needed for documents


# ------------------------------------------------------------------------------ run size
def scenario_file(tmp_path: Path, name: str, iterations: int) -> Path:
    data = read_source(name)[0]
    data["training"]["iterations"] = iterations
    path = tmp_path / f"{name}-{iterations}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["values", "check", "render", "exercise"])
def test_a_billion_iterations_are_refused_at_once(tmp_path, command):
    path = scenario_file(tmp_path, "four-images", 10**9)
    extra = {"render": ["--format", "markdown", "--out", "o"], "exercise": ["--seed", "1", "--out", "o"]}
    result = symcnn(command, path, *extra.get(command, []), cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: training.iterations: a run of 4,000,000,000 steps, ")
    assert "--force" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["four-images", "zebra-cat", "two-conv"])
def test_the_estimate_counts_what_the_run_computes(name):
    sc = load(read_source(name)[0] | {"training": read_source(name)[0]["training"] | {"iterations": 3}})
    size = estimate(sc)
    trace = run(sc).to_dict()  # the oracle: the run itself
    assert size.values == count(trace) and size.steps == len(trace["steps"])


def test_force_runs_past_the_limit(tmp_path):
    sc = load("zebra-cat")
    iterations = MAX_STEPS // len(sc.inputs) + 1
    path = scenario_file(tmp_path, "zebra-cat", iterations)
    assert symcnn("values", path, cwd=tmp_path).returncode == 2
    result = symcnn("values", path, "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["steps"]) == iterations * len(sc.inputs)


# ------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize(
    "args",
    [
        ["render", "lenet-like", "--format", "markdown,latex,html", "--out", "a/b"],
        ["exercise", "four-images", "--seed", "1", "--count", "200", "--jobs", "2", "--out", "a/b"],  # a minute
    ],
)
def test_ctrl_c_leaves_nothing_and_prints_one_line(tmp_path, args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "symcnn", *args]
    # the context manager closes the pipes and reaps the process even when an assertion fails
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            time.sleep(3)  # past start-up, inside the run
            assert process.poll() is None, "finished before the interrupt"
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130
    assert err == "error: interrupted\n" and out == ""
    assert not (tmp_path / "a").exists()
