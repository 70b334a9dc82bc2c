"""Property tests: the engine against the independent loop-based reference, and against
central finite differences of its own loss; plus hand-computed examples.

The strategy `scenarios()` draws small valid scenario dicts covering every option of
/work/shared/contract.md; test_torch.py reuses it.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symcnn

try:
    from reference import pool_geometry, reference_run
except ImportError:  # tests/ imported as a package
    from tests.reference import pool_geometry, reference_run

RTOL = 1e-9
ATOL = 1e-12

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ----------------------------------------------------------------------------- strategy

# Exact dyadic values (multiples of 1/16) keep sums exact, so kinks and max-pool ties are hit
# exactly and identically by every implementation; a coarse palette makes exact ties between
# different patches (where the first-maximum rule matters) common; arbitrary floats cover the rest.
coarse_values = st.sampled_from([-1, -0.5, 0, 0.5, 1])  # ints too, as YAML gives them
grid_values = st.integers(-32, 32).map(lambda n: n / 16)
float_values = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, width=64)
PALETTES = {
    "coarse": coarse_values,
    "grid": grid_values,
    "float": float_values,
    "mixed": st.one_of(grid_values, float_values),
}
values = PALETTES["mixed"]


def _array(draw, shape: tuple[int, ...], elements=values) -> Any:
    """A nested list of the given shape, drawn element by element (Python ints stay ints)."""
    size = int(np.prod(shape))
    flat = draw(st.lists(elements, min_size=size, max_size=size))
    return np.array(flat, dtype=object).reshape(shape).tolist()


def _optional(draw, mapping: dict, key: str, strategy) -> None:
    """Set mapping[key] from the strategy, or leave the key out to exercise the default."""
    if draw(st.booleans()):
        mapping[key] = draw(strategy)


def _pool_output(size: int, window: int, stride: int) -> int:
    return (size - window) // stride + 1


@st.composite
def scenarios(
    draw,
    max_hw: int = 6,
    max_filters: int = 3,
    max_classes: int = 4,
    max_inputs: int = 3,
    max_iterations: int = 3,
    focus: str | None = None,
) -> dict:
    """A small valid scenario. focus="max_ties" draws max pooling of windows >= 2 cells over
    coarse values (exact ties between different patches, so the first-maximum rule shows);
    focus="avg_overlap" draws average pooling with overlapping windows. Both avoid ReLU,
    whose zero derivative would hide the pooling gradient."""
    palette = (
        draw(st.sampled_from(sorted(PALETTES)))
        if focus is None
        else ("coarse" if focus == "max_ties" else draw(st.sampled_from(["grid", "float"])))
    )
    values = PALETTES[palette]  # one palette per scenario
    channels = draw(st.integers(1, 3))
    height = draw(st.integers(3, max_hw))
    width = draw(st.integers(3, max_hw))
    padding = draw(st.integers(0, 1))
    stride = draw(st.integers(1, 2)) if focus is None else 1
    kh = draw(st.integers(1, min(3, height + 2 * padding)))
    kw = draw(st.integers(1, min(3, width + 2 * padding)))
    conv_h = (height + 2 * padding - kh) // stride + 1
    conv_w = (width + 2 * padding - kw) // stride + 1

    # A single channel may be written as H x W / kh x kw or as 1 x H x W / 1 x kh x kw.
    input_2d = channels == 1 and draw(st.booleans())
    filter_2d = channels == 1 and draw(st.booleans())
    input_shape = (height, width) if input_2d else (channels, height, width)
    filter_shape = (kh, kw) if filter_2d else (channels, kh, kw)

    n_filters = draw(st.integers(1, max_filters))
    filters = []
    for k in range(n_filters):
        spec: dict[str, Any] = {"name": "ABC"[k], "weights": _array(draw, filter_shape, values)}
        _optional(draw, spec, "bias", values)
        filters.append(spec)
    conv: dict[str, Any] = {"filters": filters}
    if stride != 1 or draw(st.booleans()):
        conv["stride"] = stride
    if padding != 0 or draw(st.booleans()):
        conv["padding"] = padding

    activation = draw(
        st.one_of(
            st.sampled_from(
                ["relu", "none", "sigmoid", "tanh", None] if focus is None else ["none", "sigmoid", "tanh"]
            ),
            st.builds(lambda slope: {"kind": "leaky_relu", "slope": slope}, st.floats(0.001, 0.5, allow_nan=False)),
        )
    )

    if focus is None:
        pool_kind = draw(st.sampled_from(["none", None, "max", "avg", "max", "avg"]))
    else:
        pool_kind = "max" if focus == "max_ties" else "avg"
    smallest = 1 if focus is None else 2  # focused windows have at least 2 cells a side
    if pool_kind in ("max", "avg"):
        size_style = draw(st.sampled_from(["int", "pair", "global"] if focus is None else ["int", "pair"]))
        if size_style == "global":
            pool: Any = {"kind": pool_kind, "size": "global"}
            pooled_h = pooled_w = 1
        else:
            if size_style == "int":
                largest = min(conv_h, conv_w, 3)
                ph = pw = draw(st.integers(min(smallest, largest), largest))
                size: Any = ph
            else:
                ph = draw(st.integers(min(smallest, conv_h, 3), min(conv_h, 3)))
                pw = draw(st.integers(min(smallest, conv_w, 3), min(conv_w, 3)))
                size = [ph, pw]
            pool = {"kind": pool_kind, "size": size}
            stride_style = draw(
                st.sampled_from(["overlap"] if focus == "avg_overlap" else ["default", "int", "pair", "overlap"])
            )
            if stride_style == "overlap":  # windows share cells: their gradients must add up
                sh, sw = max(1, ph - 1), max(1, pw - 1)
                pool["stride"] = [sh, sw]
            elif stride_style == "int":
                sh = sw = draw(st.integers(1, 3))
                pool["stride"] = sh
            elif stride_style == "pair":
                sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
                pool["stride"] = [sh, sw]
            else:
                sh, sw = ph, pw
            pooled_h = _pool_output(conv_h, ph, sh)
            pooled_w = _pool_output(conv_w, pw, sw)
    else:
        pool = pool_kind
        pooled_h, pooled_w = conv_h, conv_w
    n_features = n_filters * pooled_h * pooled_w

    n_classes = draw(st.integers(2, max_classes))
    classes = [f"c{i}" for i in range(n_classes)]
    n_inputs = draw(st.integers(1, max_inputs))
    inputs = [
        {"name": f"x{i + 1}", "label": draw(st.sampled_from(classes)), "pixels": _array(draw, input_shape, values)}
        for i in range(n_inputs)
    ]

    training: dict[str, Any] = {"learning_rate": draw(st.floats(0.01, 1.0, allow_nan=False))}
    # None leaves the key out, so the defaults (1, per_sample, false) are exercised too.
    for key, options in (
        ("iterations", list(range(1, max_iterations + 1))),
        ("update", ["per_sample", "batch_mean", "batch_sum"]),
        ("update_filters", [False, True]),
    ):
        choice = draw(st.sampled_from([None, *options]))
        if choice is not None:
            training[key] = choice

    scenario: dict[str, Any] = {
        "name": "prop-test",
        "title": "A drawn scenario",
        "classes": classes,
        "inputs": inputs,
        "conv": conv,
        "dense": {
            "weights": _array(draw, (n_classes, n_features), values),
            "biases": _array(draw, (n_classes,), values),
        },
        "training": training,
    }
    if activation is not None:
        scenario["activation"] = activation
    if pool is not None:
        scenario["pool"] = pool
    return scenario


# ----------------------------------------------------------------------------- helpers


def engine_values(scenario: dict) -> dict:
    return symcnn.run(symcnn.load(copy.deepcopy(scenario))).to_dict()


def first_difference(actual: Any, expected: Any, path: str = "", rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """The first path where `actual` differs from `expected` (keys, lengths, types, numbers)."""
    where = path or "<root>"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {type(actual).__name__}"
        for key in expected:  # extra keys in `actual` are allowed by the contract
            if key not in actual:
                return f"{where}: missing key {key!r}"
            found = first_difference(actual[key], expected[key], f"{path}.{key}" if path else key, rtol, atol)
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}: expected a list, got {type(actual).__name__}"
        if len(actual) != len(expected):
            return f"{where}: length {len(actual)}, expected {len(expected)}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            found = first_difference(a, e, f"{path}[{index}]", rtol, atol)
            if found:
                return found
        return None
    if isinstance(expected, float):
        if isinstance(actual, bool) or not isinstance(actual, float):
            return f"{where}: expected a float, got {type(actual).__name__} {actual!r}"
        if not math.isfinite(actual) or not math.isclose(actual, expected, rel_tol=rtol, abs_tol=atol):
            return f"{where}: {actual!r} != expected {expected!r}"
        return None
    if type(actual) is not type(expected) or actual != expected:
        return f"{where}: {actual!r} != expected {expected!r}"
    return None


def assert_close(actual: Any, expected: Any, rel: float = 1e-12, abs_: float = 1e-15) -> None:
    """Nested lists of numbers: same shape, and close element by element."""
    a, e = np.array(actual, dtype=np.float64), np.array(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape}, expected {e.shape}"
    np.testing.assert_allclose(a, e, rtol=rel, atol=abs_)


def assert_same(actual: Any, expected: Any, rtol: float = RTOL, atol: float = ATOL) -> None:
    difference = first_difference(actual, expected, rtol=rtol, atol=atol)
    assert difference is None, difference


def _kinked(activation: Any) -> bool:
    kind = activation if isinstance(activation, str) else (activation or {}).get("kind", "relu")
    return kind in ("relu", "leaky_relu")


def _pool_windows(scenario: dict, map_h: int, map_w: int) -> list[list[tuple[int, int]]]:
    geometry = pool_geometry(scenario.get("pool", "none"), map_h, map_w)
    if geometry is None or geometry[0] != "max":
        return []
    _, ph, pw, sh, sw = geometry
    return [
        [(oy * sh + i, ox * sw + j) for i in range(ph) for j in range(pw)]
        for oy in range((map_h - ph) // sh + 1)
        for ox in range((map_w - pw) // sw + 1)
    ]


def _relu(scenario: dict) -> bool:
    return scenario.get("activation", "relu") == "relu"


def near_nondifferentiable(scenario: dict, step: dict, margin: float) -> bool:
    """True when some pre-activation is within `margin` of a (leaky) ReLU kink,
    or some max-pool window's two largest values differ by less than `margin`, unless the
    tied cells are dead ReLU units (which pass no gradient whichever one wins)."""
    z = np.array(step["conv"])
    a = np.array(step["activated"])
    if _kinked(scenario.get("activation", "relu")) and np.any(np.abs(z) < margin):
        return True
    for window in _pool_windows(scenario, z.shape[1], z.shape[2]):
        for k in range(z.shape[0]):
            ranked = sorted((a[k][cell] for cell in window), reverse=True)
            if len(ranked) > 1 and ranked[0] - ranked[1] < margin:
                cells = [cell for cell in window if a[k][cell] >= ranked[0] - margin]
                # Tied cells that are all dead ReLU units pass no gradient either way.
                if not all(z[k][cell] <= -margin and _relu(scenario) for cell in cells):
                    return True
    return False


def rounding_ambiguous(scenario: dict, expected: dict) -> bool:
    """A kink or max-pool tie that only the last bits of a rounded sum decide.

    `expected` is reference_run(scenario, conv_magnitudes=True). Flags a pre-activation z != 0
    of a (leaky) ReLU with |z| below 1e-12 times the size of its terms, and a max-pool window
    whose two largest activated values are within 1e-12 of each other although their
    pre-activations differ (e.g. two large z both saturating a sigmoid to 1.0). Exact zeros and
    exact ties from equal pre-activations are kept: the strategy's dyadic values make them
    exact in every summation order, so the contract's tie rules decide them. Once filters have learned
    (from the first update on) they are no longer dyadic, and an exact tie can come out of another
    summation order (PyTorch's) as two different floats: such ties are flagged too."""
    training = scenario.get("training", {})
    first_update = 1 if training.get("update", "per_sample") == "per_sample" else len(scenario["inputs"])
    for n, step in enumerate(expected["steps"]):
        learned = training.get("update_filters", False) and n >= first_update
        z = np.array(step["conv"])
        a = np.array(step["activated"])
        size = np.array(step["conv_magnitude"])
        if _kinked(scenario.get("activation", "relu")):
            if np.any((np.abs(z) <= 1e-12 * size) & (z != 0)):
                return True
        for window in _pool_windows(scenario, z.shape[1], z.shape[2]):
            for k in range(z.shape[0]):
                top = max(window, key=lambda cell: a[k][cell])
                for cell in window:
                    if z[k][cell] == z[k][top] and not learned:
                        continue  # the same number in every implementation: a true tie
                    tolerance = 1e-12 * max(1.0, abs(a[k][top]), size[k][top], size[k][cell])
                    if a[k][top] - a[k][cell] <= tolerance:
                        return True
    return False


def _without_magnitudes(expected: dict) -> dict:
    trimmed = copy.deepcopy(expected)
    for step in trimmed["steps"]:
        step.pop("conv_magnitude", None)
    return trimmed


# ----------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(scenarios())
def test_engine_matches_reference(scenario: dict) -> None:
    _check_against_reference(scenario)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(st.one_of(scenarios(focus="max_ties"), scenarios(focus="avg_overlap")))
def test_engine_matches_reference_on_pooling_ties_and_overlaps(scenario: dict) -> None:
    _check_against_reference(scenario)


def _check_against_reference(scenario: dict) -> None:
    expected = reference_run(scenario, conv_magnitudes=True)
    assume(not rounding_ambiguous(scenario, expected))
    actual = engine_values(scenario)
    json.dumps(actual, allow_nan=False)  # plain JSON: Python numbers, lists, dicts only
    assert_same(actual, _without_magnitudes(expected))


def _perturbed_loss(scenario: dict, locate, delta: float) -> float:
    """steps[0].loss of the engine after adding delta to the parameter `locate` picks out."""
    changed = copy.deepcopy(scenario)
    changed["inputs"] = changed["inputs"][:1]
    changed["training"]["iterations"] = 1
    container, key = locate(changed)
    container[key] = container[key] + delta
    return engine_values(changed)["steps"][0]["loss"]


def _parameter_locators(scenario: dict):
    """(name, locate, gradient path) for every dense weight, dense bias, filter weight and bias."""
    dense = scenario["dense"]
    for c, row in enumerate(dense["weights"]):
        for n in range(len(row)):
            yield (
                f"dense.weights[{c}][{n}]",
                lambda d, c=c, n=n: (d["dense"]["weights"][c], n),
                ("grad_dense_weights", c, n),
            )
    for c in range(len(dense["biases"])):
        yield (f"dense.biases[{c}]", lambda d, c=c: (d["dense"]["biases"], c), ("grad_dense_biases", c))
    for k, spec in enumerate(scenario["conv"]["filters"]):
        weights = np.array(spec["weights"])
        for index in np.ndindex(*weights.shape):

            def locate(d, k=k, index=index):
                container = d["conv"]["filters"][k]["weights"]
                for i in index[:-1]:
                    container = container[i]
                return container, index[-1]

            yield (f"conv.filters[{k}].weights{list(index)}", locate, ("grad_filters", k, *index))

        def locate_bias(d, k=k):
            d["conv"]["filters"][k].setdefault("bias", 0.0)
            return d["conv"]["filters"][k], "bias"

        yield (f"conv.filters[{k}].bias", locate_bias, ("grad_filter_biases", k))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(scenarios(max_hw=5, max_filters=2, max_classes=3, max_inputs=2, max_iterations=2))
def test_gradients_match_finite_differences(scenario: dict) -> None:
    trace = engine_values(scenario)
    step = trace["steps"][0]
    assume(not near_nondifferentiable(scenario, step, margin=1e-4))
    h = 1e-6
    scale = max(1.0, max(abs(s) for s in step["logits"]), abs(step["loss"]))
    for name, locate, gradient_path in _parameter_locators(scenario):
        L_plus = _perturbed_loss(scenario, locate, h)
        L_minus = _perturbed_loss(scenario, locate, -h)
        dL_numeric = (L_plus - L_minus) / (2 * h)
        dL_engine = step[gradient_path[0]]
        for i in gradient_path[1:]:
            dL_engine = dL_engine[i]
        tolerance = 1e-6 * (1 + abs(dL_engine)) + 1e-9 * scale
        assert abs(dL_numeric - dL_engine) <= tolerance, (
            f"dL/d{name}: engine {dL_engine!r}, central difference {dL_numeric!r}"
        )


@PROPERTY_SETTINGS
@given(scenarios())
def test_updates_are_sgd_on_the_steps_gradients(scenario: dict) -> None:
    """Each update is the previous parameters minus eta times the (summed, averaged) gradients
    the steps report, with the filters frozen unless update_filters; all read from the engine."""
    trace = engine_values(scenario)
    training = scenario["training"]
    eta = training["learning_rate"]
    mode = training.get("update", "per_sample")
    update_filters = training.get("update_filters", False)
    n_inputs = len(scenario["inputs"])
    iterations = training.get("iterations", 1)
    W = np.array(scenario["dense"]["weights"], dtype=np.float64)
    B = np.array(scenario["dense"]["biases"], dtype=np.float64)
    w = [np.array(spec["weights"], dtype=np.float64) for spec in scenario["conv"]["filters"]]
    b = np.array([spec.get("bias", 0.0) for spec in scenario["conv"]["filters"]], dtype=np.float64)
    steps, updates = trace["steps"], trace["updates"]
    assert len(steps) == iterations * n_inputs
    assert len(updates) == iterations * (n_inputs if mode == "per_sample" else 1)
    groups = (
        [[i] for i in range(len(steps))]
        if mode == "per_sample"
        else [list(range(t * n_inputs, (t + 1) * n_inputs)) for t in range(iterations)]
    )
    for update, group in zip(updates, groups, strict=True):
        scale = 1.0 / len(group) if mode == "batch_mean" else 1.0
        W = W - eta * scale * sum(np.array(steps[i]["grad_dense_weights"]) for i in group)
        B = B - eta * scale * sum(np.array(steps[i]["grad_dense_biases"]) for i in group)
        if update_filters:
            w = [w[k] - eta * scale * sum(np.array(steps[i]["grad_filters"][k]) for i in group) for k in range(len(w))]
            b = b - eta * scale * sum(np.array(steps[i]["grad_filter_biases"]) for i in group)
        last = steps[group[-1]]
        assert update["iteration"] == last["iteration"]
        assert update["after"] == (last["sample"] if mode == "per_sample" else None)
        assert_same(update["dense_weights"], W.tolist(), rtol=1e-9, atol=1e-10)
        assert_same(update["dense_biases"], B.tolist(), rtol=1e-9, atol=1e-10)
        assert_same(update["filters"], [wk.tolist() for wk in w], rtol=1e-9, atol=1e-10)
        assert_same(update["filter_biases"], b.tolist(), rtol=1e-9, atol=1e-10)


@PROPERTY_SETTINGS
@given(scenarios())
def test_final_is_a_forward_pass_with_the_last_parameters(scenario: dict) -> None:
    trace = engine_values(scenario)
    last = trace["updates"][-1]
    rerun = copy.deepcopy(scenario)
    rerun["dense"] = {"weights": last["dense_weights"], "biases": last["dense_biases"]}
    for spec, weights, bias in zip(rerun["conv"]["filters"], last["filters"], last["filter_biases"], strict=True):
        spec["weights"], spec["bias"] = weights, bias
    rerun["training"]["iterations"] = 1
    steps = []
    for spec in scenario["inputs"]:  # one input per run: steps[0] uses exactly these parameters
        rerun["inputs"] = [spec]
        steps.append(engine_values(rerun)["steps"][0])
    expected = [{"sample": s["sample"], "logits": s["logits"], "probs": s["probs"], "loss": s["loss"]} for s in steps]
    assert_same(trace["final"], expected)


# ----------------------------------------------------------------------------- examples


def _base(**overrides: Any) -> dict:
    scenario: dict[str, Any] = {
        "name": "hand-example",
        "title": "Worked by hand",
        "classes": ["yes", "no"],
        "inputs": [{"name": "x1", "label": "yes", "pixels": [[1, 2], [3, 4]]}],
        "conv": {"filters": [{"name": "A", "weights": [[2]], "bias": 1}]},
        "activation": "relu",
        "pool": "none",
        "dense": {"weights": [[0.1, 0, 0, 0], [0, 0, 0, 0.1]], "biases": [0, 0]},
        "training": {"learning_rate": 0.5, "update_filters": True},
    }
    scenario.update(overrides)
    return scenario


def test_one_by_one_filter_by_hand() -> None:
    trace = engine_values(_base())
    step = trace["steps"][0]
    assert step["conv"] == [[[3.0, 5.0], [7.0, 9.0]]]  # 2 x + 1
    assert step["features"] == [3.0, 5.0, 7.0, 9.0]
    assert step["logits"] == pytest.approx([0.3, 0.9], abs=1e-15)
    p_yes = 1 / (1 + math.exp(0.6))
    assert step["probs"] == pytest.approx([p_yes, 1 - p_yes], rel=1e-12)
    assert step["loss"] == pytest.approx(math.log(1 + math.exp(0.6)), rel=1e-12)
    g = [p_yes - 1, 1 - p_yes]  # p - y
    assert step["grad_logits"] == pytest.approx(g, rel=1e-12)
    assert_close(step["grad_dense_weights"], [[g[0] * f for f in (3, 5, 7, 9)], [g[1] * f for f in (3, 5, 7, 9)]])
    # dL/dz = [[0.1 g0, 0], [0, 0.1 g1]]; dL/dw = sum dL/dz * x; dL/db = sum dL/dz = 0.1 (g0 + g1)
    dL_dw = 0.1 * g[0] * 1 + 0.1 * g[1] * 4
    assert np.array(step["grad_filters"]).shape == (1, 1, 1)  # the filter's own 2D shape
    assert step["grad_filters"][0][0][0] == pytest.approx(dL_dw, rel=1e-12)
    assert step["grad_filter_biases"][0] == pytest.approx(0.0, abs=1e-15)
    update = trace["updates"][0]
    assert update["after"] == "x1" and update["iteration"] == 1
    assert update["filters"][0][0][0] == pytest.approx(2 - 0.5 * dL_dw, rel=1e-12)
    assert update["dense_biases"] == pytest.approx([-0.5 * g[0], -0.5 * g[1]], rel=1e-12)


def test_padding_one_keeps_the_size() -> None:
    ones = [[1.0] * 3 for _ in range(3)]
    scenario = _base(
        inputs=[{"name": "x1", "label": "yes", "pixels": ones}],
        conv={"padding": 1, "filters": [{"name": "A", "weights": ones}]},
        dense={"weights": [[0.0] * 9, [0.0] * 9], "biases": [0, 0]},
    )
    step = engine_values(scenario)["steps"][0]
    assert step["conv"] == [[[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]]
    assert step["probs"] == [0.5, 0.5]


def test_stride_two_output_size_and_unused_border() -> None:
    pixels = [[float(5 * i + j) for j in range(5)] for i in range(5)]  # 0 .. 24
    scenario = _base(
        inputs=[{"name": "x1", "label": "yes", "pixels": pixels}],
        conv={"stride": 2, "filters": [{"name": "A", "weights": [[1, 0], [0, 0]], "bias": 0}]},
        activation="none",
        dense={"weights": [[0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0]], "biases": [0, 0]},
    )
    step = engine_values(scenario)["steps"][0]
    assert step["conv"] == [[[0.0, 2.0], [10.0, 12.0]]]  # (5 - 2) // 2 + 1 = 2
    dL_dz = 0.1 * step["grad_logits"][0]  # the same in every cell (activation none)
    # dL/dw[i][j] = dL/dz * the sum of the pixels under tap (i, j); row 4 and column 4 unused
    expected = [
        [dL_dz * (0 + 2 + 10 + 12), dL_dz * (1 + 3 + 11 + 13)],
        [dL_dz * (5 + 7 + 15 + 17), dL_dz * (6 + 8 + 16 + 18)],
    ]
    assert_close(step["grad_filters"][0], expected)


def test_max_pool_tie_sends_the_gradient_to_the_first_maximum() -> None:
    # Channel 0 makes the tie (cells (0,0), (0,1), (1,1) all equal 1); channel 1 has zero
    # weight but tells the cells apart in the filter gradient.
    scenario = _base(
        inputs=[{"name": "x1", "label": "yes", "pixels": [[[1, 1], [0, 1]], [[5, 6], [7, 8]]]}],
        conv={"filters": [{"name": "A", "weights": [[[1]], [[0]]]}]},
        activation="none",
        pool={"kind": "max", "size": 2},
        dense={"weights": [[1.0], [-1.0]], "biases": [0, 0]},
    )
    step = engine_values(scenario)["steps"][0]
    assert step["pooled"] == [[[1.0]]]
    dL_dq = step["grad_logits"][0] - step["grad_logits"][1]
    assert_close(step["grad_filters"][0], [[[dL_dq * 1]], [[dL_dq * 5]]])  # not 8 (last max)


def test_overlapping_avg_pool_accumulates_and_floor_mode_drops_the_border() -> None:
    # 1 x 1 filter, no activation: z = x. avg 2x2 windows with stride 1 on a 3 x 3 map
    # overlap in the centre; a 2x2 window with stride 2 covers only the top-left corner.
    pixels = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
    overlapping = _base(
        inputs=[{"name": "x1", "label": "yes", "pixels": pixels}],
        conv={"filters": [{"name": "A", "weights": [[1]]}]},
        activation="none",
        pool={"kind": "avg", "size": [2, 2], "stride": 1},
        dense={"weights": [[1, 1, 1, 1], [0, 0, 0, 0]], "biases": [0, 0]},
    )
    step = engine_values(overlapping)["steps"][0]
    assert step["pooled"] == [[[3.0, 4.0], [6.0, 7.0]]]
    g = step["grad_logits"][0]
    coverage = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]  # windows covering each cell
    dL_dw = sum(g / 4 * coverage[i][j] * pixels[i][j] for i in range(3) for j in range(3))
    assert step["grad_filters"][0][0][0] == pytest.approx(dL_dw, rel=1e-12)
    assert step["grad_filter_biases"][0] == pytest.approx(4 * g, rel=1e-12)

    floor = copy.deepcopy(overlapping)
    floor["pool"] = {"kind": "avg", "size": 2}
    floor["dense"] = {"weights": [[1], [0]], "biases": [0, 0]}
    step = engine_values(floor)["steps"][0]
    assert step["pooled"] == [[[3.0]]]
    g = step["grad_logits"][0]
    assert step["grad_filters"][0][0][0] == pytest.approx(g / 4 * (1 + 2 + 4 + 5), rel=1e-12)
    assert step["grad_filter_biases"][0] == pytest.approx(g, rel=1e-12)


def test_leaky_relu_derivative_at_zero_is_the_slope_and_relu_is_zero() -> None:
    # z = w x + b with x = 1, w = 1, b = -1: exactly 0.
    scenario = _base(
        inputs=[{"name": "x1", "label": "yes", "pixels": [[1.0]]}],
        conv={"filters": [{"name": "A", "weights": [[1.0]], "bias": -1.0}]},
        activation={"kind": "leaky_relu", "slope": 0.25},
        dense={"weights": [[1.0], [0.0]], "biases": [0, 0]},
    )
    step = engine_values(scenario)["steps"][0]
    assert step["conv"] == [[[0.0]]]
    g = step["grad_logits"][0]
    assert step["grad_filter_biases"] == pytest.approx([0.25 * g], rel=1e-12)
    scenario["activation"] = "relu"
    step = engine_values(scenario)["steps"][0]
    assert step["grad_filter_biases"] == [0.0]
    assert step["grad_filters"] == [[[0.0]]]


def test_global_pool_and_batch_modes_on_the_reference() -> None:
    # A fixed scenario exercising global max pooling, 3 channels and both batch modes.
    rng = np.random.default_rng(7)
    scenario = _base(
        classes=["a", "b", "c"],
        inputs=[
            {"name": f"x{i}", "label": "abc"[i], "pixels": rng.uniform(-1, 1, (3, 4, 4)).tolist()} for i in range(3)
        ],
        conv={
            "padding": 1,
            "filters": [{"name": n, "weights": rng.uniform(-1, 1, (3, 2, 2)).tolist(), "bias": 0.1} for n in "AB"],
        },
        activation="tanh",
        pool={"kind": "max", "size": "global"},
        dense={"weights": rng.uniform(-1, 1, (3, 2)).tolist(), "biases": [0.0, 0.1, -0.1]},
    )
    for mode in ("batch_mean", "batch_sum"):
        scenario["training"] = {"learning_rate": 0.3, "iterations": 2, "update": mode, "update_filters": True}
        actual = engine_values(scenario)
        assert [u["after"] for u in actual["updates"]] == [None, None]
        assert_same(actual, reference_run(scenario))


def test_builtin_scenarios_reproduce_the_article() -> None:
    four = symcnn.run(symcnn.load("four-images")).to_dict()
    step = four["steps"][0]
    assert step["conv"][0] == [[-2.0, 2.0, -2.0]] * 3
    assert step["activated"][0] == [[0.0, 2.0, 0.0]] * 3
    assert step["conv"][1] == [[0.0] * 3] * 3
    assert step["probs"] == pytest.approx([0.786, 0.214], abs=5e-4)
    assert step["grad_logits"] == pytest.approx([-0.214, 0.214], abs=5e-4)
    zebra = symcnn.run(symcnn.load("zebra-cat")).to_dict()
    assert_close(zebra["steps"][0]["conv"], [[[0.7]]], abs_=1e-12)
    assert_close(zebra["steps"][1]["conv"], [[[-0.3]]], abs_=1e-12)
    assert [f["sample"] for f in zebra["final"]] == ["zebra", "cat"]
    assert [round(100 * p) for p in zebra["final"][0]["probs"]] == [78, 22]
    assert [round(100 * p) for p in zebra["final"][1]["probs"]] == [55, 45]


def test_softmax_and_loss_are_stable_for_huge_logits() -> None:
    # Logits +-800: exp(800) overflows a double, so only a shifted softmax / log-sum-exp works.
    scenario = _base(
        inputs=[
            {"name": "x1", "label": "no", "pixels": [[1, 2], [3, 4]]},
            {"name": "x2", "label": "yes", "pixels": [[1, 2], [3, 4]]},
        ],
        dense={"weights": [[0, 0, 0, 0], [0, 0, 0, 0]], "biases": [800.0, -800.0]},
        training={"learning_rate": 0.1, "update": "batch_sum"},
    )
    steps = engine_values(scenario)["steps"]
    assert steps[0]["probs"] == [1.0, 0.0]
    assert steps[0]["loss"] == 1600.0  # -log p_no = 800 - (-800)
    assert steps[0]["grad_logits"] == [1.0, -1.0]
    assert steps[1]["loss"] == 0.0
