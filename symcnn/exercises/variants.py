"""Exercise variants: a scenario's structure with new numbers drawn from a seed, chosen for hand work.

Variant k of seed s is drawn from ``numpy.random.default_rng([s, k])`` alone, so it is the same whatever
the batch size and however many processes share the batch. A draw that would make a question degenerate
(an all-zero feature map, a max-pool tie that decides where a gradient goes, a probability of the first
sample below 0.01 or above 0.99, or at ``easy``/``medium`` a conv, activation or pooling value with more
than two decimals) is redrawn from the same generator, unless the scenario's ``exercise.allow`` keeps
that kind.
This module needs NumPy only: exact checks use fractions.Fraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..engine.numeric import Trace, run
from ..errors import ScenarioError
from ..scenario.model import Scenario, pool_window, validate

MAX_DRAWS = 1000  # draws of images and filters
DENSE_DRAWS = 20  # draws of the dense layer for one set of feature maps, at each scale
DENSE_SHRINK = (1, 10, 100)  # when every draw saturates (wide dense layers), weights with one more decimal
SATURATED = 0.01  # probabilities stay in [0.01, 0.99]: none rounds to 0 or 1, none needs 5 digits by hand
NICE = 100  # easy and medium: every conv, activation and pooling value is a multiple of 1/100


@dataclass(frozen=True)
class Grid:
    """Numbers k / scale for whole k in [low, high] (scale 1: integers, 10: one decimal, ...)."""

    low: int
    high: int
    scale: int = 1
    nonzero: bool = False

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        choices = [k for k in range(self.low, self.high + 1) if k or not self.nonzero]
        numerators = rng.choice(choices, size=shape)
        return np.vectorize(lambda k: Fraction(int(k), self.scale), otypes=[object])(numerators)


@dataclass(frozen=True)
class Level:
    pixels: dict[str, Grid]  # by the kind of the scenario's own images: binary, integer, decimal
    filters: Grid
    filter_bias: Grid | None  # None: keep a bias of 0 when the scenario's biases are all 0
    dense: Grid
    dense_bias: Grid
    nice: bool  # conv, activation and pooling values must be multiples of 1/NICE


LEVELS = {
    "easy": Level(
        {"binary": Grid(0, 1), "integer": Grid(0, 2), "decimal": Grid(0, 10, 10)},
        filters=Grid(-1, 1),
        filter_bias=None,
        dense=Grid(-5, 5, 10, nonzero=True),
        dense_bias=Grid(-2, 2, 10),
        nice=True,
    ),
    "medium": Level(
        {"binary": Grid(0, 2), "integer": Grid(0, 3), "decimal": Grid(0, 10, 10)},
        filters=Grid(-2, 2),
        filter_bias=Grid(-1, 1),
        dense=Grid(-3, 3, 10, nonzero=True),
        dense_bias=Grid(-5, 5, 10),
        nice=True,
    ),
    "hard": Level(
        {"binary": Grid(0, 10, 10), "integer": Grid(0, 10, 10), "decimal": Grid(0, 100, 100)},
        filters=Grid(-10, 10, 10),
        filter_bias=Grid(-5, 5, 10),
        dense=Grid(-100, 100, 100, nonzero=True),
        dense_bias=Grid(-50, 50, 100),
        nice=False,
    ),
}
DIFFICULTIES = tuple(LEVELS)
REASONS = {
    "zero-maps": "an all-zero feature map",
    "pool-ties": "a max-pool tie",
    "saturated": "a first-sample probability below 0.01 or above 0.99",
    "decimals": "a conv, activation or pooling value with more than two decimals",
}


@dataclass(frozen=True)
class Variant:
    index: int  # 1-based, as the sheets number them
    seed: int
    difficulty: str
    data: dict  # the scenario file's content
    scenario: Scenario
    trace: Trace
    draws: int  # how many draws it took


def pixel_kind(sc: Scenario) -> str:
    pixels = np.concatenate([x.pixels.ravel() for x in sc.inputs])
    if np.all(pixels == np.round(pixels)):
        return "binary" if pixels.min() >= 0 and pixels.max() <= 1 else "integer"
    return "decimal"


def draw_maps(sc: Scenario, level: Level, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Exact (Fraction) images, filters and filter biases of the scenario's shapes."""
    k = len(sc.conv.filters)
    keep_zero_bias = level.filter_bias is None and all(f.bias == 0 for f in sc.conv.filters)
    bias_grid = level.filter_bias or Grid(-1, 1)
    return {
        "pixels": level.pixels[pixel_kind(sc)].draw(rng, (len(sc.inputs), *sc.inputs[0].pixels.shape)),
        "filters": level.filters.draw(rng, (k, *sc.conv.filters[0].weights.shape)),
        "filter_biases": np.full(k, Fraction(0), dtype=object) if keep_zero_bias else bias_grid.draw(rng, (k,)),
    }


def draw_dense(sc: Scenario, level: Level, rng: np.random.Generator, shrink: int = 1) -> dict[str, np.ndarray]:
    """Exact dense weights and biases; ``shrink`` 10 makes each one tenth as large (one more decimal)."""
    weights, biases = (Grid(g.low, g.high, g.scale * shrink, g.nonzero) for g in (level.dense, level.dense_bias))
    return {
        "dense_weights": weights.draw(rng, sc.dense.weights.shape),
        "dense_biases": biases.draw(rng, sc.dense.biases.shape),
    }


# ---------------------------------------------------------------- exact feature maps


def exact_maps(sc: Scenario, x: np.ndarray, w: np.ndarray, b: np.ndarray):
    """Conv, activation and pooled maps of one image in exact arithmetic (Fractions), plus the maps
    whose order decides max-pool winners (the activation itself, or the conv values where the
    activation is irrational but increasing)."""
    channels, height, width = x.shape
    p, s = sc.conv.padding, sc.conv.stride
    padded = np.full((channels, height + 2 * p, width + 2 * p), Fraction(0), dtype=object)
    padded[:, p : p + height, p : p + width] = x
    kh, kw = w.shape[2:]
    oh, ow = sc.conv_shape
    z = np.empty((w.shape[0], oh, ow), dtype=object)
    for f, i, j in np.ndindex(z.shape):
        z[f, i, j] = (padded[:, i * s : i * s + kh, j * s : j * s + kw] * w[f]).sum() + b[f]
    kind = sc.activation.kind
    if kind == "relu":
        a = np.vectorize(lambda v: max(v, Fraction(0)), otypes=[object])(z)
    elif kind == "leaky_relu":
        slope = Fraction(repr(sc.activation.slope))
        a = np.vectorize(lambda v: v if v > 0 else slope * v, otypes=[object])(z)
    elif kind == "none":
        a = z
    else:  # sigmoid, tanh: not rational; increasing, so z orders the cells the same way
        return z, None, None, pool_ties(sc, z, strict=True)
    return z, a, pool_maps(sc, a), pool_ties(sc, a, strict=kind != "relu")


def windows(sc: Scenario, shape: tuple[int, int]):
    (ph, pw), (sh, sw) = pool_window(sc.pool, shape)
    oh, ow = sc.pooled_shape
    for i, j in np.ndindex(oh, ow):
        yield i, j, (slice(i * sh, i * sh + ph), slice(j * sw, j * sw + pw))


def pool_maps(sc: Scenario, a: np.ndarray) -> np.ndarray:
    if sc.pool.kind == "none":
        return a
    m = np.empty((a.shape[0], *sc.pooled_shape), dtype=object)
    for f in range(a.shape[0]):
        for i, j, (rows, cols) in windows(sc, a.shape[1:]):
            cells = list(a[f, rows, cols].flat)
            m[f, i, j] = max(cells) if sc.pool.kind == "max" else sum(cells, Fraction(0)) / len(cells)
    return m


def pool_ties(sc: Scenario, a: np.ndarray, strict: bool) -> bool:
    """A max-pool window whose maximum is shared by two cells, where that decides a gradient a student
    works out: only when filters learn (else the tied value is all that matters), and for ReLU only
    above 0 (below, the gradient is 0 whichever cell wins)."""
    if sc.pool.kind != "max" or not sc.training.update_filters:
        return False
    for f in range(a.shape[0]):
        for _, _, (rows, cols) in windows(sc, a.shape[1:]):
            cells = list(a[f, rows, cols].flat)
            top = max(cells)
            if cells.count(top) > 1 and (strict or top > 0):
                return True
    return False


def map_problems(sc: Scenario, numbers: dict, level: Level) -> set[str]:
    """What makes the feature maps of a draw degenerate (keys of REASONS), in exact arithmetic."""
    found = set()
    for x in numbers["pixels"]:
        z, a, m, tied = exact_maps(sc, x, numbers["filters"], numbers["filter_biases"])
        if tied:
            found.add("pool-ties")
        maps = [z] if a is None else [a, m]
        if any(not any(v != 0 for v in layer[f].flat) for layer in maps for f in range(layer.shape[0])):
            found.add("zero-maps")
        if level.nice and a is not None and any((v * NICE).denominator != 1 for v in (*z.flat, *a.flat, *m.flat)):
            found.add("decimals")
    return found - set(sc.exercise.get("allow", ()))


def saturated(sc: Scenario, trace: Trace) -> bool:
    """A probability of the first sample below 0.01 or above 0.99 (close to rounding to 0 or 1): the
    questions ask for its logit, probability, loss and gradient. Later passes may saturate (a wide dense
    layer learns fast); no question depends on them."""
    if "saturated" in sc.exercise.get("allow", ()):
        return False
    probs = trace.steps[0].probs
    return bool(probs.min() < SATURATED or probs.max() > 1 - SATURATED)


# ---------------------------------------------------------------- the scenario file of a variant


def plain(array: np.ndarray):
    """Fractions as the numbers a scenario file holds: ints where whole, else short decimals (0.3)."""
    return np.vectorize(lambda v: int(v) if v.denominator == 1 else float(v), otypes=[object])(array).tolist()


def scenario_data(sc: Scenario, numbers: dict, seed: int, index: int, difficulty: str) -> dict:
    """The variant as a scenario file: the structure of ``sc``, the drawn numbers, no claims."""
    pixels = plain(numbers["pixels"])
    filters = plain(numbers["filters"])
    pool = sc.pool
    return {
        "name": f"{sc.name}-s{seed}-v{index}",
        "title": f"Exercise {index}: {sc.title}",
        "description": f"Variant {index} of seed {seed}, drawn at {difficulty} difficulty from the scenario {sc.name}.",
        "classes": list(sc.classes),
        "inputs": [
            {"name": x.name, "label": x.label, "pixels": p[0] if sc.channels == 1 else p}
            for x, p in zip(sc.inputs, pixels)
        ],
        "conv": {
            "stride": sc.conv.stride,
            "padding": sc.conv.padding,
            "filters": [
                {"name": f.name, "weights": w[0] if f.ndim == 2 else w, "bias": bias}
                for f, w, bias in zip(sc.conv.filters, filters, plain(numbers["filter_biases"]))
            ],
        },
        "activation": (
            {"kind": "leaky_relu", "slope": sc.activation.slope}
            if sc.activation.kind == "leaky_relu"
            else sc.activation.kind
        ),
        "pool": (
            "none"
            if pool.kind == "none"
            else {"kind": pool.kind, "size": "global"}
            if pool.is_global
            else {"kind": pool.kind, "size": list(pool.size), "stride": list(pool.stride)}
        ),
        "dense": {"weights": plain(numbers["dense_weights"]), "biases": plain(numbers["dense_biases"])},
        "training": training_data(sc),
        "display": dict(sc.display),
    }


def training_data(sc: Scenario) -> dict:
    """The scenario's training keys as a variant file holds them (the optimizer when not plain SGD)."""
    t = sc.training
    data = {
        "learning_rate": t.learning_rate,
        "iterations": t.iterations,
        "update": t.update,
        "update_filters": t.update_filters,
    }
    if t.optimizer.kind != "sgd":
        data["optimizer"] = t.optimizer.as_spec()
    return data


def draw_variant(sc: Scenario, seed: int, index: int, difficulty: str = "easy") -> Variant:
    """Variant ``index`` (1-based) of ``seed``, redrawn from its own generator until no question is
    degenerate: first images and filters until the feature maps are good, then the dense layer until
    no probability saturates (a few dense draws per set of maps, smaller weights if they all saturate,
    then new maps)."""
    level = LEVELS[difficulty]
    rng = np.random.default_rng([seed, index])
    seen: dict[str, int] = {}
    draws = 0
    while draws < MAX_DRAWS:
        draws += 1
        maps = draw_maps(sc, level, rng)
        found = map_problems(sc, maps, level)
        for shrink in DENSE_SHRINK if not found else ():
            for _ in range(DENSE_DRAWS):
                numbers = {**maps, **draw_dense(sc, level, rng, shrink)}
                data = scenario_data(sc, numbers, seed, index, difficulty)
                variant = validate(data, data["name"], data["name"])
                trace = run(variant)
                if not saturated(sc, trace):
                    return Variant(index, seed, difficulty, data, variant, trace, draws)
            found = {"saturated"}
        for reason in found:
            seen[reason] = seen.get(reason, 0) + 1
    common = max(seen, key=seen.get)
    raise ScenarioError(
        sc.source or sc.name,
        f"no usable {difficulty} variant in {MAX_DRAWS} draws of images and filters; most had {REASONS[common]} "
        f"({seen[common]} of {MAX_DRAWS}). Try another --difficulty"
        + (f", or keep them with exercise: {{allow: [{common}]}}" if common != "decimals" else ""),
    )
