"""The HTML page: one self-contained file (inline CSS and SVG, MathML, no URL), user text escaped;
and in a real browser (headless Chromium through Playwright): no console error, no request but the
file, no alert, every formula and picture rendered, not blank, no sideways scrolling at phone width.

Chromium and Playwright are needed for the browser tests; they skip without them, except in CI
(SYMCNN_REQUIRE_BROWSER=1, set by .ci/run), where they fail instead."""

from __future__ import annotations

import os
import re
import shutil
import struct
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import symcnn
from symcnn.rendering import drawing
from symcnn.rendering.formats import document_for, render_to_dir

GOLDEN = Path(__file__).resolve().parent / "golden"
# every built-in but lenet-like: mnist-like is the large page and two-conv the stack; lenet-like's page (a
# minute of checking and rendering) is rendered and compared with output/ by tests/test_output_fresh.py
BUILTINS = tuple(name for name in symcnn.builtin_names() if name != "lenet-like")
CHROMIUM = os.environ.get("SYMCNN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = (390, 1280)  # a phone, a projector


def expected_counts(doc) -> tuple[int, int]:
    """(<math> elements, <svg> pictures) the page must show, counted from the document model."""
    maths = svgs = 0
    for section in doc.sections:
        for b in section.blocks:
            if b.kind in ("formula", "equation", "derivative", "matrix"):
                maths += 1
            elif b.kind == "table":
                maths += sum(c.math for c in b.header) + sum(c.math for row in b.rows for c in row)
            elif b.kind == "figure":
                svgs += len(b.panels)
    return maths, svgs


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[Path, tuple[int, int], float, object]]:
    """name -> (the .html file, expected (maths, svgs), seconds symcnn.render took, the document)."""
    base = tmp_path_factory.mktemp("html")
    out = {}
    for name in (*BUILTINS, str(GOLDEN / "hostile.yaml")):
        sc = symcnn.load(name)
        start = time.perf_counter()
        (path,) = symcnn.render(sc, "html", base / sc.name)
        seconds = time.perf_counter() - start
        doc = document_for(sc)
        out[sc.name] = (path, expected_counts(doc), seconds, doc)
    return out


# ----------------------------------------------------------------------------- the file itself


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def tags(path: Path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize("name", [*BUILTINS, "hostile"])
def test_page_is_self_contained(pages, name):
    path, (maths, svgs), _, doc = pages[name]
    html = path.read_text(encoding="utf-8")
    parsed = tags(path)
    names = [t for t, _ in parsed.tags]
    assert names.count("math") == maths and names.count("svg") == svgs
    assert names.count("style") == 1  # ours
    scripts = [attrs for tag, attrs in parsed.tags if tag == "script"]
    data = [{"type": "application/json", "id": "symcnn-data"}] if doc.panels else []
    assert scripts == [*data, {}]  # the panels' data (not run); our script
    assert "link" not in names and "img" not in names and "iframe" not in names
    for tag, attrs in parsed.tags:
        for key, value in attrs.items():
            assert key not in ("src", "href", "srcset", "action", "formaction"), (tag, key, value)
            assert not key.startswith("on"), (tag, key)  # no event handler attributes
    urls = set(re.findall(r"(?:https?|ftp)://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace, a name, never fetched
    assert "url(" not in html and "@import" not in html


@pytest.mark.parametrize("name", BUILTINS)
def test_page_sections_fold_per_sample(pages, name):
    path, _, _, doc = pages[name]
    parsed = tags(path)
    folds = [attrs for tag, attrs in parsed.tags if tag == "details"]
    assert len(folds) == sum(s.level == 1 for s in doc.sections)
    passes = [s for s in doc.sections if s.title.startswith("Pass ")]
    assert sum("open" not in attrs for attrs in folds) == len(passes) - 1  # the first pass open, later ones folded
    css = path.read_text(encoding="utf-8")
    assert "@media print" in css and "details::details-content" in css and "overflow-x: auto" in css


def test_hostile_names_are_escaped_in_html(pages):
    path, _, _, _ = pages["hostile"]
    html = path.read_text(encoding="utf-8")
    assert html.lower().count("<script") == 2 and html.lower().count("</script") == 2  # ours only: data, script
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parsed = tags(path)
    text = "".join(parsed.text)
    sc = symcnn.load(GOLDEN / "hostile.yaml")
    for s in (sc.title, sc.description, *sc.notes, sc.inputs[0].name, sc.conv.filters[0].name):
        assert s in text  # shown as text, every character


def test_svg_pictures_inline_are_the_markdown_files(tmp_path):
    doc = document_for(symcnn.load("zebra-cat"))
    files = drawing.svg_files(doc)
    render_to_dir(symcnn.load("zebra-cat"), "html", tmp_path)
    html = (tmp_path / "zebra-cat.html").read_text(encoding="utf-8")
    for text in files.values():
        assert text.split("\n", 1)[1].strip() in html  # the same picture, without the XML declaration


def test_render_time_is_reported(pages, record_property):
    for name, (_, counts, seconds, _) in pages.items():
        record_property(f"{name}-render-seconds", round(seconds, 3))
        record_property(f"{name}-maths-svgs", counts)
        assert seconds < 60


# ----------------------------------------------------------------------------- in a browser


def browser_or_skip():
    required = os.environ.get("SYMCNN_REQUIRE_BROWSER") == "1"
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright; never `playwright install`)"
    if missing is None and not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)"
    if missing:
        if required:
            pytest.fail(f"SYMCNN_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = browser_or_skip()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) as an H x W x C array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        up = out[y - 1] if y else np.zeros_like(line)
        if kind in (0, 2):
            out[y] = (line + (up if kind == 2 else 0)) % 256
            continue
        row = np.zeros_like(line)
        for x in range(len(line)):  # Sub, Average, Paeth depend on the pixel to the left
            left = row[x - channels] if x >= channels else 0
            upleft = up[x - channels] if x >= channels else 0
            if kind == 1:
                row[x] = (line[x] + left) % 256
            elif kind == 3:
                row[x] = (line[x] + (left + up[x]) // 2) % 256
            else:
                p = left + up[x] - upleft
                pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else up[x] if pb <= pc else upleft
                row[x] = (line[x] + pred) % 256
        out[y] = row
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


def test_png_decoder_reads_what_it_should():
    """A 2x2 RGB PNG written by hand (filter Sub on row 2) decodes to its pixels."""
    rows = b"\x00" + bytes([255, 0, 0, 0, 255, 0]) + b"\x01" + bytes([0, 0, 255, 255, 255, 0])
    png = b"\x89PNG\r\n\x1a\n"
    for kind, body in ((b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)), (b"IDAT", zlib.compress(rows))):
        png += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    pixels = decode_png(png)
    assert pixels.tolist() == [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]]


SCREENSHOTS = Path(os.environ.get("SYMCNN_SCREENSHOTS", "")) if os.environ.get("SYMCNN_SCREENSHOTS") else None


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", [*BUILTINS, "hostile"])
def test_page_in_chromium(browser, pages, name, width):
    path, (maths, svgs), _, _ = pages[name]
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests, problems, dialogs = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    assert requests == [path.as_uri()]  # the file itself, nothing else
    assert problems == [] and dialogs == []
    assert page.locator("math").count() == maths
    assert page.locator("svg").count() == svgs
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('math, svg')].map(e => {
            const r = e.getBoundingClientRect(); return [e.tagName, r.width, r.height, e.checkVisibility()]; })"""
    )
    flat = [s for s in sizes if s[1] < 1 or s[2] < 1 or not s[3]]
    assert flat == [], f"{len(flat)} formulas/pictures not drawn, e.g. {flat[:3]}"
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # wide maths scroll in their box
    assert page.evaluate("getComputedStyle(document.querySelector('.scroll')).overflowX") == "auto"
    page.evaluate("window.scrollTo(0, 0)")
    pixels = decode_png(page.screenshot())
    assert pixels.shape[:2] == (900, width)
    ink = (pixels.min(axis=2) < 200).mean()
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert ink > 0.01 and colours > 8, f"blank screenshot: {ink:.3%} ink, {colours} colours"
    if SCREENSHOTS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.emulate_media(media="print")  # the print stylesheet shows folded parts and drops scroll boxes
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
    hidden = "[...document.querySelectorAll('details svg, details math')].filter(e => !e.checkVisibility()).length"
    assert page.evaluate(hidden) == 0
    page.emulate_media(media="screen")
    assert page.evaluate(hidden) > 0  # (on screen, folded parts are hidden: the check above can fail)
    page.emulate_media(media="print")
    assert page.evaluate("getComputedStyle(document.querySelector('.scroll')).overflowX") == "visible"
    page.close()


# ----------------------------------------------------------------------------- Jupyter


def test_derivation_displays_its_worked_solution(monkeypatch):
    import subprocess
    import sys

    from symcnn.rendering import formats as rendering

    derivation = symcnn.derive("zebra-cat")
    calls = []
    real = rendering.document_for
    monkeypatch.setattr(rendering, "document_for", lambda sc: calls.append(sc.name) or real(sc))
    html, markdown, latex = derivation._repr_html_(), derivation._repr_markdown_(), derivation._repr_latex_()
    assert calls == ["zebra-cat"]  # one check and one document for the three displays
    parser = Tags()
    parser.feed(html)
    maths, svgs = expected_counts(real(symcnn.load("zebra-cat")))
    names = [t for t, _ in parser.tags]
    assert names[0] == "div" and names.count("math") == maths and names.count("svg") == svgs
    assert "<script" not in html and "<html" not in html  # a fragment, with its scoped style
    assert markdown.startswith("# A zebra and a cat") and "](data:image/svg+xml;base64," in markdown
    assert "$$ z^{\\text{edge}}_{1,1} = " in latex and "\\begin{document}" not in latex
    imports = "import symcnn.engine.exact, symcnn.verify, sys; assert 'symcnn.rendering.formats' not in sys.modules"
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", imports], capture_output=True, cwd=repo).returncode == 0


def test_report_displays_its_table():
    report = symcnn.check(GOLDEN / "hostile.yaml")
    html, markdown, latex = report._repr_html_(), report._repr_markdown_(), report._repr_latex_()
    assert "<table>" in html and "all agree" in html and "<script" not in html.lower()
    assert "&lt;/script&gt;" in html  # the claim's note, escaped
    assert "| **total** | " in markdown and f"| {report.compared} |" in markdown
    assert latex.startswith("$$\n\\begin{array}") and latex.rstrip().endswith("$$")
