"""Compiling what symcnn renders: both built-ins as article and Beamer slides at both detail levels,
the hostile-names scenario, the snippets as index.tex tells a user to use them, random scenarios;
and the Markdown through pandoc. Needs TeX Live with latexmk (skipped otherwise)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import symcnn
from symcnn.cli import main
from symcnn.rendering import formats as rendering
from symcnn.verify import check

if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
    pytest.skip("needs latexmk and pdflatex (Debian: texlive-latex-extra latexmk)", allow_module_level=True)

GOLDEN = Path(__file__).resolve().parent / "golden"
BUILTINS = ("four-images", "zebra-cat")
DETAILS = ("full", "summary")
MAX_OVERFULL_PT = 10.0
OVERFULL = re.compile(r"^Overfull \\([hv])box \((\d+(?:\.\d+)?)pt too (?:wide|high)\) (.*)$", re.MULTILINE)
LINES = re.compile(r"lines (\d+)--(\d+)|at line (\d+)")
needs = {
    tool: pytest.mark.skipif(shutil.which(tool) is None, reason=f"needs {tool} (poppler-utils / pandoc)")
    for tool in ("pdftotext", "pdfinfo", "pandoc")
}


# ----------------------------------------------------------------------------- helpers


def latexmk(tex: Path) -> subprocess.CompletedProcess:
    """Compile as symcnn does: no shell escape, reads and writes confined to the folder."""
    env = {**os.environ, "openin_any": "p", "openout_any": "p", "shell_escape": "f"}
    return subprocess.run(
        ["latexmk", "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex.name],
        cwd=tex.parent,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("!")]


def overfull(log: str, tex: str, kind: str = "h", limit: float = 0.0) -> list[str]:
    """'12.3pt: <where> | <source line>' for each Overfull \\hbox (or \\vbox) above ``limit``."""
    source = tex.splitlines()
    found = []
    for box, points, where in OVERFULL.findall(log):
        if box != kind or float(points) <= limit:
            continue
        m = LINES.search(where)
        line = int(m.group(1) or m.group(3)) if m else 0
        found.append(f"{points}pt {where} | {source[line - 1][:160] if 0 < line <= len(source) else ''}")
    return found


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def builtins_pdf(tmp_path_factory):
    """`symcnn render NAME --format pdf --detail D` for both built-ins and details. compile_pdf is wrapped
    to keep a copy of each .tex and .log before the temporary folder goes away."""
    base = tmp_path_factory.mktemp("pdf")
    kept = base / "kept"
    real = rendering.compile_pdf

    def compile_pdf(tex_files, workdir):
        pdfs = real(tex_files, workdir)
        for tex in tex_files:
            target = kept / current
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tex, target / tex.name)
            shutil.copyfile(workdir / tex.with_suffix(".log").name, target / tex.with_suffix(".log").name)
        return pdfs

    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rendering, "compile_pdf", compile_pdf)
        for name in BUILTINS:
            for detail in DETAILS:
                current = f"{name}-{detail}"
                out = base / current
                code = main(["render", name, "--format", "pdf", "--out", str(out), "--detail", detail])
                results[name, detail] = (code, out, kept / current)
    return results


CASES = [(n, d) for n in BUILTINS for d in DETAILS]
IDS = [f"{n}-{d}" for n, d in CASES]


# ----------------------------------------------------------------------------- the built-ins


@pytest.mark.parametrize("name, detail", CASES, ids=IDS)
def test_pdf_format_writes_article_and_slides(builtins_pdf, name, detail):
    code, out, kept = builtins_pdf[name, detail]
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{name}.pdf", f"{name}-slides.pdf"])
    for pdf in out.iterdir():
        assert pdf.read_bytes()[:5] == b"%PDF-"


@needs["pdfinfo"]
@pytest.mark.parametrize("name, detail", CASES, ids=IDS)
def test_slides_have_one_page_per_frame(builtins_pdf, name, detail):
    _, out, kept = builtins_pdf[name, detail]
    frames = (kept / f"{name}-slides.tex").read_text(encoding="utf-8").count(r"\begin{frame}")
    assert pages(out / f"{name}-slides.pdf") == frames  # no frame spilled onto a continuation page
    assert pages(out / f"{name}.pdf") >= 2


@pytest.mark.parametrize("doc", ["article", "slides"])
@pytest.mark.parametrize("name, detail", CASES, ids=IDS)
def test_logs_have_no_errors_and_no_overfull_boxes(builtins_pdf, name, detail, doc):
    _, _, kept = builtins_pdf[name, detail]
    stem = name if doc == "article" else f"{name}-slides"
    log = (kept / f"{stem}.log").read_text(encoding="utf-8", errors="replace")
    tex = (kept / f"{stem}.tex").read_text(encoding="utf-8")
    assert errors(log) == []
    wide = overfull(log, tex, "h", MAX_OVERFULL_PT)
    assert wide == [], f"{stem}.tex ({detail}): Overfull \\hbox wider than {MAX_OVERFULL_PT}pt:\n" + "\n".join(wide)
    if doc == "slides":
        tall = overfull(log, tex, "v")
        assert tall == [], f"{stem}.tex ({detail}): Overfull \\vbox (a frame too full):\n" + "\n".join(tall)
    assert "Missing character" not in log


# ----------------------------------------------------------------------------- hostile text


@needs["pdftotext"]
def test_hostile_names_compile_and_read_no_files(tmp_path):
    pwned = Path("/tmp/pwned")
    assert not pwned.exists(), "remove /tmp/pwned left over from elsewhere, then rerun"
    out = tmp_path / "out"
    code = main(["render", str(GOLDEN / "hostile.yaml"), "--format", "pdf", "--out", str(out), "--detail", "full"])
    assert code == 0
    assert not pwned.exists(), "\\write18 ran: shell escape is on"
    passwd = [line for line in Path("/etc/passwd").read_text().splitlines() if line.strip()]
    assert passwd and passwd[0].startswith("root:")
    for pdf in ("hostile.pdf", "hostile-slides.pdf"):
        text = subprocess.run(["pdftotext", str(out / pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert r"\input{/etc/passwd}" in text and r"\write18{touch /tmp/pwned}" in text  # shown, as text
        assert "alert(1)" in text
        leaked = [line for line in passwd if line in text]
        assert leaked == [], f"{pdf} contains lines of /etc/passwd"
        assert "root:x:0:0" not in text


# ----------------------------------------------------------------------------- snippets


def snippet_document(folder: Path) -> Path:
    """A document built the way snippets/index.tex tells a user: its preamble lines, then \\input."""
    index = (folder / "index.tex").read_text(encoding="utf-8")
    preamble = [
        line[2:]
        for line in index.splitlines()
        if re.match(
            r"^% \\(usepackage|setcounter|setlength|"
            r"providecommand|newcommand|newenvironment|"
            r"DeclareUnicodeCharacter)",
            line,
        )
    ]
    inputs = re.findall(r"^% (\\input\{[^}]+\})", index, re.MULTILINE)
    doc = folder / "all.tex"
    doc.write_text(
        "\n".join(
            [
                r"\documentclass[11pt]{article}",
                r"\usepackage[T1]{fontenc}",
                r"\usepackage[utf8]{inputenc}",
                r"\usepackage{lmodern}",
                *preamble,
                r"\begin{document}",
                *inputs,
                r"\end{document}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return doc


@pytest.mark.parametrize("scenario", ["zebra-cat", str(GOLDEN / "small.yaml")], ids=["zebra-cat", "small"])
def test_snippets_compile_with_the_preamble_index_tex_gives(tmp_path, scenario):
    rendering.render_to_dir(symcnn.load(scenario), "snippets", tmp_path, detail="full")
    doc = snippet_document(tmp_path / "snippets")
    result = latexmk(doc)
    log = doc.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
    assert result.returncode == 0, f"snippets do not compile with index.tex's preamble: {errors(log)[:3]}"
    assert errors(log) == []


# ----------------------------------------------------------------------------- Markdown through pandoc


def pandoc(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["pandoc", "--mathml", "-f", "markdown", "-t", "html", str(path)], capture_output=True, text=True, timeout=300
    )


@needs["pandoc"]
@pytest.mark.parametrize("scenario", [*BUILTINS, str(GOLDEN / "hostile.yaml")], ids=[*BUILTINS, "hostile"])
def test_markdown_converts_with_pandoc(tmp_path, scenario):
    sc = symcnn.load(scenario)
    path = rendering.render_to_dir(sc, "markdown", tmp_path, detail="full")[0]
    result = pandoc(path)
    assert result.returncode == 0, result.stderr
    html = result.stdout
    assert "<math" in html and "<table" in html  # maths became MathML; the training summary is a table
    assert "<script" not in html.lower()
    if sc.name == "hostile":
        assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<sup>" not in html and "<sub>" not in html and "<del>" not in html  # ^ and ~ stay literal
    else:
        assert result.stderr == "", f"pandoc warned:\n{result.stderr[:2000]}"


@needs["pandoc"]
def test_hostile_markdown_maths_converts_without_warnings(tmp_path):
    path = rendering.render_to_dir(symcnn.load(GOLDEN / "hostile.yaml"), "markdown", tmp_path, detail="summary")[0]
    result = pandoc(path)
    assert result.stderr == "", result.stderr[:2000]


# ----------------------------------------------------------------------------- random scenarios


ACTIVATIONS = ["relu", "none", "sigmoid", "tanh", {"kind": "leaky_relu", "slope": 0.1}]
UPDATES = ["per_sample", "batch_mean", "batch_sum"]


def random_scenario(seed: int) -> dict:
    """A valid scenario (per the contract) of modest size. The seed cycles the kinds (activation, update,
    pooling, channels 1-3, classes 2-4, stride, padding) so a few seeds cover them; numbers are drawn
    with a seeded RNG. Draws that sit on a kink (a conv value exactly 0 under ReLU, a max-pool tie),
    where exact SymPy and floating-point NumPy may rightly take different branches, are redrawn."""
    for attempt in range(20):
        data = _draw(seed, np.random.default_rng([seed, attempt]))
        if not check(symcnn.load(data)).mismatches:
            return data
    raise AssertionError(f"seed {seed}: no draw off the kinks in 20 attempts")


def _draw(seed: int, rng: np.random.Generator) -> dict:

    def numbers(*shape, scale=1.0, digits=1):
        return np.round(rng.uniform(-scale, scale, size=shape), digits).tolist()

    channels, n_classes = 1 + seed % 3, 2 + seed % 3
    stride, padding = 1 + seed % 2, (seed // 2) % 2
    h, w = int(rng.integers(3, 6)), int(rng.integers(3, 6))
    kh = int(rng.integers(2, min(3, h + 2 * padding) + 1))
    kw = int(rng.integers(1, min(3, w + 2 * padding) + 1))
    oh, ow = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    options = ["none", {"kind": "max", "size": "global"}, {"kind": "avg", "size": "global"}]
    if oh >= 2 and ow >= 2:
        options += [{"kind": "max", "size": 2}, {"kind": "avg", "size": 2, "stride": 1}]
    pool = options[seed % len(options)]
    if pool == "none":
        ph, pw = oh, ow
    elif pool["size"] == "global":
        ph = pw = 1
    else:
        s = pool.get("stride", 2)
        ph, pw = (oh - 2) // s + 1, (ow - 2) // s + 1
    n_filters = 1 + seed % 2
    classes = ["cat", "dog", "bird", "fish"][:n_classes]
    features = n_filters * ph * pw

    def pixels():
        image = np.round(rng.uniform(0, 1, size=(channels, h, w)), 1)
        return image[0].tolist() if channels == 1 else image.tolist()

    def kernel():
        k = numbers(channels, kh, kw)
        return k[0] if channels == 1 else k

    return {
        "name": f"random-{seed}",
        "title": f"Random scenario {seed}",
        "classes": classes,
        "inputs": [
            {"name": f"img{i + 1}", "label": classes[i % n_classes], "pixels": pixels()}
            for i in range(int(rng.integers(2, 4)))
        ],
        "conv": {
            "stride": stride,
            "padding": padding,
            "filters": [{"name": "AB"[k], "weights": kernel(), "bias": numbers(1)[0]} for k in range(n_filters)],
        },
        "activation": ACTIVATIONS[seed % len(ACTIVATIONS)],
        "pool": pool,
        "dense": {
            "weights": numbers(n_classes, features, scale=0.5, digits=2),
            "biases": numbers(n_classes, scale=0.2, digits=2),
        },
        "training": {
            "learning_rate": 0.5,
            "iterations": 1 + seed % 2,
            "update": UPDATES[seed % 3],
            "update_filters": seed % 2 == 0,
        },
    }


SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def random_compiled(tmp_path_factory) -> dict:
    """seed -> (scenario, rendered Markdown, .tex source, latexmk result, .log) for each random scenario."""
    results = {}
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"random-{seed}")
        data = random_scenario(seed)
        path = folder / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        detail = "full" if seed % 2 else "summary"
        codes = [
            main(["render", str(path), "--format", fmt, "--out", str(folder / "out"), "--detail", detail])
            for fmt in ("markdown", "latex")
        ]
        tex = folder / "out" / f"{data['name']}.tex"
        result = latexmk(tex) if codes == [0, 0] else None
        log = tex.with_suffix(".log").read_text(encoding="utf-8", errors="replace") if result else ""
        markdown = (folder / "out" / f"{data['name']}.md").read_text(encoding="utf-8") if codes[0] == 0 else ""
        results[seed] = (data, codes, markdown, tex.read_text(encoding="utf-8") if codes[1] == 0 else "", result, log)
    return results


@pytest.mark.parametrize("seed", SEEDS)
def test_random_scenarios_render_and_compile(random_compiled, seed):
    data, codes, markdown, tex, result, log = random_compiled[seed]
    assert codes == [0, 0], data
    passes = re.findall(r"^## Pass \d+, ", markdown, re.MULTILINE)
    assert "## Verification" in markdown and len(passes) == len(data["inputs"]) * data["training"]["iterations"]
    assert result.returncode == 0, f"{data}: {errors(log)[:3]}"
    assert errors(log) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_random_scenarios_fit_the_page(random_compiled, seed):
    data, _, _, tex, result, log = random_compiled[seed]
    assert result is not None and result.returncode == 0
    wide = overfull(log, tex, "h", MAX_OVERFULL_PT)
    assert wide == [], f"seed {seed}: Overfull \\hbox wider than {MAX_OVERFULL_PT}pt:\n" + "\n".join(wide)


# ----------------------------------------------------------------------------- pictures (TikZ)


def large_images() -> dict:
    """16x16 images (heatmaps without numbers), a 14x14 feature map, 7x7 pooled maps (with numbers)."""
    rng = np.random.default_rng(16)
    return {
        "name": "large",
        "title": "Two 16x16 images",
        "classes": ["three", "seven"],
        "inputs": [
            {
                "name": f"digit{i}",
                "label": ["three", "seven"][i],
                "pixels": np.round(rng.uniform(0, 1, (16, 16)), 1).tolist(),
            }
            for i in range(2)
        ],
        "conv": {
            "filters": [{"name": "edge", "weights": np.round(rng.uniform(-1, 1, (3, 3)), 1).tolist(), "bias": 0.1}]
        },
        "pool": {"kind": "max", "size": 2},
        "dense": {"weights": np.round(rng.uniform(-0.1, 0.1, (2, 49)), 2).tolist(), "biases": [0, 0]},
        "training": {"learning_rate": 0.1},
    }


def test_pictures_of_large_images_compile_and_fit(tmp_path):
    """Every figure is TikZ in the article and on the slides; large ones still fit the page and the frame."""
    rendering.render_to_dir(symcnn.load(large_images()), "latex", tmp_path)
    rendering.render_to_dir(symcnn.load(large_images()), "beamer", tmp_path)
    for stem in ("large", "large-slides"):
        tex = tmp_path / f"{stem}.tex"
        source = tex.read_text(encoding="utf-8")
        assert source.count(r"\begin{tikzpicture}") >= 10
        result = latexmk(tex)
        log = tex.with_suffix(".log").read_text(encoding="utf-8", errors="replace")
        assert result.returncode == 0 and errors(log) == [], errors(log)[:3]
        wide = overfull(log, source, "h", MAX_OVERFULL_PT)
        assert wide == [], f"{stem}: Overfull \\hbox:\n" + "\n".join(wide)
        if stem.endswith("slides"):
            assert overfull(log, source, "v") == [], "a frame too full"
            assert pages(tex.with_suffix(".pdf")) == source.count(r"\begin{frame}")
