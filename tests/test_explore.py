"""The explorable HTML page: every number shown with a data-path opens a panel (in real Chromium through
Playwright), whose value is `symcnn values` at that path and whose forms, built in the browser from the
page's templates, agree digit for digit with the same panel built in Python by the same printer."""

from __future__ import annotations

import json
import random
import re
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import sympy
from test_html import CHROMIUM, CHROMIUM_ARGS, browser_or_skip

import symcnn
from symcnn.document.panels import slot
from symcnn.engine.algebra import Dots, evaluate, to_exact
from symcnn.engine.exact import agrees
from symcnn.rendering.explore import reference_panel
from symcnn.rendering.formats import document_for
from symcnn.rendering.templates import printer_settings
from symcnn.scenario.model import parse_path

BUILTINS = ("four-images", "mnist-like", "zebra-cat")  # the legacy-key built-ins (stacks: not yet)
CLICKS = 30


def random_scenario(seed: int) -> dict:
    """A small scenario with seeded random numbers, activation, pooling, channels and training."""
    rng = np.random.default_rng(seed)
    channels, size, k = int(rng.integers(1, 3)), int(rng.integers(4, 7)), int(rng.integers(2, 4))
    filters = int(rng.integers(1, 3))
    classes = ["cat", "dog", "fox"][: int(rng.integers(2, 4))]
    conv_side = size - k + 1
    pool = [{"kind": "max", "size": 2}, {"kind": "avg", "size": 2}, "none", {"kind": "max", "size": "global"}][seed % 4]
    pooled = 1 if pool == {"kind": "max", "size": "global"} else conv_side if pool == "none" else conv_side // 2
    features = filters * pooled * pooled
    activation = ["relu", {"kind": "leaky_relu", "slope": 0.1}, "sigmoid", "tanh", "none"][seed % 5]

    def numbers(*shape, scale=1.0):
        return np.round(rng.uniform(-scale, scale, shape), 1).tolist()

    pixels = lambda: numbers(channels, size, size) if channels > 1 else numbers(size, size)  # noqa: E731
    weights = lambda: numbers(channels, k, k) if channels > 1 else numbers(k, k)  # noqa: E731
    return {
        "name": f"random-{seed}",
        "title": f"Random scenario {seed}",
        "classes": classes,
        "inputs": [{"name": f"in{n}", "label": classes[n % len(classes)], "pixels": pixels()} for n in range(2)],
        "conv": {
            "stride": 1,
            "padding": 0,
            "filters": [{"name": f"F{n}", "weights": weights(), "bias": 0.1} for n in range(filters)],
        },
        "activation": activation,
        "pool": pool,
        "dense": {"weights": numbers(len(classes), features, scale=0.5), "biases": numbers(len(classes))},
        "training": {
            "learning_rate": 0.5,
            "iterations": 1 + seed % 2,
            "update": "per_sample",
            "update_filters": bool(seed % 2),
        },
    }


def value_at(values: dict, path: str):
    node = values
    for part in parse_path(path):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict:
    """name -> (the .html file, the document, `symcnn values` as JSON)."""
    base = tmp_path_factory.mktemp("explore")
    out = {}
    for source in (*BUILTINS, random_scenario(3), random_scenario(4)):
        sc = symcnn.load(source)
        (path,) = symcnn.render(sc, "html", base / sc.name)
        values = json.loads(json.dumps(symcnn.run(sc).to_dict()))
        out[sc.name] = (path, document_for(sc), values)
    return out


# ------------------------------------------------------------------- in Python: the panels themselves


@pytest.mark.parametrize("name", [*BUILTINS, "random-3", "random-4"])
def test_panels_hold_the_values_and_their_forms_evaluate_to_them(pages, name):
    _, doc, values = pages[name]
    assert doc.panels
    for p in doc.panels:
        assert p.number == value_at(values, p.path), p.path  # the number `symcnn values` prints
        assert abs(float(p.value) - p.number) <= 1e-9 * max(1.0, abs(p.number)), p.path  # the exact value
        cut = any(isinstance(a, Dots) for a in sympy.preorder_traversal(p.form))
        if cut or any(s.symbol.is_Piecewise for s in p.slots):
            continue  # a cut display form (checked whole when built); ReLU' shown by its branch
        env = {slot(n): to_exact(s.value) for n, s in enumerate(p.slots)}
        assert agrees(evaluate(p.form, {**env}), to_exact(p.value)), p.path


def test_every_number_shown_with_a_path_has_its_panel(pages):
    for name, (path, doc, _) in pages.items():
        html = path.read_text(encoding="utf-8")
        shown = set(re.findall(r'data-path="([^"]+)"', html.split('id="symcnn-data"')[0]))
        assert shown and shown <= {p.path for p in doc.panels}, name


def test_page_size_limits(pages, tmp_path):
    """four-images at most twice the page without panels; mnist-like at most 3 MB."""
    from symcnn.rendering import html

    path, doc, _ = pages["four-images"]
    import dataclasses

    bare = html.page(dataclasses.replace(doc, panels=()))
    assert path.stat().st_size <= 2 * len(bare.encode("utf-8"))
    assert pages["mnist-like"][0].stat().st_size <= 3_000_000


# ------------------------------------------------------------------- in a browser


@pytest.fixture(scope="module")
def browser():
    sync_playwright = browser_or_skip()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, path: Path, fragment: str = ""):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.requests, page.problems = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: page.problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.goto(path.as_uri() + fragment, wait_until="load")
    return page


PANEL_TEXT = """() => { const p = document.querySelector('[data-panel-for]'); if (!p) return null;
  const lines = [...p.querySelectorAll('math')].map(m => m.textContent);
  return {path: p.dataset.panelFor, value: p.dataset.value, lines: lines,
          factors: [...p.querySelectorAll('[data-path]')].map(e => e.dataset.path)}; }"""

REFERENCE_TEXT = """(ref) => { const d = document.createElement('div');
  const t = s => { d.innerHTML = s; return d.textContent; };
  return [t(ref.symbol) + '=' + t(ref.general), '=' + t(ref.substituted), ref.rel + t(ref.value)]; }"""


@pytest.mark.parametrize("name", [*BUILTINS, "random-3", "random-4"])
def test_clicking_numbers_opens_their_panels(browser, pages, name):
    path, doc, values = pages[name]
    page = open_page(browser, path)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    paths = page.evaluate("[...new Set([...document.querySelectorAll('main [data-path]')].map(e => e.dataset.path))]")
    panels = {p.path: p for p in doc.panels}
    settings = printer_settings(doc)
    chosen = random.Random(name).sample(paths, min(CLICKS, len(paths)))
    for p in chosen:
        cell = page.locator(f'main [data-path="{p}"]').first
        cell.scroll_into_view_if_needed()
        cell.click()
        shown = page.evaluate(PANEL_TEXT)
        assert shown is not None and shown["path"] == p
        assert float(shown["value"]) == value_at(values, p) and shown["value"] == json.dumps(value_at(values, p))
        reference = page.evaluate(REFERENCE_TEXT, reference_panel(panels[p], settings))
        assert shown["lines"] == reference, p  # built in the browser = built in Python, digit for digit
        with_paths = [s.path for s in panels[p].slots if s.path is not None and s.path in panels]
        assert set(shown["factors"]) == set(with_paths)  # each factor with a panel is clickable
        if shown["factors"]:
            factor = shown["factors"][0]
            page.locator(f'.explain [data-path="{factor}"]').first.click()
            assert page.evaluate(PANEL_TEXT)["path"] == factor
        page.keyboard.press("Escape")
        assert page.evaluate(PANEL_TEXT) is None
    assert page.requests == [path.as_uri()] and page.problems == []
    page.close()


def test_deep_link_opens_its_panel(browser, pages):
    path, _, values = pages["four-images"]
    page = open_page(browser, path, "#steps[2].probs[0]")
    shown = page.evaluate(PANEL_TEXT)
    assert shown["path"] == "steps[2].probs[0]" and float(shown["value"]) == values["steps"][2]["probs"][0]
    box = page.locator("[data-panel-for]").bounding_box()
    assert 0 <= box["y"] < 900  # scrolled into view
    page.close()


def test_keyboard_only(browser, pages):
    path, _, _ = pages["zebra-cat"]
    page = open_page(browser, path)
    for _ in range(200):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.dataset.path || null")
        if focused:
            break
    assert focused, "no explorable number reachable with Tab"
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == focused
    page.keyboard.press("Enter")
    assert page.evaluate(PANEL_TEXT)["path"] == focused
    assert page.evaluate("document.activeElement.dataset.panelFor") == focused  # the panel has the focus
    page.keyboard.press("Escape")
    assert page.evaluate(PANEL_TEXT) is None
    assert page.evaluate("document.activeElement.dataset.path") == focused  # back where it was
    page.close()


def test_content_security_policy(pages):
    path, _, _ = pages["four-images"]
    html = path.read_text(encoding="utf-8")
    (policy,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    policy = unescape(policy)
    assert "default-src 'none'" in policy and "unsafe" not in policy
    assert re.search(r"script-src 'sha256-[^']+';", policy) and re.search(r"style-src 'sha256-[^']+';", policy)
