"""Pictures: the SVG files parse, the numbers written in them are `symcnn values`' numbers, the window,
the winners and the legends sit where they should, large matrices stay one heatmap without numbers,
and user text is escaped. (TikZ compiles: tests/test_compile.py.)"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import symcnn
from symcnn.document import layout as figures
from symcnn.document.model import Chart, Heatmap
from symcnn.rendering import drawing
from symcnn.rendering.formats import document_for, render_to_dir

GOLDEN = Path(__file__).resolve().parent / "golden"
SVG = "{http://www.w3.org/2000/svg}"
BUILTINS = ("four-images", "zebra-cat")


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def cell_numbers(root: ET.Element) -> list[float]:
    """The numbers written in the cells, row by row (U+2212 is the minus sign)."""
    return [float(t.text.replace("\N{MINUS SIGN}", "-")) for t in root.iter(f"{SVG}text") if t.get("class") == "cell"]


def outlines(root: ET.Element, colour: str) -> list[tuple[float, float, float, float]]:
    return [
        tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
        for r in root.iter(f"{SVG}rect")
        if r.get("fill") == "none" and r.get("stroke") == colour
    ]


def cells(root: ET.Element) -> list[tuple[float, float, float, float]]:
    """The coloured cells of a heatmap (legend swatches excluded: they are below the grid's last row)."""
    return [
        tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
        for r in root.iter(f"{SVG}rect")
        if r.get("fill") != "none"
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("figures")
    out = {}
    for name in (*BUILTINS, str(GOLDEN / "small.yaml"), str(GOLDEN / "hostile.yaml"), str(padded_scenario(base))):
        sc = symcnn.load(name)
        render_to_dir(sc, "markdown", base / sc.name)
        out[sc.name] = base / sc.name / f"{sc.name}-figures"
    return out


def padded_scenario(base: Path) -> Path:
    """Padding 1, stride 2, a 3x3 filter on a 5x5 image, decimals that round: the window must sit on
    the padded image's top-left corner."""
    path = base / "padded.yaml"
    path.write_text(
        """name: padded
classes: [a, b]
inputs:
  - {name: p, label: a, pixels: [[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0.8, 0.9, 1.0], [0.15, 0.25, 0.35, 0.45, 0.55],
     [0.3, 0.1, 0.4, 0.1, 0.5], [0.9, 0.2, 0.6, 0.5, 0.3]]}
  - {name: q, label: b, pixels: [[1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 0, 1, 0, 1]]}
conv: {stride: 2, padding: 1, filters: [{name: K, weights: [[0.3, -0.7, 0.1], [0.2, 0.5, -0.3], [-0.1, 0.4, 0.6]],
       bias: 0.05}]}
activation: sigmoid
pool: {kind: max, size: 2, stride: 1}
dense: {weights: [[0.3, -0.2, 0.5, 0.1], [-0.4, 0.2, 0.1, 0.3]], biases: [0.1, -0.1]}
training: {learning_rate: 0.5, iterations: 2}
""",
        encoding="utf-8",
    )
    return path


def close(shown: list[float], expected, places: int = 3) -> None:
    expected = np.asarray(expected, float).ravel()
    assert len(shown) == expected.size
    assert np.all(np.abs(np.array(shown) - expected) <= 0.5 * 10**-places + 1e-12), (shown, expected.tolist())


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", [*BUILTINS, "small", "hostile", "padded"])
def test_every_svg_parses_as_xml_and_is_vector_only(rendered, name):
    files = sorted(rendered[name].glob("*.svg"))
    assert files
    for f in files:
        root = parse(f)
        assert root.tag == f"{SVG}svg" and root.get("viewBox")
        assert root.find(f"{SVG}title") is not None
        text = f.read_text(encoding="utf-8")
        assert "<image" not in text and "data:" not in text and "href" not in text  # no raster, no links


def test_one_svg_per_panel_named_in_the_markdown(rendered):
    doc = document_for(symcnn.load("four-images"))
    expected = {path.split("/", 1)[1] for path in drawing.panel_files(doc).values()}
    assert {f.name for f in rendered["four-images"].glob("*.svg")} == expected
    markdown = (rendered["four-images"].parent / "four-images.md").read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\((four-images-figures/[^)]+\.svg)\)", markdown)
    assert sorted(linked) == sorted(drawing.panel_files(doc).values())


# ----------------------------------------------------------------------------- numbers in the pictures


def test_four_images_numbers_are_symcnn_values(rendered):
    values = symcnn.run("four-images").to_dict()
    folder = rendered["four-images"]
    sc = symcnn.load("four-images")
    for n, step in enumerate(values["steps"]):
        key = step["sample"]
        for k, flt in enumerate(sc.conv.filters):
            image, weights, products, conv = (parse(folder / f"{key}-conv-{flt.name}-{i}.svg") for i in (1, 2, 3, 4))
            close(cell_numbers(image), sc.inputs[n].pixels[0])
            close(cell_numbers(weights), flt.weights[0])
            close(cell_numbers(products), flt.weights[0] * sc.inputs[n].pixels[0][:2, :2])
            close(cell_numbers(conv), step["conv"][k])
            close(cell_numbers(parse(folder / f"{key}-activation-{k + 1}.svg")), step["activated"][k])


def test_rounded_numbers_in_pictures_are_symcnn_values(rendered):
    """Decimals that round (sigmoid, padding, stride 2, max pool), every pass."""
    values = symcnn.run(symcnn.load(rendered["padded"].parent.parent / "padded.yaml")).to_dict()
    folder = rendered["padded"]
    for step in values["steps"]:
        key = f"it{step['iteration']}-{step['sample']}"
        close(cell_numbers(parse(folder / f"{key}-conv-K-4.svg")), step["conv"][0])
        close(cell_numbers(parse(folder / f"{key}-activation-1.svg")), step["activated"][0])
        close(cell_numbers(parse(folder / f"{key}-pool-1.svg")), step["pooled"][0])


def test_the_window_sits_on_the_padded_images_top_left_cells(rendered):
    sc = symcnn.load(rendered["padded"].parent.parent / "padded.yaml")
    values = symcnn.run(sc).to_dict()
    folder = rendered["padded"]
    image = parse(folder / "it1-p-conv-K-1.svg")
    grid = cells(image)[:49]  # 7x7: the 5x5 image padded by 1
    padded = np.pad(sc.inputs[0].pixels[0], 1)
    close(cell_numbers(image), padded)
    (window,) = outlines(image, drawing.svg_colour(figures.WINDOW_COLOUR))
    x0, y0, side = grid[0][0], grid[0][1], grid[0][2]
    assert window == pytest.approx((x0, y0, 3 * side, 3 * side))  # rows 1-3, columns 1-3 of the padded image
    products = cell_numbers(parse(folder / "it1-p-conv-K-3.svg"))
    close(products, sc.conv.filters[0].weights[0] * padded[:3, :3])
    first = values["steps"][0]["conv"][0][0][0]
    assert sum(products) + sc.conv.filters[0].bias == pytest.approx(first, abs=9 * 0.0005)


def test_max_pool_winners_are_outlined(rendered):
    values = symcnn.run(symcnn.load(GOLDEN / "small.yaml")).to_dict()
    folder = rendered["small"]
    black = drawing.svg_colour(figures.MARK_COLOUR)
    checked = []
    for step in values["steps"]:
        for k in range(2):
            root = parse(folder / f"{step['sample']}-activation-{k + 1}.svg")  # the maps pooled, winners outlined
            a = np.array(step["activated"][k])
            grid = cells(root)[: a.size]
            side = grid[0][2]
            marked = {
                (round((y - grid[0][1]) / side), round((x - grid[0][0]) / side)) for x, y, _, _ in outlines(root, black)
            }
            first_max = np.unravel_index(np.argmax(a), a.shape)  # 2x2 pool on a 2x2 map: one window
            tie = len(set(a.flat)) == 1  # all cells equal: the first wins only by convention, not outlined
            assert marked == (set() if tie else {tuple(int(i) for i in first_max)})
            checked.append(tie)
    assert checked.count(False) >= 2 and checked.count(True) >= 1


# ----------------------------------------------------------------------------- layout


def test_large_matrices_are_one_heatmap_without_numbers():
    rng = np.random.default_rng(5)
    values = rng.uniform(-1, 1, (28, 28)).round(2)
    h = figures.heatmap("big", values.astype(object), "diverging", 3)
    assert h.texts is None
    root = ET.fromstring(drawing.svg(h))
    paths = [p.get("d") for p in root.iter(f"{SVG}path")]  # plain cells: one path per colour
    assert len(paths) <= 2 * figures.COLOUR_LEVELS + 1
    layout = figures.layout(h)
    side = min(hh for _, rects in layout.patches for _, _, _, hh in rects)  # a cell (legend swatches are taller)
    area = sum(w * hh for _, rects in layout.patches for _, y, w, hh in rects if y < 28 * side)
    assert area == pytest.approx(28 * 28 * side * side)  # every cell drawn once (runs of a colour merged)
    assert sum(d.count("M") for d in paths) <= 28 * 28 + figures.LEGEND_STEPS
    assert cell_numbers(root) == [] and cells(root) == []
    assert float(root.get("width")) < 400  # sized like a small matrix's picture, not 28 times larger
    small = figures.heatmap("small", values[:8, :8].astype(object), "diverging", 3)
    assert small.texts is not None and len(cell_numbers(ET.fromstring(drawing.svg(small)))) == 64


@pytest.mark.parametrize("name", [*BUILTINS, "small", "padded"])
def test_numbers_fit_their_cells_and_labels_do_not_overlap(rendered, name):
    path = {"small": GOLDEN / "small.yaml", "padded": rendered["padded"].parent.parent / "padded.yaml"}.get(name, name)
    doc = document_for(symcnn.load(path))
    for f in drawing.figures(doc):
        for panel in f.panels:
            layout = figures.layout(panel)
            for box in layout.boxes:
                assert len(box.text) * figures.CHAR <= box.w - 2, (f.key, box.text)
            rows: dict[float, list] = {}
            for label in layout.labels:
                rows.setdefault(label.y, []).append(label)
            for row in rows.values():  # labels on one line: left to right, apart
                spans = sorted(span(label) for label in row)
                assert all(a[1] + 2 <= b[0] for a, b in zip(spans, spans[1:])), (f.key, [lb.text for lb in row])
                assert all(0 <= a and b <= layout.width + 0.01 for a, b in spans), (f.key, spans, layout.width)


def span(label) -> tuple[float, float]:
    width = len(label.text) * figures.CHAR
    start = {"start": label.x, "middle": label.x - width / 2, "end": label.x - width}[label.anchor]
    return start, start + width


def test_every_heatmap_has_a_legend_and_charts_a_line_per_sample():
    doc = document_for(symcnn.load("zebra-cat"))
    kinds = {type(p) for f in drawing.figures(doc) for p in f.panels}
    assert kinds == {Heatmap, Chart}
    for f in drawing.figures(doc):
        for panel in f.panels:
            root = ET.fromstring(drawing.svg(panel))
            if isinstance(panel, Heatmap):
                texts = [t.text for t in root.iter(f"{SVG}text") if t.get("class") != "cell"]
                assert len(texts) == (3 if panel.scale == "diverging" else 2)  # the colour bar's ends (and 0)
            else:
                assert len(list(root.iter(f"{SVG}polyline"))) >= 2 * len(panel.series)  # line + legend sample
                assert [s for s, _ in panel.series] == ["zebra", "cat"]
                assert all(len(ys) == 3 for _, ys in panel.series)  # pass 1, pass 2, final


def test_training_curves_are_symcnn_values():
    values = symcnn.run("zebra-cat").to_dict()
    doc = document_for(symcnn.load("zebra-cat"))
    (curves,) = [f for f in drawing.figures(doc) if f.key == "summary-curves"]
    probs, losses = curves.panels
    assert probs.xticks == ("pass 1", "pass 2", "final")
    for (name, ys), (_, ls) in zip(probs.series, losses.series):
        label = 0 if name == "zebra" else 1
        runs = [s for s in values["steps"] if s["sample"] == name] + [f for f in values["final"] if f["sample"] == name]
        assert ys == pytest.approx([r["probs"][label] for r in runs], abs=1e-12)
        assert ls == pytest.approx([r["loss"] for r in runs], abs=1e-12)
        assert losses.ymax >= max(ls)


# ----------------------------------------------------------------------------- escaping


def test_hostile_names_are_escaped_in_svg(rendered):
    files = sorted(rendered["hostile"].glob("*.svg"))
    titles = set()
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "<script" not in text.lower()
        root = parse(f)  # parses: no stray markup
        titles.add(root.find(f"{SVG}title").text)
        for t in root.iter(f"{SVG}text"):
            assert t.text is not None
    sc = symcnn.load(GOLDEN / "hostile.yaml")
    assert f"image {sc.inputs[0].name}" in titles  # the name round-trips through XML escaping unchanged
    legend = [t.text for f in files if "curves" in f.name for t in parse(f).iter(f"{SVG}text")]
    assert any(text.startswith(sc.inputs[0].name[:20]) for text in legend)


def test_rendering_again_replaces_the_pictures(tmp_path):
    """NAME-figures/ holds this rendering's pictures only: an earlier rendering's extra SVGs go."""
    render_to_dir(symcnn.load("zebra-cat"), "markdown", tmp_path)
    folder = tmp_path / "zebra-cat-figures"
    stale, mine = folder / "it9-gone-1.svg", folder / "notes.txt"
    stale.write_text("<svg/>", encoding="utf-8")
    mine.write_text("the user's own file", encoding="utf-8")
    before = sorted(p.name for p in folder.glob("*.svg") if p != stale)
    render_to_dir(symcnn.load("zebra-cat"), "markdown", tmp_path)
    assert not stale.exists() and mine.exists()
    assert sorted(p.name for p in folder.glob("*.svg")) == before


def test_the_window_follows_the_expanded_cell_of_a_large_map(tmp_path):
    """In summary, a large (elided) map expands its largest cell: the window is drawn there, stride 2."""
    rng = np.random.default_rng(12)
    data = {
        "name": "wide",
        "classes": ["a", "b"],
        "inputs": [{"name": "x", "label": "a", "pixels": np.round(rng.uniform(0, 1, (21, 21)), 1).tolist()}],
        "conv": {"stride": 2, "filters": [{"name": "F", "weights": [[1, 0, -1], [0, 2, 0], [-1, 0, 1]]}]},
        "dense": {"weights": np.round(rng.uniform(-0.1, 0.1, (2, 100)), 2).tolist(), "biases": [0, 0]},
        "training": {"learning_rate": 0.1},
    }
    render_to_dir(symcnn.load(data), "markdown", tmp_path)
    conv = np.array(symcnn.run(symcnn.load(data)).to_dict()["steps"][0]["conv"][0])  # 10x10: elided in summary
    i, j = np.unravel_index(np.argmax(np.abs(conv)), conv.shape)
    assert (i, j) != (0, 0)
    markdown = (tmp_path / "wide.md").read_text(encoding="utf-8")
    assert f"z^{{\\text{{F}}}}_{{{i + 1},{j + 1}}} = " in markdown  # the cell expanded
    image = parse(tmp_path / "wide-figures" / "x-conv-F-1.svg")
    (frame,) = [r for r in outlines(image, "#969696") if r[3] > 20]  # the grid's frame, not the legend's
    side = frame[2] / 21
    (window,) = outlines(image, drawing.svg_colour(figures.WINDOW_COLOUR))
    assert window == pytest.approx((frame[0] + 2 * j * side, frame[1] + 2 * i * side, 3 * side, 3 * side))
    products = cell_numbers(parse(tmp_path / "wide-figures" / "x-conv-F-3.svg"))
    pixels = np.array(data["inputs"][0]["pixels"])
    close(products, np.array(data["conv"]["filters"][0]["weights"]) * pixels[2 * i : 2 * i + 3, 2 * j : 2 * j + 3])
