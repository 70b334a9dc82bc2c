"""Optimizers (momentum, nesterov, Adam): the engine against the independent NumPy reference, exact
arithmetic's first steps, the rounding-residue rule, and the state the exact engine derives."""

from __future__ import annotations

import copy
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symcnn
from symcnn.engine import optimizers
from symcnn.engine.exact import derive

try:
    from reference import reference_run
    from test_properties import assert_same, engine_values, rounding_ambiguous, scenarios
except ImportError:  # tests/ imported as a package
    from tests.reference import reference_run
    from tests.test_properties import assert_same, engine_values, rounding_ambiguous, scenarios

OPTIMIZERS = st.one_of(
    st.builds(
        lambda mu, nesterov: {"kind": "momentum", "momentum": mu, "nesterov": nesterov},
        st.sampled_from([0.0, 0.5, 0.9, 0.99]),
        st.booleans(),
    ).filter(lambda o: o["momentum"] > 0 or not o["nesterov"]),
    st.builds(
        lambda b1, b2, eps: {"kind": "adam", "betas": [b1, b2], "eps": eps},
        st.sampled_from([0.0, 0.5, 0.9]),
        st.sampled_from([0.0, 0.9, 0.999]),
        st.sampled_from([1e-8, 1e-3, 0.1]),
    ),
    st.just("momentum"),
    st.just("adam"),
)


def ill_conditioned(scenario: dict, expected: dict) -> bool:
    """An Adam step lr * m-hat / (sqrt(v-hat) + eps) with a tiny denominator and m != 0: float64's last
    bits of the gradient (which differ between summation orders) decide its size (d step / d g ~ lr / eps)."""
    spec = scenario["training"].get("optimizer", "sgd")
    spec = {"kind": spec} if isinstance(spec, str) else spec
    if spec["kind"] != "adam":
        return False
    beta2, eps = spec.get("betas", [0.9, 0.999])[1], spec.get("eps", 1e-8)
    for u in expected["updates"]:
        for key in (k for k in u if k.startswith("v_")):
            v, m = np.array(u[key], dtype=float), np.array(u["m_" + key[2:]], dtype=float)
            denominator = np.sqrt(v / (1 - beta2 ** u["step"])) + eps
            if ((m != 0) & (denominator < 1e-4)).any():
                return True
    return False


@st.composite
def optimized(draw) -> dict:
    scenario = draw(scenarios(max_iterations=3))
    scenario["training"]["optimizer"] = draw(OPTIMIZERS)
    return scenario


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(optimized())
def test_engine_matches_the_reference(scenario: dict) -> None:
    expected = reference_run(copy.deepcopy(scenario), conv_magnitudes=True)
    assume(not rounding_ambiguous(scenario, expected) and not ill_conditioned(scenario, expected))
    for step in expected["steps"]:
        step.pop("conv_magnitude")
    assert_same(engine_values(scenario), expected)


def four_images(optimizer, **training) -> symcnn.Scenario:
    from symcnn.scenario.sources import read_source

    data = read_source("four-images")[0]
    data.pop("claims", None)
    data["training"] = {**data["training"], "optimizer": optimizer, **training}
    return symcnn.load(data)


@pytest.mark.parametrize("update", ["per_sample", "batch_mean"])
def test_the_first_momentum_step_is_sgds_exactly(update: str) -> None:
    sgd = derive(four_images("sgd", update=update, update_filters=True, iterations=2))
    momentum = derive(
        four_images({"kind": "momentum", "momentum": 0.9}, update=update, update_filters=True, iterations=2)
    )
    for key in ("filters", "filter_biases", "dense_weights", "dense_biases"):
        ours, theirs = momentum.updates[0].values[key], sgd.updates[0].values[key]
        for a, b in zip(ours.flat, theirs.flat):  # the gradients hold exp: 50-digit values, equal to 45
            assert a == b or abs(b - a) <= mpmath.mpf(10) ** -45 * max(1, abs(b)), (key, a, b)
    # from the second step on, the velocity remembers the first gradient
    assert not (momentum.updates[1].values["dense_weights"] == sgd.updates[1].values["dense_weights"]).all()


def test_adams_first_step_is_lr_times_the_gradients_sign_up_to_eps() -> None:
    with mpmath.workdps(60):
        d = derive(four_images({"kind": "adam"}, update_filters=True))
        first, lr, eps = d.updates[0], mpmath.mpf(1) / 10, mpmath.mpf(10) ** -8
        for key in ("filters", "filter_biases", "dense_weights", "dense_biases"):
            before, after = d.deriver.initial[key], first.values[key]
            g = sum(s.values["grad_" + key] for s in first.steps)
            for index in np.ndindex(*before.shape):
                if g[index] == 0:  # an exact 0 gradient: the parameter stays exactly as it was
                    assert isinstance(after[index], Fraction) and after[index] == before[index]
                    continue
                step = mpmath.mpf(before[index].numerator) / before[index].denominator - after[index]
                gi = g[index]  # 50-digit (softmax); sqrt(v-hat) = |g| at t = 1
                assert abs(step - lr * gi / (abs(gi) + eps)) <= mpmath.mpf(10) ** -45
                sign = 1 if gi > 0 else -1  # lr * sign(g), short by at most lr * eps / |g|
                assert abs(step - lr * sign) <= lr * eps / abs(gi)
                assert abs(step) < lr


def test_adams_second_step_has_50_digit_values_that_agree_with_numpy() -> None:
    sc = four_images({"kind": "adam", "betas": [0.9, 0.999]}, iterations=2)
    d = derive(sc)
    values = [v for u in d.updates[1:] for v in u.values["dense_weights"].flat]
    assert any(not isinstance(v, Fraction) for v in values), "an irrational square root enters"
    report = symcnn.check(sc, thorough=True)
    assert report.ok and report.compared > 0
    assert any(g.name == "updates.v_dense_weights" for g in report.groups)


def residue_scenario(rule: bool = True) -> dict:
    """Filter gradient sum(x) * dL/dz = (0.1 + 0.2 - 0.3) * (-0.5): exactly 0, about -2.8e-17 in float64."""
    return {
        "name": "residue",
        "title": "A gradient that is 0 only exactly",
        "classes": ["a", "b"],
        "inputs": [{"name": "x", "label": "a", "pixels": [[0.1, 0.2, -0.3]]}],
        "conv": {"filters": [{"name": "F", "weights": [[1]], "bias": 0}]},
        "activation": "none",
        "dense": {"weights": [[0.5, 0.5, 0.5], [-0.5, -0.5, -0.5]], "biases": [0, 0]},
        "training": {"learning_rate": 0.1, "update_filters": True, "optimizer": {"kind": "adam", "eps": 1e-12}},
    }


def test_a_rounding_residue_gradient_moves_nothing_under_adam(monkeypatch) -> None:
    sc = symcnn.load(residue_scenario())
    values = symcnn.run(sc).to_dict()
    assert values["steps"][0]["grad_filters"][0][0][0] != 0.0  # the residue is there in float64
    assert values["updates"][0]["filters"][0] == [[1.0]]  # ... and moves nothing, as in exact arithmetic
    assert values["updates"][0]["m_filters"][0] == [[0.0]]
    assert derive(sc).updates[0].values["filters"][0, 0, 0, 0] == 1
    assert symcnn.check(sc).ok
    # without the rule the residue becomes a visible step: lr * g / (|g| + eps), about 3e-6
    monkeypatch.setattr(optimizers, "without_residue", lambda grads, sizes, noise: grads)
    moved = symcnn.run(sc).to_dict()["updates"][0]["filters"][0][0][0]
    assert abs(moved - 1.0) > 1e-7
    assert not symcnn.check(sc).ok


def test_frozen_filters_have_no_state_and_sgd_none_at_all() -> None:
    momentum = symcnn.run(four_images({"kind": "momentum"})).to_dict()["updates"][0]
    assert {"velocity_dense_weights", "velocity_dense_biases"} <= set(momentum)
    assert "velocity_filters" not in momentum and "velocity_filter_biases" not in momentum
    sgd = symcnn.run(four_images("sgd")).to_dict()["updates"]
    assert [u["step"] for u in sgd] == [1, 2, 3, 4]
    assert not any(k.startswith(("m_", "v_", "velocity_")) for u in sgd for k in u)


def test_each_displayed_state_equation_reevaluates_to_its_value() -> None:
    d = derive(four_images({"kind": "adam"}, iterations=2, update="batch_sum", update_filters=True))
    names = []
    for q in d.deriver.optimizer_equations(d.updates[1], "filters", (0, 0, 0, 1)):
        names.append(str(q.symbol))
        assert (
            q.value == symcnn.engine.algebra.to_sympy(symcnn.engine.algebra.evaluate(q.substituted))
            or abs(float(symcnn.engine.algebra.evaluate(q.substituted)) - float(q.value)) < 1e-30
        )
    assert names[:5] == ["g_t", "m_t", "v_t", "mhat_t", "vhat_t"]


def test_the_adam_document_shows_state_equations_convention_and_step(tmp_path) -> None:
    from symcnn.rendering.formats import render_to_dir

    sc = symcnn.load("zebra-cat-adam")
    render_to_dir(sc, "markdown", tmp_path)
    text = (tmp_path / "zebra-cat-adam.md").read_text()
    assert text.count("Adam as PyTorch's torch.optim.Adam") == 1  # the convention, once (t = 1)
    assert "Keras" in text and "1e-7" in text
    for t in (1, 2, 6):
        assert f"Step t = {t} of Adam" in text
    assert r"\hat{m}_{t} = \frac{m_{t}}{1 - \beta_{1}^{t}}" in text
    assert r"\sqrt{\hat{v}_{t}} + \varepsilon" in text
    assert "| pass | step t |" in text
    assert "## Optimizers compared" in text and "trained with Adam" in text


def test_compare_optimizers_runs_each_kind_and_its_numbers_match_separate_runs(tmp_path) -> None:
    from symcnn.document.comparison import losses, variants

    sc = four_images({"kind": "momentum", "momentum": 0.5}, iterations=2)
    kinds = [v.training.optimizer for v in variants(sc)]
    assert [o.kind for o in kinds] == ["sgd", "momentum", "adam"] and kinds[1].momentum == 0.5
    for v in variants(sc):
        per_pass, final = losses(v)
        values = symcnn.run(v).to_dict()
        assert per_pass[0] == pytest.approx(np.mean([s["loss"] for s in values["steps"][:4]]), rel=1e-12)
        assert final == pytest.approx([f["loss"] for f in values["final"]], rel=1e-12)
    from symcnn.cli import main

    code = main(["render", "four-images", "--format", "markdown", "--out", str(tmp_path), "--compare-optimizers"])
    assert code == 0 and "## Optimizers compared" in (tmp_path / "four-images.md").read_text()


@pytest.mark.parametrize("optimizer", [{"kind": "adam"}, {"kind": "momentum", "momentum": 0.9}])
def test_exercise_variants_ask_for_the_state_and_the_weight_after_the_second_step(optimizer) -> None:
    from symcnn.exercises.questions import choose_questions
    from symcnn.exercises.variants import draw_variant

    data = symcnn.scenario.sources.read_source("zebra-cat")[0]
    data.pop("claims")
    data["training"]["optimizer"] = optimizer
    variant = draw_variant(symcnn.load(data), 5, 1)
    assert variant.scenario.training.optimizer.kind == optimizer["kind"]  # the variant keeps the optimizer
    questions = choose_questions(variant)
    state, weight = questions[-2], questions[-1]
    assert state.kind == "optimizer_state" and state.path.startswith("updates[1].")
    assert state.path.split(".")[1].split("_dense_weights")[0] in {"velocity", "m", "v"}
    assert weight.path.startswith("updates[1].dense_weights")
    values = variant.trace.to_dict()
    for q in (state, weight):  # the answers are the engine's (and check's) numbers
        assert q.value == symcnn.verify.lookup(values, q.path)
    assert symcnn.check(variant.scenario).ok
