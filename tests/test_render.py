"""Rendering without TeX: every format and detail level, the numbers shown, the options, escaping,
failure handling, and golden files.

Golden files: tests/golden/small/ holds the markdown, latex, beamer and snippets rendering of
tests/golden/small.yaml. After an intended change to the documents, regenerate them with

    SYMCNN_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py -k golden

then read the diff (git diff tests/golden) before committing it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
import yaml

import symcnn
from symcnn import escape
from symcnn.cli import main
from symcnn.errors import RenderError
from symcnn.rendering import formats as rendering
from symcnn.scenario.sources import read_source
from symcnn.verify import check

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("SYMCNN_UPDATE_GOLDEN") == "1"
BUILTINS = ("four-images", "zebra-cat")
TEXT_FORMATS = ("markdown", "latex", "beamer", "snippets")  # with golden files
PAGE_FORMATS = (*TEXT_FORMATS, "html")
DETAILS = ("full", "summary")
# values compared by `symcnn check`: the legacy keys plus the per-layer keys and dL/dx
CHECKED = {"four-images": 2160, "zebra-cat": 348}  # values compared by `symcnn check`
HAS_TEX = shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


# ----------------------------------------------------------------------------- helpers


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def files_under(folder: Path) -> set[str]:
    """Every file and folder below ``folder`` (hidden ones too), as relative posix paths."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def expected_files(name: str, fmt: str, snippet_files: set[str] = frozenset(), svgs: set[str] = frozenset()) -> set:
    if fmt == "markdown":  # and its pictures, one SVG file per panel
        return {f"{name}.md"} | ({f"{name}-figures"} | {f"{name}-figures/{f}" for f in svgs} if svgs else set())
    if fmt == "html":
        return {f"{name}.html"}
    if fmt == "latex":
        return {f"{name}.tex"}
    if fmt == "beamer":
        return {f"{name}-slides.tex"}
    return {"snippets"} | {f"snippets/{f}" for f in snippet_files}


def values_of(capsys, scenario: str) -> dict:
    code, out, err = cli(capsys, "values", scenario)
    assert code == 0, err
    return json.loads(out)


def render_md(capsys, tmp: Path, scenario: str, *options: str) -> str:
    name = Path(scenario).stem if scenario.endswith((".yaml", ".yml", ".json")) else scenario
    code, _, err = cli(capsys, "render", scenario, "--format", "markdown", "--out", str(tmp), *options)
    assert code == 0, err
    return (tmp / f"{name}.md").read_text(encoding="utf-8")


def sections(markdown: str) -> list[tuple[int, str, str]]:
    """(level, title, body) of every ## / ### heading of a rendered Markdown document."""
    parts = re.split(r"^(#{2,3}) (.*)$", markdown, flags=re.MULTILINE)
    return [(len(parts[i]), parts[i + 1], parts[i + 2]) for i in range(1, len(parts), 3)]


def section(markdown: str, title: str) -> str:
    found = [body for _, t, body in sections(markdown) if t == title]
    assert len(found) == 1, f"expected one section '{title}', found {len(found)}"
    return found[0]


def equations(body: str) -> list[str]:
    return re.findall(r"^\$\$\n(.*?)\n\$\$$", body, flags=re.MULTILINE | re.DOTALL)


def table_rows(body: str) -> list[list[str]]:
    """Cells of the rows of the first Markdown table in ``body`` (header and rule left out)."""
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split(" | ")] for row in rows[2:]]


NUMBER = r"-?\d+(?:\.\d+)?(?: \\times 10\^\{-?\d+\})?"


def parse_number(text: str) -> Decimal:
    text = text.strip().strip("$").strip()
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(?: \\times 10\^\{(-?\d+)\})?", text)
    assert m, f"not a number as symcnn prints them: {text!r}"
    return Decimal(m.group(1)) * (Decimal(10) ** int(m.group(2) or 0))


def assert_shown(text: str, value: float, precision: int, where: str, rel: str | None = None) -> None:
    """``text`` is ``value`` as symcnn shows it: exact, or rounded half-even to ``precision`` decimals."""
    text = text.strip().strip("$").strip()
    shown = parse_number(text)
    exact = abs(shown - Decimal(repr(value))) < Decimal("1e-9")
    if rel == "=":
        assert exact, f"{where}: '= {text}' claims an exact value, but the value is {value!r}"
    if exact:
        return
    assert rel != "=", where
    if "times" in text:  # scientific notation for tiny values: precision - 1 digits after the point
        mantissa = text.split(r" \times")[0]
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        tolerance = Decimal(10) ** (parse_number(text).adjusted() - digits) / 2
        assert abs(shown - Decimal(repr(value))) <= tolerance * Decimal("1.000001"), f"{where}: {text} vs {value!r}"
        return
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert decimals <= precision, f"{where}: {text} has more than {precision} decimals"
    expected = Decimal(repr(value)).quantize(Decimal(10) ** -precision, rounding=ROUND_HALF_EVEN)
    assert shown == expected, f"{where}: shows {text}, but {value!r} rounds to {expected}"


def final_value(eq: str) -> tuple[str, str]:
    """(relation, number) at the end of an equation line: '... = 0.7' or '... \\approx 0.786'."""
    m = re.search(rf"(=|\\approx) ({NUMBER})$", eq)
    assert m, f"no value at the end of {eq!r}"
    return m.group(1), m.group(2)


def class_of(eq: str) -> str:
    return re.match(r"^\w_\{\\text\{([^}]*)\}\}", eq).group(1)


def logit_terms(eq: str) -> tuple[list[tuple[str, str]], str]:
    """(weight, feature) pairs and the bias of a logit's substituted form 'w · f + w · f + b'."""
    substituted = eq.split(" = ")[-2] if "\\approx" not in eq else eq.split(" = ")[-1].split(" \\approx")[0]
    flat = substituted.replace(r"\left(", "").replace(r"\right)", "").replace(" - ", " + -")
    terms = flat.split(" + ")
    pairs = [tuple(t.split(r" \cdot ")) for t in terms[:-1]]
    assert all(len(p) == 2 for p in pairs), substituted
    return pairs, terms[-1]


def check_forward(
    eqs: dict[str, list[str]], step: dict, params: tuple, classes: list, label: str, precision: int, where: str
) -> None:
    """Logits (with the weights, features and bias put in), softmax and loss of one forward pass."""
    weights, biases = params
    assert [class_of(e) for e in eqs["logits"]] == classes, where
    shown_logits = []
    for c, eq in enumerate(eqs["logits"]):
        pairs, bias = logit_terms(eq)
        assert len(pairs) == len(step["features"]), where
        for f, (w_text, f_text) in enumerate(pairs):
            assert_shown(w_text, weights[c][f], precision, f"{where} W[{c}][{f}]")
            assert_shown(f_text, step["features"][f], precision, f"{where} f[{f}]")
        assert_shown(bias, biases[c], precision, f"{where} b[{c}]")
        rel, number = final_value(eq)
        assert_shown(number, step["logits"][c], precision, f"{where} logit {classes[c]}", rel)
        shown_logits.append(number)
    assert [class_of(e) for e in eqs["probs"]] == classes, where
    shown_probs = []
    for c, eq in enumerate(eqs["probs"]):
        put_in = re.findall(r"e\^\{(" + NUMBER + r")\}", eq)
        assert put_in == [shown_logits[c], *shown_logits], f"{where}: softmax of {classes[c]} puts in {put_in}"
        rel, number = final_value(eq)
        assert_shown(number, step["probs"][c], precision, f"{where} p {classes[c]}", rel)
        shown_probs.append(number)
    (loss,) = eqs["loss"]
    y = classes.index(label)
    assert rf"\log{{\left(p_{{\text{{{classes[y]}}}}} \right)}}" in loss, where
    assert re.findall(r"\\log\{\\left\((" + NUMBER + r") \\right\)\}", loss) == [shown_probs[y]], where
    rel, number = final_value(loss)
    assert_shown(number, step["loss"], precision, f"{where} loss", rel)


def check_markdown_numbers(markdown: str, values: dict, scenario: dict, precision: int) -> int:
    """Every logit, probability and loss of the Markdown (passes, summary table, final pass) agrees
    with `symcnn values`; returns how many passes were checked."""
    classes = values["classes"]
    steps, updates = values["steps"], values["updates"]
    assert scenario["training"].get("update", "per_sample") == "per_sample"
    initial = (scenario["dense"]["weights"], scenario["dense"]["biases"])
    params = [initial] + [(u["dense_weights"], u["dense_biases"]) for u in updates]  # params[k]: before step k
    parts = sections(markdown)
    passes = 0
    for i, (level, title, _) in enumerate(parts):
        m = re.fullmatch(r"Pass (\d+), (.*) \(label (.*)\)", title)
        if level != 2 or not m:
            continue
        k = next(k for k, s in enumerate(steps) if s["iteration"] == int(m.group(1)) and s["sample"] == m.group(2))
        subs = {}
        for level2, t, body in parts[i + 1 :]:
            if level2 == 2:
                break
            subs[t] = equations(body)
        eqs = {"logits": subs["Dense layer (logits)"], "probs": subs["Softmax"], "loss": subs["Cross-entropy loss"]}
        check_forward(eqs, steps[k], params[k], classes, steps[k]["label"], precision, title)
        passes += 1
    rows = table_rows(section(markdown, "Training summary"))
    expected = [(str(s["iteration"]), s) for s in steps] + [("final", s) for s in values["final"]]
    assert len(rows) == len(expected)
    for row, (first, s) in zip(rows, expected):
        assert row[0] == first and row[1] == s["sample"], row
        for c in range(len(classes)):
            assert_shown(row[3 + c], s["probs"][c], precision, f"summary {row[:2]} p {classes[c]}")
        assert_shown(row[3 + len(classes)], s["loss"], precision, f"summary {row[:2]} loss")
    final = section(markdown, "Final pass with the trained parameters")
    chunks = re.split(r"^(.*) \(label (.*)\): predicted (.*)\.$", final, flags=re.MULTILINE)[1:]
    assert len(chunks) == 4 * len(values["final"])
    C = len(classes)
    for j, s in enumerate(values["final"]):
        sample, label, predicted, body = chunks[4 * j : 4 * j + 4]
        assert sample == s["sample"]
        assert predicted == classes[max(range(C), key=lambda c: s["probs"][c])]
        eqs = equations(body)
        assert len(eqs) == 2 * C + 1
        check_forward(
            {"logits": eqs[:C], "probs": eqs[C : 2 * C], "loss": eqs[2 * C :]},
            s,
            params[-1],
            classes,
            label,
            precision,
            f"final {sample}",
        )
    return passes


# ----------------------------------------------------------------------------- every format


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("fmt", PAGE_FORMATS)
@pytest.mark.parametrize("name", BUILTINS)
def test_every_format_renders(capsys, tmp_path, name, fmt, detail):
    code, out, err = cli(capsys, "render", name, "--format", fmt, "--out", str(tmp_path), "--detail", detail)
    assert code == 0, err
    assert err == ""
    snippets = {p.name for p in (tmp_path / "snippets").glob("*")} if fmt == "snippets" else set()
    svgs = {p.name for p in (tmp_path / f"{name}-figures").glob("*.svg")}
    assert (len(svgs) > 10) == (fmt == "markdown")
    assert files_under(tmp_path) == expected_files(name, fmt, snippets, svgs)  # nothing else, no temp folders
    printed = {Path(line).relative_to(tmp_path).as_posix() for line in out.splitlines()}
    assert printed == {f for f in files_under(tmp_path) if (tmp_path / f).is_file()}
    for f in printed:
        text = (tmp_path / f).read_text(encoding="utf-8")
        assert text.endswith("\n") and "\\VAR{" not in text and "{{" not in text and "\\BLOCK{" not in text
    if fmt in ("latex", "beamer"):
        text = (tmp_path / next(iter(printed))).read_text(encoding="utf-8")
        assert text.count(r"\begin{document}") == 1 and text.rstrip().endswith(r"\end{document}")
    if fmt == "snippets":
        assert "index.tex" in snippets and len(snippets) > 5
        index = (tmp_path / "snippets" / "index.tex").read_text(encoding="utf-8")
        listed = re.findall(r"^% \\input\{([^}]+)\}", index, flags=re.MULTILINE)
        assert len(listed) == len(set(listed))
        assert set(listed) == snippets - {"index.tex"}, "index.tex must list every other snippet file"
        for f in snippets - {"index.tex"}:
            text = (tmp_path / "snippets" / f).read_text(encoding="utf-8")
            assert r"\documentclass" not in text and r"\begin{document}" not in text


def test_render_through_a_real_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "deep" / "out"  # --out is created with its parents
    for fmt, produced in (("html", "zebra-cat.html"), ("beamer", "zebra-cat-slides.tex")):
        result = subprocess.run(
            [sys.executable, "-m", "symcnn", "render", "zebra-cat", "--format", fmt, "--out", str(out)],
            capture_output=True,
            encoding="utf-8",
            cwd=tmp_path,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        assert result.stdout.strip() == str(out / produced)
    assert files_under(out) == {"zebra-cat.html", "zebra-cat-slides.tex"}


def test_detail_summary_expands_one_cell_per_matrix(capsys, tmp_path):
    full = render_md(capsys, tmp_path / "full", "four-images", "--detail", "full")
    summary = render_md(capsys, tmp_path / "summary", "four-images", "--detail", "summary")
    cell = re.compile(r"^z\^\{\\text\{A\}\}_\{\d,\d\} = ", flags=re.MULTILINE)
    assert len(cell.findall(full)) == 4 * 9  # four samples, 3x3 conv map of filter A
    assert len(cell.findall(summary)) == 4 * 1
    matrix = re.compile(r"^z\^\{\\text\{A\}\} = \\begin\{bmatrix\}", flags=re.MULTILINE)
    assert len(matrix.findall(full)) == len(matrix.findall(summary)) == 4


@pytest.mark.parametrize("scenario", [*BUILTINS, str(GOLDEN / "small.yaml")])
def test_slides_never_end_a_frame_with_a_caption(tmp_path, scenario):
    """Frame packing keeps "Image x2 (label bar):" on the frame of the matrix it introduces."""
    sc = symcnn.load(scenario)
    for detail in DETAILS:
        (path,) = rendering.render_to_dir(sc, "beamer", tmp_path / detail, detail=detail)
        text = path.read_text(encoding="utf-8")
        orphans = re.findall(r"^\\par\\noindent (.*):\\par\s*\\end\{frame\}", text, flags=re.MULTILINE)
        assert orphans == [], f"{path.name} ({detail}): captions left at the bottom of a frame: {orphans[:3]}"


def test_snippet_names_stay_distinct_when_names_slug_alike(tmp_path):
    data = read_source("zebra-cat")[0]
    data["inputs"][0]["name"], data["inputs"][1]["name"] = "Cat A", "cat-a"  # both slug to cat-a
    data.pop("claims")
    rendering.render_to_dir(symcnn.load(data), "snippets", tmp_path, detail="summary")
    files = {p.name for p in (tmp_path / "snippets").iterdir()}
    doc = rendering.document_for(symcnn.load(data), detail="summary")
    assert len(files) == 1 + sum(1 for s in doc.sections if s.blocks)  # one file per section, plus index
    index = (tmp_path / "snippets" / "index.tex").read_text(encoding="utf-8")
    assert set(re.findall(r"^% \\input\{([^}]+)\}", index, flags=re.MULTILINE)) == files - {"index.tex"}


# ----------------------------------------------------------------------------- the numbers shown


@pytest.mark.parametrize("detail", DETAILS)
@pytest.mark.parametrize("name", BUILTINS)
def test_markdown_numbers_agree_with_values(capsys, tmp_path, name, detail):
    markdown = render_md(capsys, tmp_path, name, "--detail", detail)
    values = values_of(capsys, name)
    passes = check_markdown_numbers(markdown, values, read_source(name)[0], 3)
    assert passes == len(values["steps"])


def test_article_numbers_are_shown(capsys, tmp_path):
    four = render_md(capsys, tmp_path / "a", "four-images")
    first_pass = next(i for i, (_, t, _) in enumerate(sections(four)) if t == "Pass 1, img1 (label cat)")
    softmax = [body for _, t, body in sections(four)[first_pass:] if t == "Softmax"][0]
    assert [final_value(e) for e in equations(softmax)] == [(r"\approx", "0.786"), (r"\approx", "0.214")]
    zebra = render_md(capsys, tmp_path / "b", "zebra-cat")
    final = section(zebra, "Final pass with the trained parameters")
    probs = [final_value(e)[1] for e in equations(final) if e.startswith("p_")]
    assert probs == ["0.781", "0.219", "0.546", "0.454"]  # the article: 78%/22% and 55%/45%
    rows = table_rows(section(zebra, "Training summary"))
    assert [r[3:5] for r in rows if r[0] == "final"] == [["$0.781$", "$0.219$"], ["$0.546$", "$0.454$"]]


def test_precision_changes_the_digits_shown(capsys, tmp_path):
    three = render_md(capsys, tmp_path / "p3", "four-images")
    five = render_md(capsys, tmp_path / "p5", "four-images", "--precision", "5")
    values = values_of(capsys, "four-images")
    assert check_markdown_numbers(five, values, read_source("four-images")[0], 5) == 4
    p = Decimal(repr(values["steps"][0]["probs"][0]))
    assert str(p.quantize(Decimal("1e-5"))) == "0.78583"
    assert r"\approx 0.78583" in five and r"\approx 0.78583" not in three
    assert r"\approx 0.786" in three and r"\approx 0.786" not in five
    assert "rounded to 5 decimals" in five and "rounded to 3 decimals" in three
    assert r"\approx 0.2143" not in three  # and precision 3 never shows more


@pytest.mark.parametrize("which, shown", [("all", {1, 2}), ("first", {1}), ("last", {2})])
def test_iterations_restrict_the_passes_shown(capsys, tmp_path, which, shown):
    markdown = render_md(capsys, tmp_path, "zebra-cat", "--iterations", which)
    passes = [t for level, t, _ in sections(markdown) if level == 2 and t.startswith("Pass ")]
    assert passes == [f"Pass {i}, {s} (label {s})" for i in sorted(shown) for s in ("zebra", "cat")]
    updates = [t for _, t, _ in sections(markdown) if t.startswith("Update after")]
    assert len(updates) == 2 * len(shown)
    values = values_of(capsys, "zebra-cat")
    assert check_markdown_numbers(markdown, values, read_source("zebra-cat")[0], 3) == 2 * len(shown)
    for title in ("Training summary", "Final pass with the trained parameters", "Verification"):
        section(markdown, title)  # always there, whatever passes are shown


def test_iterations_first_and_last_agree_with_one_pass(capsys, tmp_path):
    docs = {w: render_md(capsys, tmp_path / w, "four-images", "--iterations", w) for w in ("all", "first", "last")}
    assert docs["all"] == docs["first"] == docs["last"]


@pytest.mark.parametrize("name", BUILTINS)
def test_audit_shows_every_claim_held(capsys, tmp_path, name):
    markdown = render_md(capsys, tmp_path, name)
    rows = table_rows(section(markdown, "Audit of the stated numbers"))
    claims = read_source(name)[0]["claims"]
    assert len(rows) == len(claims)
    assert [r[3] for r in rows] == ["✓"] * len(claims)
    assert "✗" not in markdown
    assert [r[0] for r in rows] == [escape.markdown(c.get("note", c["at"])) for c in claims]


@pytest.mark.parametrize("name", BUILTINS)
def test_verification_line_names_the_values_checked(capsys, tmp_path, name):
    assert check(symcnn.load(name)).compared == CHECKED[name]
    markdown = render_md(capsys, tmp_path, name)
    body = section(markdown, "Verification")
    assert re.search(rf"^{CHECKED[name]} values were derived twice, exactly with SymPy", body, re.MULTILINE), body
    assert f"checked against NumPy ({CHECKED[name]} values)" in markdown
    code, _, err = cli(capsys, "render", name, "--format", "latex", "--out", str(tmp_path))
    assert code == 0, err
    assert f"{CHECKED[name]} values were derived twice" in (tmp_path / f"{name}.tex").read_text(encoding="utf-8")


def test_displayed_derivatives_print_negative_powers_as_powers(capsys, tmp_path):
    """d L / d o as SymPy gives it contains (e^a + e^b)^(-2); printed as '(...) · (-2)' it is wrong maths."""
    markdown = render_md(capsys, tmp_path, "zebra-cat")
    derivatives = [
        e for e in equations(markdown) if e.startswith(r"\frac{\partial L}{\partial o_") and e.count(" = ") == 3
    ]
    assert derivatives
    for eq in derivatives:
        assert not re.search(r"\\right\) \\cdot \\left\(-\d+\\right\)", eq), eq


# ----------------------------------------------------------------------------- golden files


def _normalise(text: str) -> str:
    """The NumPy-vs-SymPy gap ("agree to 2e-16 at most") is floating-point noise that may differ
    between machines; it is the one thing golden and freshness tests do not pin."""
    return re.sub(r"agree to \S+ at most", "agree to <max diff> at most", text)


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_golden(tmp_path, fmt):
    rendering.render_to_dir(symcnn.load(GOLDEN / "small.yaml"), fmt, tmp_path, detail="full")
    golden = GOLDEN / "small"
    produced = {f for f in files_under(tmp_path) if (tmp_path / f).is_file()}
    owned = {f for f in expected_files("small", fmt, {"*"}) if f != "snippets"}

    def ours(f: str) -> bool:  # the golden files of this format
        if fmt == "markdown" and f.startswith("small-figures/"):
            return True
        return f.startswith("snippets/") if fmt == "snippets" else f in owned

    if UPDATE_GOLDEN:
        for f in [f for f in files_under(golden) if ours(f) and (golden / f).is_file()] if golden.exists() else []:
            (golden / f).unlink()
        for f in produced:
            (golden / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / f, golden / f)
    stored = {f for f in files_under(golden) if ours(f) and (golden / f).is_file()} if golden.exists() else set()
    assert produced == stored, (
        f"files differ from tests/golden/small/: new {sorted(produced - stored)}, missing {sorted(stored - produced)}; "
        "rerun with SYMCNN_UPDATE_GOLDEN=1 if the change is intended"
    )
    for f in sorted(produced):
        new = _normalise((tmp_path / f).read_text(encoding="utf-8"))
        old = _normalise((golden / f).read_text(encoding="utf-8"))
        if new != old:
            diff = "".join(
                list(
                    difflib.unified_diff(
                        old.splitlines(True), new.splitlines(True), f"golden/small/{f}", f"rendered/{f}"
                    )
                )[:60]
            )
            pytest.fail(f"{f} differs from the golden file (rerun with SYMCNN_UPDATE_GOLDEN=1 if intended):\n{diff}")


def test_golden_scenario_is_what_the_brief_says():
    sc = symcnn.load(GOLDEN / "small.yaml")
    assert sc.channels == 1 and sc.input_shape == (3, 3) and sc.kernel_shape == (2, 2)
    assert len(sc.conv.filters) == 2 and sc.pool.kind == "max" and len(sc.classes) == 2 and len(sc.inputs) == 2
    assert sc.training.update_filters


# ----------------------------------------------------------------------------- hostile text


HOSTILE = GOLDEN / "hostile.yaml"
ESCAPES = {"textbackslash", "textasciicircum", "textasciitilde", "textless", "textgreater", "textbar", "textquotedbl"}


def hostile_strings() -> list[str]:
    data = yaml.safe_load(HOSTILE.read_text(encoding="utf-8"))
    texts = [data["title"], data["description"], *data["notes"], *data["classes"]]
    texts += [x["name"] for x in data["inputs"]] + [f["name"] for f in data["conv"]["filters"]]
    return texts + [c["note"] for c in data["claims"]]


def tame(data: dict) -> dict:
    """The same scenario with plain names (each name's slug, so snippet files are named alike):
    the commands it renders are the templates' own."""
    data = json.loads(json.dumps(data))
    data.update(
        title="Tame",
        description="Tame.",
        notes=["Tame."] * len(data["notes"]),
        classes=[escape.slug(c) for c in data["classes"]],
    )
    for x in data["inputs"]:
        x.update(name=escape.slug(x["name"]), label=escape.slug(x["label"]))
    for f in data["conv"]["filters"]:
        f["name"] = escape.slug(f["name"])
    data["claims"][0]["note"] = "tame"
    return data


def tex_commands(text: str) -> set[str]:
    """Control words and symbols of a TeX source, comments skipped; checks braces balance."""
    commands, depth, i = set(), 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            m = re.match(r"\\([A-Za-z@]+|.)", text[i:], flags=re.DOTALL)
            commands.add(m.group(1))
            i += len(m.group(0))
            continue
        if ch == "%":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            assert depth >= 0, f"unbalanced '}}' at {text[max(0, i - 60) : i + 1]!r}"
        i += 1
    assert depth == 0, "unbalanced braces"
    return commands


@pytest.fixture(scope="module")
def hostile_outputs(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Hostile and tame renderings of every text format: {'hostile'|'tame': {relative path: text}}."""
    base = tmp_path_factory.mktemp("hostile")
    data = yaml.safe_load(HOSTILE.read_text(encoding="utf-8"))
    out = {}
    for kind, scenario in (("hostile", data), ("tame", tame(data))):
        folder = base / kind
        for fmt in PAGE_FORMATS:
            rendering.render_to_dir(symcnn.load(scenario), fmt, folder, detail="full")
        out[kind] = {f: (folder / f).read_text(encoding="utf-8") for f in files_under(folder) if (folder / f).is_file()}
    return out


def test_hostile_names_render_in_every_format(hostile_outputs):
    assert set(hostile_outputs["hostile"]) == set(hostile_outputs["tame"])
    assert {"hostile.md", "hostile.tex", "hostile-slides.tex", "snippets/index.tex"} <= set(hostile_outputs["hostile"])


def test_hostile_names_form_no_latex_commands(hostile_outputs):
    for f, text in hostile_outputs["hostile"].items():
        if not f.endswith(".tex"):
            continue
        assert r"\input{/etc" not in text and r"\input{" not in text.replace(r"% \input{", ""), f
        assert r"\write18" not in text and r"\immediate" not in text and "^^5c" not in text, f
        assert r"\end{document}" not in text.replace("\n\\end{document}", ""), f
        for m in re.finditer(r"input\\?\{/etc/passwd|write18\\?\{", text):
            before = text[: m.start()]
            assert before.endswith((r"\textbackslash{}", r"\textasciicircum{}\textasciicircum{}5c")), (
                f"{f}: {text[m.start() - 40 : m.end()]!r}"
            )
        # every control sequence in the file is one the templates and the printer use anyway,
        # or one of escape.latex's replacements; and user braces are all escaped (balance holds)
        extra = tex_commands(text) - tex_commands(hostile_outputs["tame"][f]) - ESCAPES
        assert extra <= set("{}$&#%_ ,:;!"), f"{f}: user text formed {sorted(extra)}"
    index = hostile_outputs["hostile"]["snippets/index.tex"]
    assert all(line.startswith("%") for line in index.splitlines() if line.strip()), "index.tex is all comments"


def test_hostile_names_keep_every_string_visible(hostile_outputs):
    """The user's text is escaped, not dropped: each string shows up (escaped) in the Markdown."""
    markdown = hostile_outputs["hostile"]["hostile.md"]
    for text in hostile_strings():
        assert escape.markdown(text) in markdown or escape.latex(text) in markdown, text


def test_hostile_names_make_no_html_in_markdown(hostile_outputs):
    markdown = hostile_outputs["hostile"]["hostile.md"]
    assert "<script" not in markdown.lower() and "</script" not in markdown.lower()
    prose = re.sub(r"\$\$\n.*?\n\$\$", "", markdown, flags=re.DOTALL)  # display maths may hold "z > 0"
    assert "<" not in prose and ">" not in prose  # the templates write no HTML; user text is &lt;-escaped
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


# ----------------------------------------------------------------------------- failures


BROKEN = "\\documentclass{article}\n\\begin{document}\nHello.\n\\undefinedcommand\n\\end{document}\n"


@pytest.mark.skipif(not HAS_TEX, reason="needs latexmk and pdflatex (Debian: texlive-latex-extra latexmk)")
@pytest.mark.parametrize("broken", ["latex", "beamer"])
def test_failed_compile_reports_the_first_error_and_leaves_nothing(monkeypatch, capsys, tmp_path, broken):
    real = rendering.render_text

    def render_text(doc, fmt, envs=None):
        files = real(doc, fmt, envs)
        if fmt == broken:
            files = {name: BROKEN for name in files}
        return files

    monkeypatch.setattr(rendering, "render_text", render_text)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("the user's own file\n")
    file = "zebra-cat.tex" if broken == "latex" else "zebra-cat-slides.tex"
    with pytest.raises(RenderError) as info:
        rendering.render_to_dir(symcnn.load("zebra-cat"), "pdf", out)
    message = str(info.value)
    assert message.startswith(f"pdf: {file}: ") and "Undefined control sequence" in message and "line 4" in message
    assert files_under(out) == {"keep.txt"}  # not the PDF that did compile, no temp folder, no .log

    code, stdout, err = cli(capsys, "render", "zebra-cat", "--format", "pdf", "--out", str(out))
    assert code == 1 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Undefined control sequence" in err and "line 4" in err
    assert "Traceback" not in err
    assert files_under(out) == {"keep.txt"}


def test_render_error_for_unknown_format_writes_nothing(tmp_path):
    with pytest.raises(RenderError):
        rendering.render_to_dir(symcnn.load("zebra-cat"), "docx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _bad_label(tmp: Path) -> str:
    data = read_source("zebra-cat")[0]
    data["inputs"][1]["label"] = "dog"
    path = tmp / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def _bad_shape(tmp: Path) -> str:
    data = read_source("four-images")[0]
    data["inputs"][1]["pixels"][2] = [1, 1, 1]
    path = tmp / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("fmt", [*PAGE_FORMATS, "pdf"])
@pytest.mark.parametrize(
    "make, where",
    [
        (_bad_label, "inputs[1].label"),
        (_bad_shape, "inputs[1].pixels"),
        (lambda tmp: str(tmp / "missing.yaml"), ""),
    ],
)
def test_invalid_scenario_exits_2_and_writes_nothing(capsys, tmp_path, make, where, fmt):
    scenario = make(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "render", scenario, "--format", fmt, "--out", str(out))
    assert code == 2
    assert stdout == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and where in err, err
    assert not out.exists()
