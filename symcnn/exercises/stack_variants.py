"""Exercise variants of a `layers` stack: the stack's structure with new numbers, drawn and redrawn as
variants.py does for the legacy keys (the same difficulty levels, grids, seeds and reasons).

Images and every conv layer's filters and biases are drawn first and run through the stack exactly
(the exact engine's own forward pass, Fractions while the arithmetic is rational); a draw is redrawn when
a conv, activation or pooling map of some image is all zero, when a max-pool window's maximum is shared
by two cells (the gradient into the input follows the winner, so a tie always matters here), or, at
easy and medium, when a rational map value has more than two decimals. Then every dense layer is drawn
until no probability of the first sample saturates and no gradient the questions ask about is all zero.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..engine.algebra import comparable
from ..engine.numeric import Trace, run
from ..engine.stack import StackDeriver
from ..errors import ScenarioError
from ..layers import pool as pool_layer
from ..scenario.model import Scenario, validate
from ..verify import check
from .variants import (
    DENSE_DRAWS,
    DENSE_SHRINK,
    LEVELS,
    MAX_DRAWS,
    NICE,
    REASONS,
    Grid,
    Level,
    Variant,
    draw_variant,
    pixel_kind,
    plain,
    saturated,
    training_data,
)


def draw_convs(sc: Scenario, level: Level, rng: np.random.Generator) -> dict:
    """Exact (Fraction) images and, per conv layer (by its position in ``layers``), filters and biases."""
    numbers: dict = {"pixels": level.pixels[pixel_kind(sc)].draw(rng, (len(sc.inputs), *sc.inputs[0].pixels.shape))}
    for n, layer in enumerate(sc.layers):
        if layer.layer != "conv":
            continue
        w, b = layer.parameters()
        keep_zero_bias = level.filter_bias is None and not np.any(b)
        bias_grid = level.filter_bias or Grid(-1, 1)
        numbers[n] = (
            level.filters.draw(rng, w.shape),
            np.full(len(b), Fraction(0), dtype=object) if keep_zero_bias else bias_grid.draw(rng, b.shape),
        )
    return numbers


def draw_denses(sc: Scenario, level: Level, rng: np.random.Generator, shrink: int = 1) -> dict:
    """Exact weights and biases of every dense layer; ``shrink`` 10 makes each one tenth as large."""
    weights, biases = (Grid(g.low, g.high, g.scale * shrink, g.nonzero) for g in (level.dense, level.dense_bias))
    return {
        n: (weights.draw(rng, layer.weights.shape), biases.draw(rng, layer.biases.shape))
        for n, layer in enumerate(sc.layers)
        if layer.layer == "dense"
    }


# ---------------------------------------------------------------- degenerate draws


def map_problems(sc: Scenario, D: StackDeriver, numbers: dict, level: Level) -> set[str]:
    """What makes the maps of a draw degenerate (keys of REASONS), from the exact forward pass of each image
    (the dense layers keep the scenario's own numbers: only the maps before them are looked at)."""
    params = [numbers.get(n, p) for n, p in enumerate(D.initial())]
    found = set()
    for x in numbers["pixels"]:
        records = D.forward(params, x.astype(np.float64), 0)["records"]
        for n in range(D.first_dense):
            layer, out = sc.layers[n], records[n]["output"]
            if any(not any(v != 0 for v in out[k].flat) for k in range(out.shape[0])):
                found.add("zero-maps")
            exact = all(isinstance(v, (Fraction, int)) for v in out.flat)
            if level.nice and exact and any((Fraction(v) * NICE).denominator != 1 for v in out.flat):
                found.add("decimals")
            if layer.layer == "pool" and layer.kind == "max" and ties(sc, n, layer, records[n]["input"]):
                found.add("pool-ties")
    return found - set(sc.exercise.get("allow", ()))


def ties(sc: Scenario, n: int, layer, a: np.ndarray) -> bool:
    """A max-pool window whose maximum two cells share; after a ReLU only above 0 (below, the gradient is
    0 whichever cell wins)."""
    before = sc.layers[n - 1] if n > 0 else None
    relu = before is not None and before.layer == "activation" and before.kind == "relu"
    (ph, pw), (sh, sw) = pool_layer.pool_window(layer, a.shape[1:])
    _, oh, ow = layer.output_shape(a.shape)
    for k, i, j in np.ndindex(a.shape[0], oh, ow):
        cells = comparable(list(a[k, i * sh : i * sh + ph, j * sw : j * sw + pw].flat))
        top = max(cells)
        if cells.count(top) > 1 and (not relu or top > 0):
            return True
    return False


def dead_gradients(sc: Scenario, trace: Trace) -> bool:
    """The first sample's gradient into the input, into a hidden layer or of a conv layer's filters is all
    zero (a dead ReLU unit everywhere): the questions about it would have 0 for an answer."""
    if "zero-maps" in sc.exercise.get("allow", ()):  # a dead layer is an all-zero map of its own
        return False
    step = trace.steps[0]
    arrays = [step.grad_input] + [
        entry["grad_weights"] if layer.layer == "conv" else entry["grad_output"]
        for layer, entry in zip(sc.layers, step.layers)
        if layer.layer == "conv" or (layer.layer == "dense" and layer is not sc.layers[-1])
    ]
    return any(not np.any(np.asarray(a, dtype=np.float64)) for a in arrays)


def unstable(variant: Scenario) -> bool:
    """Momentum and Adam: a step of about lr * sign(g) can put a later sample's value on a ReLU kink or a
    max-pool tie in exact arithmetic but not in floating point; SymPy and NumPy then disagree and the
    variant cannot be checked. Found by the check itself (SGD's later values are irrational: not needed)."""
    if variant.training.optimizer.kind == "sgd":
        return False
    report = check(variant)
    return bool(report.mismatches or report.missing)


# ---------------------------------------------------------------- the scenario file of a variant


def layer_data(sc: Scenario, numbers: dict) -> list[dict]:
    """The ``layers:`` list of the variant: the structure and names of ``sc``, the drawn numbers."""
    out = []
    counts: dict[str, int] = {}
    for n, layer in enumerate(sc.layers):
        kind = layer.layer
        counts[kind] = counts.get(kind, 0) + 1
        named = {} if layer.name == f"{kind}{counts[kind]}" else {"name": layer.name}
        if kind == "conv":
            w, b = numbers[n]
            body = {
                **named,
                "stride": layer.stride,
                "padding": layer.padding,
                "filters": [
                    {"name": f.name, "weights": weights[0] if f.ndim == 2 else weights, "bias": bias}
                    for f, weights, bias in zip(layer.filters, plain(w), plain(b))
                ],
            }
        elif kind == "dense":
            w, b = numbers[n]
            body = {**named, "weights": plain(w), "biases": plain(b)}
        elif kind == "activation":
            body = {"kind": layer.kind, **({"slope": layer.slope} if layer.kind == "leaky_relu" else {}), **named}
            body = body["kind"] if len(body) == 1 else body
        else:
            size = "global" if layer.is_global else list(layer.size)
            body = {"kind": layer.kind, "size": size, **({} if layer.is_global else {"stride": list(layer.stride)})}
            body.update(named)
        out.append({kind: body})
    return out


def scenario_data(sc: Scenario, numbers: dict, seed: int, index: int, difficulty: str) -> dict:
    """The variant as a scenario file: the stack of ``sc``, the drawn numbers, no claims."""
    return {
        "name": f"{sc.name}-s{seed}-v{index}",
        "title": f"Exercise {index}: {sc.title}",
        "description": f"Variant {index} of seed {seed}, drawn at {difficulty} difficulty from the scenario {sc.name}.",
        "classes": list(sc.classes),
        "inputs": [
            {"name": x.name, "label": x.label, "pixels": p[0] if x.ndim == 2 else p}
            for x, p in zip(sc.inputs, plain(numbers["pixels"]))
        ],
        "layers": layer_data(sc, numbers),
        "training": training_data(sc),
        "display": dict(sc.display),
    }


def draw_stack_variant(sc: Scenario, seed: int, index: int, difficulty: str = "easy") -> Variant:
    """Variant ``index`` (1-based) of ``seed`` of a stack, from ``default_rng([seed, index])`` alone: images
    and conv layers until the maps are good, then the dense layers (a few draws per set of maps, smaller
    weights if they all saturate), then new maps."""
    level = LEVELS[difficulty]
    rng = np.random.default_rng([seed, index])
    D = StackDeriver(sc)
    seen: dict[str, int] = {}
    draws = 0
    while draws < MAX_DRAWS:
        draws += 1
        convs = draw_convs(sc, level, rng)
        found = map_problems(sc, D, convs, level)
        for shrink in DENSE_SHRINK if not found else ():
            for _ in range(DENSE_DRAWS):
                numbers = {**convs, **draw_denses(sc, level, rng, shrink)}
                data = scenario_data(sc, numbers, seed, index, difficulty)
                variant = validate(data, data["name"], data["name"])
                trace = run(variant)
                found = {"saturated"} if saturated(sc, trace) else {"zero-maps"} if dead_gradients(sc, trace) else set()
                if not found and unstable(variant):
                    found = {"pool-ties"}
                if not found:
                    return Variant(index, seed, difficulty, data, variant, trace, draws)
        for reason in found:
            seen[reason] = seen.get(reason, 0) + 1
    common = max(seen, key=seen.get)
    raise ScenarioError(
        sc.source or sc.name,
        f"no usable {difficulty} variant in {MAX_DRAWS} draws of images and filters; most had {REASONS[common]} "
        f"({seen[common]} of {MAX_DRAWS}). Try another --difficulty"
        + (f", or keep them with exercise: {{allow: [{common}]}}" if common != "decimals" else ""),
    )


def draw_any_variant(sc: Scenario, seed: int, index: int, difficulty: str = "easy") -> Variant:
    """A variant of any scenario: a `layers` stack's drawn here, the legacy keys' by ``variants.draw_variant``
    (this module builds on that one, so the choice is made here)."""
    return (draw_stack_variant if sc.is_stack else draw_variant)(sc, seed, index, difficulty)
