"""Render options that change how numbers are shown."""

from __future__ import annotations

import pytest

from symcnn import cli


def thirds_scenario(tmp_path):
    path = tmp_path / "thirds.yaml"
    path.write_text(
        "name: thirds\nclasses: [a, b]\n"
        "inputs: [{name: x, label: a, pixels: [[1, 0, 0], [0, 1, 0], [0, 0, 0]]}]\n"
        "conv: {filters: [{name: F, weights: [[1]]}]}\n"
        "pool: {kind: avg, size: [1, 3]}\n"
        "dense: {weights: [[1, 0, 0], [0, 1, 0]], biases: [0, 0]}\n"
        "training: {learning_rate: 0.5}\n",
        encoding="utf-8",
    )
    return path


def test_fractions_flag_shows_exact_thirds(tmp_path, capsys):
    path = thirds_scenario(tmp_path)
    assert cli.main(["render", str(path), "--format", "markdown", "--out", str(tmp_path / "dec")]) == 0
    assert cli.main(["render", str(path), "--format", "markdown", "--out", str(tmp_path / "frac"), "--fractions"]) == 0
    decimals = (tmp_path / "dec" / "thirds.md").read_text(encoding="utf-8")
    fractions = (tmp_path / "frac" / "thirds.md").read_text(encoding="utf-8")
    # the pooled mean of (1, 0, 0) is exactly 1/3
    assert (
        r"m^{\text{F}}_{1,1} = \frac{1}{3} \cdot (a^{\text{F}}_{1,1} + a^{\text{F}}_{1,2} + a^{\text{F}}_{1,3})"
        in decimals
    )
    assert r"(1 + 0 + 0) \approx 0.333" in decimals
    assert r"(1 + 0 + 0) = \frac{1}{3}" in fractions


def test_examples_without_tex_write_the_rest_and_name_each_pdf(tmp_path, monkeypatch):
    from symcnn.errors import PartialFailure
    from symcnn.rendering import formats as rendering
    from symcnn.rendering import tex
    from symcnn.scenario import sources

    monkeypatch.setattr(tex, "have_tex", lambda: False)
    monkeypatch.setattr(rendering, "FORMATS", ("latex", "pdf"))  # every format, every built-in: test_fresh_machine.py
    monkeypatch.setattr(sources, "builtin_names", lambda: ["two-conv", "zebra-cat"])
    with pytest.raises(PartialFailure) as caught:  # the CLI prints one error line each: test_fresh_machine.py
        rendering.render_examples(tmp_path)
    failures = caught.value.failures
    assert [f.split(":")[0] for f in failures] == ["two-conv", "zebra-cat"]
    assert all("pdf: latexmk and pdflatex are needed" in f and "apt-get install" in f for f in failures)
    assert (tmp_path / "zebra-cat" / "zebra-cat.tex").is_file()
    assert not list(tmp_path.rglob("*.pdf"))


def test_python_api_renders(tmp_path):
    import symcnn

    written = symcnn.render("zebra-cat", "markdown", tmp_path, detail="full", iterations="last")
    assert written[0].name == "zebra-cat.md"
    pictures = written[1:]
    assert {p.parent.name for p in pictures} == {"zebra-cat-figures"} and all(p.suffix == ".svg" for p in pictures)
    text = written[0].read_text(encoding="utf-8")
    assert "## Pass 2, zebra" in text and "## Pass 1," not in text


def test_summary_elides_long_sums_and_full_shows_every_term(tmp_path):
    import re

    import symcnn

    data = big_scenario()
    summary = symcnn.render(data, "markdown", tmp_path / "s")[0]
    full = symcnn.render(data, "markdown", tmp_path / "f", detail="full", force=True)[0]
    logit = r"o_{\text{a}} = "
    short = next(line for line in summary.read_text(encoding="utf-8").splitlines() if line.startswith(logit))
    long = next(line for line in full.read_text(encoding="utf-8").splitlines() if line.startswith(logit))
    assert r"\cdots" in short and r"\cdots" not in long
    assert len(re.findall(r"f_\{\d+\}", long)) == 121  # every feature in full detail
    assert re.findall(r"f_\{(\d+)\}", short.split(" = ")[1]) == ["1", "2", "3", "4", "121"]


def big_scenario() -> dict:
    import numpy as np

    rng = np.random.default_rng(3)
    return {
        "name": "big",
        "classes": ["a", "b"],
        "inputs": [{"name": "x", "label": "a", "pixels": np.round(rng.uniform(0, 1, (12, 12)), 1).tolist()}],
        "conv": {"filters": [{"name": "F", "weights": [[1, 0], [0, -1]]}]},
        "dense": {"weights": np.round(rng.uniform(-0.1, 0.1, (2, 121)), 2).tolist(), "biases": [0, 0]},
        "training": {"learning_rate": 0.1},
    }


def test_summary_elides_large_matrices_and_full_shows_every_entry(tmp_path):
    import symcnn

    data = big_scenario()
    summary = symcnn.render(data, "markdown", tmp_path / "s")[0]
    full = symcnn.render(data, "markdown", tmp_path / "f", detail="full")[0]
    summary, full = summary.read_text(encoding="utf-8"), full.read_text(encoding="utf-8")
    assert "12×12, the middle elided" in summary and r"\ddots" in summary and r"\cdots" in summary
    assert "the middle elided" not in full and r"\ddots" not in full
    biggest = max(line.count("&") + 1 for line in summary.splitlines() if "bmatrix" in line)
    assert biggest <= 9 * 9  # never a 12x12 (or 1x121) table in summary


def test_huge_full_detail_asks_for_force(tmp_path, capsys, monkeypatch):
    from symcnn.rendering import formats as rendering

    monkeypatch.setattr(rendering, "MAX_FULL_PAGES", 50)  # four-images full is about 104 pages
    out = tmp_path / "out"
    assert cli.main(["render", "four-images", "--format", "markdown", "--detail", "full", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --detail full: about 104 pages") and "--force" in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())
    assert cli.main(["render", "four-images", "-f", "markdown", "--detail", "full", "-o", str(out), "--force"]) == 0
    assert (out / "four-images.md").is_file()
