"""The article's printed numbers, reproduced by both built-in scenarios."""

from __future__ import annotations

import numpy as np
import pytest

import symcnn
from symcnn.scenario.sources import builtin_names, read_source


def test_builtins_are_listed():
    assert builtin_names() == ["four-images", "lenet-like", "mnist-like", "two-conv", "zebra-cat", "zebra-cat-adam"]


def test_four_images_inputs_as_the_contract_describes():
    sc = symcnn.load("four-images")
    pixels = {x.name: x.pixels[0] for x in sc.inputs}
    assert [x.label for x in sc.inputs] == ["cat", "cat", "dog", "dog"]
    assert (pixels["img1"] == np.tile([0, 1, 0, 1], (4, 1))).all()
    assert (pixels["img2"] == np.array([[1] * 4, [0] * 4, [1] * 4, [0] * 4])).all()
    assert (pixels["img3"] == (np.indices((4, 4)).sum(0) + 1) % 2).all()
    assert (pixels["img4"] == np.eye(4)).all()
    assert sc.n_features == 18


def test_four_images_article_numbers():
    step = symcnn.run("four-images").steps[0]
    assert step.sample == "img1"
    np.testing.assert_array_equal(step.conv[0], [[-2, 2, -2]] * 3)
    np.testing.assert_array_equal(step.activated[0], [[0, 2, 0]] * 3)
    np.testing.assert_array_equal(step.conv[1], np.zeros((3, 3)))
    np.testing.assert_allclose(step.probs, [0.786, 0.214], atol=5e-4)
    np.testing.assert_allclose(step.grad_logits, [-0.214, 0.214], atol=5e-4)
    # independent: logits are 0.1 * 6 + 0.05 and its negative
    np.testing.assert_allclose(step.probs[0], 1 / (1 + np.exp(-1.3)), rtol=1e-15)


def test_zebra_cat_article_numbers():
    trace = symcnn.run("zebra-cat")
    zebra, cat = trace.steps[0], trace.steps[1]
    assert zebra.conv[0, 0, 0] == pytest.approx(0.7, abs=1e-12)
    assert cat.conv[0, 0, 0] == pytest.approx(-0.3, abs=1e-12)
    assert zebra.activated[0, 0, 0] == pytest.approx(0.7, abs=1e-12)
    assert cat.activated[0, 0, 0] == 0
    assert len(trace.steps) == 4 and len(trace.updates) == 4
    final = {f.sample: f.probs for f in trace.final}
    np.testing.assert_allclose(final["zebra"], [0.78, 0.22], atol=0.005)
    np.testing.assert_allclose(final["cat"], [0.55, 0.45], atol=0.005)


def test_zebra_cat_true_gradients_move_the_way_the_notes_say():
    trace = symcnn.run("zebra-cat")
    zebra_first = trace.steps[0].probs[0]
    cat_first = trace.steps[1].probs[1]
    final = {f.sample: f for f in trace.final}
    assert final["zebra"].probs[0] < zebra_first  # the zebra's confidence falls
    assert final["cat"].probs[1] > cat_first  # the cat's rises
    # the cat's pooled feature is 0, so its dense-weight gradients are 0: only biases move it
    assert trace.steps[1].features[0] == 0
    np.testing.assert_array_equal(trace.steps[1].grad_dense_weights, [[0.0], [0.0]])


@pytest.mark.parametrize("name", ["four-images", "zebra-cat"])
def test_builtins_check_clean_with_every_claim(name):
    report = symcnn.check(name)
    assert report.ok, report.table()
    assert not report.missing
    assert report.claims and all(c.ok for c in report.claims)


@pytest.mark.parametrize("name", ["four-images", "zebra-cat"])
def test_builtins_say_what_is_reconstructed(name):
    data, _ = read_source(name)
    notes = " ".join(data["notes"]).lower()
    assert "from the article" in notes and "reconstructed" in notes


def test_mnist_like_is_what_the_generator_writes():
    from symcnn.scenario.digits import mnist_like, to_yaml
    from symcnn.scenario.sources import builtin_dir

    committed = (builtin_dir() / "mnist-like.yaml").read_text(encoding="utf-8")
    assert committed == to_yaml(mnist_like()), (
        "regenerate: python -m symcnn.scenario.digits > symcnn/scenario/builtins/mnist-like.yaml"
    )


def test_mnist_like_digits_look_like_digits():
    sc = symcnn.load("mnist-like")
    assert sc.input_shape == (28, 28) and len(sc.conv.filters) == 8 and sc.n_features == 1352
    assert len(sc.classes) == 10
    for x in sc.inputs:
        pixels = x.pixels[0]
        assert set(np.unique(pixels * 10).round(6)) <= set(range(11))  # one decimal, in [0, 1]
        ink = pixels > 0.5
        assert 60 < ink.sum() < 250  # strokes, not a blob or an empty page
        rows, cols = np.nonzero(ink)
        assert rows.min() >= 2 and rows.max() <= 25 and cols.min() >= 2 and cols.max() <= 25  # centred
    three, seven = (x.pixels[0] > 0.5 for x in sc.inputs)
    assert three[4:7, 8:20].any() and seven[4:7, 5:23].sum() > 30  # the 7's top bar is long and full


def test_mnist_like_checks_and_renders_a_summary(tmp_path):
    from symcnn.errors import UsageError
    from symcnn.rendering.formats import render_to_dir

    report = symcnn.check("mnist-like")
    assert report.ok and report.compared > 100_000
    written = render_to_dir(symcnn.load("mnist-like"), "markdown", tmp_path)
    text = written[0].read_text(encoding="utf-8")
    assert len(text) < 200_000  # a readable summary, not a 784-row table
    assert r"\cdots" in text or r"\dots" in text
    with pytest.raises(UsageError, match="--force"):
        render_to_dir(symcnn.load("mnist-like"), "markdown", tmp_path / "full", detail="full")
