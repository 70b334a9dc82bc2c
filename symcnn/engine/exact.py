"""SymPy: every quantity of the run as general form = substituted form = value.

Two levels, one truth:

- **Layer rules, in bulk.** Each layer's rule is a SymPy expression in a few local symbols (a conv
  term ``w x``, the activation, the average-pool mean, a dense term ``W f``, softmax, the loss, the SGD
  step); its derivatives are ``sympy.diff`` of it (the softmax/cross-entropy one is also simplified and
  confirmed to be ``p - y``), and ``sympy.lambdify`` compiles rule and derivatives into NumPy code over
  object arrays of exact numbers: Fractions where the maths is rational, 50-digit mpmath floats once
  exp/log enter. A 28x28 image with 8 filters is a few hundred array operations, not 150,000
  expressions.
- **Quantities, on demand.** ``step.groups["conv"][k, i, j]`` builds that one cell's ``Quantity``: its
  general form in the symbols of the layer before (``z = w11 x11 + ... + b``), the same with this step's
  numbers in the same places, and its value. The value SymPy computes from the substituted form must
  equal the bulk value, exactly where rational; a document's every equation is such a cross-check, and
  ``Derivation.quantities()`` (all of them, for small scenarios and tests) checks every cell.
  Per-cell chain-rule factors are SymPy's derivatives of the general forms (``algebra.diff``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache, cached_property

import mpmath
import numpy as np
import sympy
from sympy import Add, Mul, Piecewise, Pow, Rational, exp, log
from sympy.printing.numpy import NumPyPrinter

from ..display import Displayable
from ..errors import VerificationError
from ..progress import progress
from ..scenario.model import Activation, Scenario, pool_window, winner_cell
from .algebra import (
    DPS,
    Group,
    MaxOf,
    Quantity,
    agrees,
    chain,
    comparable,
    decimal,
    evaluate,
    exact,
    minus,
    plus,
    times,
    to_float,
    to_sympy,
)
from .notation import Notation
from .optimizer_exact import ExactOptimizer, legacy_cell

FORWARD_KEYS = ("conv", "activated", "pooled", "features", "logits", "probs", "loss")
BACKWARD_KEYS = (
    "grad_logits",
    "grad_dense_weights",
    "grad_dense_biases",
    "grad_features",
    "grad_pooled",
    "grad_activated",
    "grad_conv",
    "grad_filters",
    "grad_filter_biases",
)
PARAMETER_KEYS = ("filters", "filter_biases", "dense_weights", "dense_biases")
# symbol kind -> the group holding its values (and, for dL/d<kind>, its gradients)
VALUE_GROUP = {
    "filter": "filters",
    "filter_bias": "filter_biases",
    "dense_weight": "dense_weights",
    "dense_bias": "dense_biases",
    "conv": "conv",
    "activated": "activated",
    "pooled": "pooled",
    "feature": "features",
    "logit": "logits",
    "prob": "probs",
    "loss": "loss",
}
GRADIENT_GROUP = {
    "filter": "grad_filters",
    "filter_bias": "grad_filter_biases",
    "dense_weight": "grad_dense_weights",
    "dense_bias": "grad_dense_biases",
    "logit": "grad_logits",
    "feature": "grad_features",
    "pooled": "grad_pooled",
    "activated": "grad_activated",
    "conv": "grad_conv",
}
GRADIENT_OF = dict(
    zip(PARAMETER_KEYS, ("grad_filters", "grad_filter_biases", "grad_dense_weights", "grad_dense_biases"))
)


# ---------------------------------------------------------------- exact numbers


def exact_array(values) -> np.ndarray:
    return np.vectorize(decimal, otypes=[object])(np.asarray(values, dtype=np.float64))


ROUNDING = Fraction(1, 10**45)  # 50-digit values this close (relative) are equal in exact arithmetic


def rational(values: np.ndarray) -> bool:
    return all(isinstance(v, (Fraction, int)) for v in values.flat)


def scaled(values: np.ndarray, scale: int) -> np.ndarray:
    """Fractions times a common denominator: an array of Python ints."""
    return np.vectorize(lambda v: v.numerator * (scale // v.denominator), otypes=[object])(values)


def max_abs(values: np.ndarray) -> int:
    return max((abs(int(v)) for v in values.flat), default=0)


def floats(values: np.ndarray) -> np.ndarray:
    """50-digit floats of exact values (mpmath would convert a Fraction at every product otherwise)."""
    return np.vectorize(to_float, otypes=[object])(values)


def alike(values: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """``values`` as 50-digit floats when its partner in a product holds any (exact zeros stay exact)."""
    if rational(partner) or not rational(values):
        return values
    return np.vectorize(lambda v: to_float(v) if v else v, otypes=[object])(values)


def alike_env(env: dict) -> dict:
    """Nonzero fractions as 50-digit floats when the env holds any float (exact zeros stay exact)."""
    if all(isinstance(v, (Fraction, int)) for v in env.values()):
        return env
    with mpmath.workdps(DPS + 10):  # cells are built later, outside derive()'s precision
        return {s: to_float(v) if v else v for s, v in env.items()}


def snap(z: np.ndarray, size: np.ndarray) -> np.ndarray:
    """A 50-digit sum within rounding of 0 (relative to its terms' magnitude) is exactly 0, so that ReLU
    kinks follow exact arithmetic (rational sums are exact already)."""
    out = z.copy()
    for index, value in np.ndenumerate(z):
        if not isinstance(value, (Fraction, int)) and abs(value) <= ROUNDING * size[index]:
            out[index] = Fraction(0)
    return out


def exactify(values: np.ndarray) -> np.ndarray:
    """50-digit zeros (a product with an exact 0) become the exact 0 they are, as in SymPy (0.1 - 0.1*0 = 1/10)."""
    out = np.array(values, dtype=object)  # a copy; 0-d (the loss) too
    for index, value in np.ndenumerate(out):
        if not isinstance(value, (Fraction, int)) and not value:
            out[index] = Fraction(0)
    return out


# ---------------------------------------------------------------- rules: SymPy expressions, lambdified


def piecewise(conditions, choices):
    """Piecewise over object arrays: the first true condition's choice, cell by cell (exact numbers kept)."""
    shape = np.broadcast_shapes(*(np.shape(c) for c in (*conditions, *choices)))
    out = np.empty(shape, object)
    done = np.zeros(shape, bool)
    for condition, choice in zip(conditions, choices):
        take = np.broadcast_to(condition, shape) & ~done
        out[take] = np.broadcast_to(np.asarray(choice, dtype=object), shape)[take]
        done |= take
    return out


class ExactPrinter(NumPyPrinter):
    """NumPy code that keeps numbers exact: Rationals become Fractions, Piecewise keeps object arrays."""

    def _print_Rational(self, expr):
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Half(self, expr):
        return self._print_Rational(expr)

    def _print_Piecewise(self, expr):
        conditions = ", ".join(self._print(c) for _, c in expr.args)
        choices = ", ".join(self._print(e) for e, _ in expr.args)
        return f"piecewise(({conditions},), ({choices},))"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_Function(self, expr):  # exp, log, tanh: the exact versions of NAMESPACE, not numpy's
        return f"{expr.func.__name__}({', '.join(self._print(a) for a in expr.args)})"

    _print_exp = _print_log = _print_tanh = _print_Function


def _elementwise(function):
    return np.frompyfunc(function, 1, 1)


NAMESPACE = {  # everything the generated code calls (no `from numpy import *`: that import is slow)
    "Fraction": Fraction,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_not": np.logical_not,
    "piecewise": piecewise,
    "exp": _elementwise(mpmath.exp),
    "log": _elementwise(mpmath.log),
    "tanh": _elementwise(mpmath.tanh),
}


def compile_rule(args, expr):
    """``sympy.lambdify`` into NumPy code over exact numbers."""
    printer = ExactPrinter({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True})
    return sympy.lambdify(args, expr, modules=[NAMESPACE], printer=printer)


def activation_expr(activation: Activation, z: sympy.Symbol) -> sympy.Expr:
    kind = activation.kind
    if kind == "relu":
        return Piecewise((z, z > 0), (0, True))
    if kind == "leaky_relu":
        return Piecewise((z, z > 0), (exact(activation.slope) * z, True))
    if kind == "sigmoid":
        return 1 / (1 + exp(-z))
    if kind == "tanh":
        return sympy.tanh(z)
    return z


@dataclass(frozen=True)
class SoftmaxDerivation:
    """dL/do_c for L = -log softmax(o)_y, as SymPy differentiated and simplified it."""

    label: int
    logits: tuple[sympy.Symbol, ...]
    loss: sympy.Expr
    derivatives: tuple[sympy.Expr, ...]  # raw sympy.diff
    simplified: tuple[sympy.Expr, ...]  # after cancel (rational-function normal form)
    closed_form: tuple[sympy.Expr, ...]  # p_c - y_c, shown equal to the simplified form


@cache
def softmax_derivation(classes: tuple[str, ...], label: int) -> SoftmaxDerivation:
    """Differentiate L = -log(exp(o_y) / sum_j exp(o_j)) with SymPy and confirm dL/do_c = p_c - y_c."""
    notation = Notation()
    o = tuple(notation("logit", c) for c in classes)
    denominator = Add(*[exp(oj) for oj in o])
    loss = -log(exp(o[label]) / denominator)
    raw, simple, closed = [], [], []
    for c, oc in enumerate(o):
        derivative = sympy.diff(loss, oc)
        simplified = sympy.cancel(derivative)
        target = exp(oc) / denominator - (1 if c == label else 0)
        if sympy.cancel(simplified - target) != 0:
            raise VerificationError(f"SymPy's dL/do_{classes[c]} = {simplified} is not p - y")
        raw.append(derivative)
        simple.append(simplified)
        closed.append(target)
    return SoftmaxDerivation(label, o, loss, tuple(raw), tuple(simple), tuple(closed))


class Rules:
    """Every layer's rule and SymPy's derivatives of it, compiled once per scenario shape."""

    def __init__(self, sc: Scenario) -> None:
        w, x, W, f, z, a, eta, theta, g, s = sympy.symbols("w x W f z a eta theta g s", real=True)
        conv_term = w * x
        self.conv_term = compile_rule([w, x], conv_term)
        self.dconv_dw = compile_rule([x], sympy.diff(conv_term, w))  # x
        activation = activation_expr(sc.activation, z)
        self.activation = compile_rule([z], activation)
        self.dactivation = compile_rule([z], sympy.diff(activation, z))
        (ph, pw), _ = pool_window(sc.pool, sc.conv_shape) if sc.pool.kind != "none" else ((1, 1), (1, 1))
        cells = sympy.symbols(f"a0:{ph * pw}", real=True)
        mean = Add(*cells) / len(cells)
        self.pool_mean = compile_rule(cells, mean)
        self.dmean = compile_rule(cells, [sympy.diff(mean, cell) for cell in cells])  # 1/n for each cell
        dense_term = W * f
        self.dense_term = compile_rule([W, f], dense_term)
        self.ddense_dW = compile_rule([f], sympy.diff(dense_term, W))  # f
        self.ddense_df = compile_rule([W], sympy.diff(dense_term, f))  # W
        o = Notation()
        logits = tuple(o("logit", c) for c in sc.classes)
        denominator = Add(*[exp(oj) for oj in logits])
        self.probs = compile_rule(logits, [exp(oc) / denominator for oc in logits])  # one function, all classes
        p = sympy.Symbol("p", positive=True)
        self.loss = compile_rule([p], -log(p))
        self.logit_symbols = logits
        self.classes = sc.classes
        self._grad_logits: dict = {}
        step = theta - eta * s * g
        self.sgd = compile_rule([theta, eta, s, g], step)

    def grad_logits(self, y: int):
        """dL/do_c of every class c for label y: SymPy's simplified derivatives, compiled once per label."""
        if y not in self._grad_logits:
            soft = softmax_derivation(self.classes, y)
            self._grad_logits[y] = compile_rule(self.logit_symbols, list(soft.simplified))
        return self._grad_logits[y]


# ---------------------------------------------------------------- lazily built quantities


@dataclass
class StepDerivation:
    """One forward pass (and, for training steps, its backward pass): groups of quantities."""

    path: str
    sample: str
    label: str
    iteration: int | None
    y: int = 0
    groups: dict[str, Group] = field(default_factory=dict)
    winners: np.ndarray | None = None  # max pool: index of the winning cell per window
    values: dict[str, np.ndarray] = field(default_factory=dict)  # exact values, parameters and input too


@dataclass
class UpdateDerivation:
    path: str
    iteration: int
    after: str | None
    groups: dict[str, Group] = field(default_factory=dict)
    steps: list[StepDerivation] = field(default_factory=list)  # whose gradients this update applies
    before: dict[str, np.ndarray] = field(default_factory=dict)  # the parameters it starts from
    scale: Fraction = Fraction(1)
    step: int = 1  # the optimizer's step number t
    optimizer: dict = field(default_factory=dict)  # momentum/adam: t, state before, gradients (optimizer_exact)


@dataclass
class Derivation(Displayable):  # Jupyter shows the worked solution (symcnn.jupyter.show)
    scenario: Scenario
    notation: Notation
    steps: list[StepDerivation]
    updates: list[UpdateDerivation]
    final: list[StepDerivation]
    softmax: dict[int, SoftmaxDerivation]
    deriver: Deriver

    def records(self):
        return (*self.steps, *self.updates, *self.final)

    def quantities(self):
        """Every quantity, each built and checked against its bulk value (slow for large scenarios)."""
        for record in self.records():
            for group in record.groups.values():
                yield from group.flat

    def numbers(self):
        """(path, exact value) of every value, straight from the bulk arrays."""
        for record in self.records():
            for key, group in record.groups.items():
                for index, value in group.indices():
                    yield self.deriver.path(record, key, index), value

    def record_at(self, path: str) -> tuple:
        """(record, key, index) of a `symcnn values` path, e.g. ``steps[0].probs[1]``."""
        from ..scenario.model import parse_path

        part, n, key, *index = parse_path(path)
        record = {"steps": self.steps, "updates": self.updates, "final": self.final}[part][n]
        if key.endswith("filters") and len(index) == 3:
            index = [index[0], 0, *index[1:]]
        return record, key, tuple(index)

    def value_at(self, path: str):
        """The exact value at a `symcnn values` path, e.g. ``steps[0].probs[1]``."""
        record, key, index = self.record_at(path)
        return record.values[key][index]

    def quantity_at(self, path: str) -> Quantity:
        """The Quantity (symbol, general, substituted, value) at a `symcnn values` path, built on its own."""
        record, key, index = self.record_at(path)
        return record.groups[key][index]

    def values(self) -> dict[str, sympy.Expr]:
        return {path: to_sympy(value) for path, value in self.numbers()}

    @cached_property
    def parameters(self) -> dict:
        """symbol -> initial value of every parameter (exact)."""
        D, initial = self.deriver, self.deriver.initial
        env = {D.N("learning_rate"): exact(self.scenario.training.learning_rate)}
        for key in PARAMETER_KEYS:
            for index in np.ndindex(*initial[key].shape):
                env[D.symbol_of(key, index)] = to_sympy(initial[key][index])
        return env


# ---------------------------------------------------------------- the deriver


class Deriver:
    """Exact bulk values layer by layer (``Rules``), and each cell's SymPy quantity on demand."""

    def __init__(self, sc: Scenario, notation: Notation | None = None) -> None:
        self.sc = sc
        self.N = notation if notation is not None else Notation()
        self.channels, self.height, self.width = sc.inputs[0].pixels.shape
        self.kh, self.kw = sc.kernel_shape
        self.multi = self.channels > 1
        self.filter_names = [f.name for f in sc.conv.filters]
        self.pool_size, self.pool_stride = (
            pool_window(sc.pool, sc.conv_shape) if sc.pool.kind != "none" else ((1, 1), (1, 1))
        )
        self.eta = decimal(sc.training.learning_rate)
        self.initial = {
            "filters": exact_array(np.stack([f.weights for f in sc.conv.filters])),
            "filter_biases": exact_array([f.bias for f in sc.conv.filters]),
            "dense_weights": exact_array(sc.dense.weights),
            "dense_biases": exact_array(sc.dense.biases),
        }
        self._generals: dict = {}

    @cached_property
    def rules(self) -> Rules:
        return Rules(self.sc)

    @cached_property
    def optimizer(self) -> ExactOptimizer:
        return ExactOptimizer(self.sc, self.N)

    # symbols -----------------------------------------------------------------------------
    def x(self, c, r, q):
        return self.N("input", None, *self._chan(c), r + 1, q + 1)

    def w(self, k, c, u, v):
        return self.N("filter", self.sc.conv.filters[k].name, *self._chan(c), u + 1, v + 1)

    def _chan(self, c):
        return (c + 1,) if self.multi else ()

    def filter_index(self, k, c, u, v):
        """JSON index of a filter weight in the shape the scenario gave."""
        return (c, u, v) if self.sc.conv.filters[k].ndim == 3 else (u, v)

    def symbol_of(self, key: str, index: tuple, new: bool = False):
        """The symbol of a parameter cell (filters k,c,u,v; filter_biases k; dense_weights c,n; dense_biases c)."""
        N, classes = self.N, self.sc.classes
        if key == "filters":
            k, c, u, v = index
            return N("filter", self.filter_names[k], *self._chan(c), u + 1, v + 1, new=new)
        if key == "filter_biases":
            return N("filter_bias", self.filter_names[index[0]], new=new)
        if key == "dense_weights":
            return N("dense_weight", classes[index[0]], index[1] + 1, new=new)
        return N("dense_bias", classes[index[0]], new=new)

    def path(self, record, key: str, index: tuple) -> str:
        if key.endswith("filters"):  # filters, grad_filters, and optimizer state: m_filters, ...
            k, c, u, v = index
            index = (k, *self.filter_index(k, c, u, v))
        return f"{record.path}.{key}" + "".join(f"[{i}]" for i in index)

    # bulk values -------------------------------------------------------------------------
    def forward_values(self, x: np.ndarray, params: dict, y: int) -> dict:
        R, sc = self.rules, self.sc
        s, p = sc.conv.stride, sc.conv.padding
        w, b = params["filters"], params["filter_biases"]
        Ho, Wo = sc.conv_shape
        xp = np.full((self.channels, self.height + 2 * p, self.width + 2 * p), Fraction(0), object)
        xp[:, p : p + self.height, p : p + self.width] = x
        taps = {
            (c, u, v): xp[c, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s]
            for c, u, v in np.ndindex(self.channels, self.kh, self.kw)
        }
        z = self.conv_values(taps, w, b) if rational(w) and rational(b) else self.conv_floats(taps, w, b)
        a = R.activation(z)
        m, winners = self.pool_values(a)
        f = m.reshape(-1)
        W, B = params["dense_weights"], params["dense_biases"]
        o = B + R.dense_term(W, alike(f, W)[None, :]).sum(axis=1)
        probs = np.array(R.probs(*o), object)
        loss = np.array(R.loss(probs[y]), object)
        return dict(
            conv=z, activated=a, pooled=m, features=f, logits=o, probs=probs, loss=loss, winners=winners, taps=taps
        )

    def conv_values(self, taps: dict, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Rational conv exactly and fast: the rule applied to integers (numerators over a common
        denominator: 0.7 * 0.25 -> 70 * 25 / 10^4), in int64 where no sum can overflow."""
        x_scale = math.lcm(*{v.denominator for tap in taps.values() for v in tap.flat}, 1)
        w_scale = math.lcm(*{v.denominator for v in (*w.flat, *b.flat)}, 1)
        X = {key: scaled(tap, x_scale) for key, tap in taps.items()}
        Wi, Bi = scaled(w, w_scale), scaled(b, w_scale) * x_scale
        bound = max_abs(Wi) * max(map(max_abs, X.values()), default=0) * len(X) + max_abs(Bi)
        if bound < 2**62:
            X = {key: tap.astype(np.int64) for key, tap in X.items()}
            Wi, Bi = Wi.astype(np.int64), Bi.astype(np.int64)
        total = Bi[:, None, None] + sum(
            self.rules.conv_term(Wi[:, c, u, v][:, None, None], tap[None]) for (c, u, v), tap in X.items()
        )
        denominator = x_scale * w_scale
        return np.vectorize(lambda n: Fraction(int(n), denominator), otypes=[object])(total)

    def conv_floats(self, taps: dict, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Conv with 50-digit filters (after they learned); sums within rounding of 0 become 0."""
        z = np.empty((w.shape[0], *next(iter(taps.values())).shape), object)
        z[...] = b[:, None, None]
        size = np.vectorize(abs, otypes=[object])(z)
        for (c, u, v), tap in taps.items():
            term = self.rules.conv_term(w[:, c, u, v][:, None, None], tap[None])
            z = z + term
            size = size + np.vectorize(abs, otypes=[object])(term)
        return snap(z, size)

    def pool_values(self, a: np.ndarray):
        kind = self.sc.pool.kind
        if kind == "none":
            return a.copy(), None
        (ph, pw), (sh, sw) = self.pool_size, self.pool_stride
        K, Ho, Wo = a.shape[0], *self.sc.pooled_shape
        cells = [a[:, u : u + sh * (Ho - 1) + 1 : sh, v : v + sw * (Wo - 1) + 1 : sw] for u, v in np.ndindex(ph, pw)]
        if kind == "avg":
            return self.rules.pool_mean(*cells), None
        stacked = np.stack(cells, axis=-1)  # K x Ho x Wo x window
        winners = np.zeros((K, Ho, Wo), int)
        for index in np.ndindex(K, Ho, Wo):  # the first largest (exactly, or to 45 digits)
            row = comparable(stacked[index])
            top = max(row)
            winners[index] = next(t for t, value in enumerate(row) if value >= top - ROUNDING * abs(top))
        m = np.take_along_axis(stacked, winners[..., None], axis=-1)[..., 0]
        return m, winners

    def backward_values(self, v: dict, params: dict, y: int) -> dict:
        R, sc = self.rules, self.sc
        o = v["logits"]
        go = np.array(R.grad_logits(y)(*o), object)
        f, W = v["features"], params["dense_weights"]
        gW = go[:, None] * alike(R.ddense_dW(f), go)[None, :]
        gB = go.copy()
        gf = (go[:, None] * alike(R.ddense_df(W), go)).sum(axis=0)
        gm = gf.reshape(v["pooled"].shape)
        ga = np.full(v["activated"].shape, Fraction(0), object)
        (ph, pw), (sh, sw) = self.pool_size, self.pool_stride
        Ho, Wo = gm.shape[1:]
        if sc.pool.kind == "max":
            K = gm.shape[0]
            for k, i, j in np.ndindex(K, Ho, Wo):
                r, q = winner_cell(i, j, v["winners"][k, i, j], (ph, pw), (sh, sw))
                ga[k, r, q] = ga[k, r, q] + gm[k, i, j]
        else:
            anywhere = [Fraction(0)] * (ph * pw)  # the mean's derivatives are constants
            for t, (u, w_) in enumerate(np.ndindex(ph, pw)):
                share = R.dmean(*anywhere)[t] if sc.pool.kind == "avg" else 1
                rows = slice(u, u + sh * (Ho - 1) + 1, sh)
                cols = slice(w_, w_ + sw * (Wo - 1) + 1, sw)
                ga[:, rows, cols] = ga[:, rows, cols] + gm * share
        gz = ga * alike(np.asarray(R.dactivation(v["conv"]), dtype=object), ga)
        K = gz.shape[0]
        gw = np.empty((K, self.channels, self.kh, self.kw), object)
        for (c, u, w_), tap in v["taps"].items():
            gw[:, c, u, w_] = (gz * alike(R.dconv_dw(tap), gz)[None]).sum(axis=(1, 2))
        gb = gz.sum(axis=(1, 2))
        return dict(
            grad_logits=go,
            grad_dense_weights=gW,
            grad_dense_biases=gB,
            grad_features=gf,
            grad_pooled=gm,
            grad_activated=ga,
            grad_conv=gz,
            grad_filters=gw,
            grad_filter_biases=gb,
        )

    def update_values(self, params: dict, steps: list[StepDerivation], scale: Fraction) -> dict:
        new = {}
        for key in PARAMETER_KEYS:
            if key in ("filters", "filter_biases") and not self.sc.training.update_filters:
                new[key] = params[key].copy()
                continue
            total = sum(step.values[GRADIENT_OF[key]] for step in steps)
            new[key] = params[key].copy()  # a zero gradient leaves a parameter exactly as it was
            moves = np.vectorize(bool, otypes=[bool])(total)
            if rational(total):
                new[key][moves] = self.rules.sgd(params[key][moves], self.eta, scale, total[moves])
            else:  # 50-digit floats throughout (mixed products would convert at every cell)
                theta, g = floats(params[key][moves]), floats(total[moves])
                new[key][moves] = self.rules.sgd(theta, floats(np.array(self.eta)), floats(np.array(scale)), g)
        return new

    # one cell's quantity -----------------------------------------------------------------
    def lookup(self, symbol, step: StepDerivation | None, steps=(), before: dict | None = None):
        """The exact value a symbol stands for in this step (or update)."""
        info = self.N.info[symbol]
        kind, index = info.kind, tuple(i - 1 for i in info.index)
        if info.grad:
            source = next(s for s in steps if s.sample == info.sample) if steps else step
            return source.values[GRADIENT_GROUP[kind]][self._owner_index(info, index, kind)]
        params = before if before is not None else step.values
        if kind == "learning_rate":
            return self.eta
        if kind == "input":
            return step.values["input"][index if self.multi else (0, *index)]
        if kind == "label":
            return Fraction(int(self.sc.classes.index(info.owner) == step.y))
        source = params if kind in ("filter", "filter_bias", "dense_weight", "dense_bias") else step.values
        return source[VALUE_GROUP[kind]][self._owner_index(info, index, kind)]

    def _owner_index(self, info, index: tuple, kind: str) -> tuple:
        if kind in ("filter", "filter_bias", "conv", "activated", "pooled"):
            k = self.filter_names.index(info.owner)
            if kind == "filter" and not self.multi:
                return (k, 0, *index)
            return (k, *index)
        if kind in ("dense_weight", "dense_bias", "logit", "prob"):
            return (self.sc.classes.index(info.owner), *index)
        return index

    def make(self, record, key: str, index: tuple, symbol, general) -> Quantity:
        """The quantity at ``index`` of group ``key``: its general form evaluated at this step's numbers
        must give the bulk value (exactly where rational)."""
        if isinstance(record, UpdateDerivation):
            env = {s: self.lookup(s, record.steps[0], record.steps, record.before) for s in general.free_symbols}
        else:
            env = {s: self.lookup(s, record) for s in general.free_symbols}
        value = evaluate(general, alike_env(env))
        bulk = record.values[key][index]
        path = self.path(record, key, index)
        if not agrees(value, bulk):
            raise VerificationError(f"{path}: the cell's own expression gives {value}, the layer rule {bulk}")
        return Quantity(path, symbol, general, env, to_sympy(bulk))

    def general(self, record: StepDerivation, key: str, index: tuple):
        """(symbol, general form) of one cell of a step (remembered: chain rules reuse them)."""
        memo = self._generals.setdefault(id(record), {})
        found = memo.get((key, index))
        if found is None:
            found = memo[key, index] = self._general(record, key, index)
        return found

    def _general(self, record: StepDerivation, key: str, index: tuple):
        sc, N, tag = self.sc, self.N, record.sample
        name = self.filter_names[index[0]] if key in ("conv", "activated", "pooled") else None
        if key == "conv":
            k, i, j = index
            s, p = sc.conv.stride, sc.conv.padding
            terms = [
                times(self.w(k, c, u, v), self.x(c, i * s + u - p, j * s + v - p))
                for c, u, v in np.ndindex(self.channels, self.kh, self.kw)
                if 0 <= i * s + u - p < self.height and 0 <= j * s + v - p < self.width
            ]
            return N("conv", name, i + 1, j + 1), plus(*terms, N("filter_bias", name))
        if key == "activated":
            k, i, j = index
            return N("activated", name, i + 1, j + 1), activation_expr(sc.activation, N("conv", name, i + 1, j + 1))
        if key == "pooled":
            k, i, j = index
            (ph, pw), (sh, sw) = self.pool_size, self.pool_stride
            cells = [N("activated", name, i * sh + u + 1, j * sw + v + 1) for u, v in np.ndindex(ph, pw)]
            if sc.pool.kind == "max" and len(cells) > 1:
                general = MaxOf(*cells)
            elif sc.pool.kind == "avg" and len(cells) > 1:
                general = times(Rational(1, len(cells)), plus(*cells))
            else:
                general = cells[0]
            return N("pooled", name, i + 1, j + 1), general
        if key == "features":
            (n,) = index
            k, i, j = np.unravel_index(n, record.values["pooled"].shape)
            return N("feature", None, n + 1), N("pooled", self.filter_names[k], i + 1, j + 1)
        classes = sc.classes
        if key == "logits":
            c = classes[index[0]]
            F = record.values["features"].size
            terms = [times(N("dense_weight", c, n + 1), N("feature", None, n + 1)) for n in range(F)]
            return N("logit", c), plus(*terms, N("dense_bias", c))
        if key == "probs":
            exps = [exp(N("logit", c), evaluate=False) for c in classes]
            general = Mul(exps[index[0]], Pow(plus(*exps), -1, evaluate=False), evaluate=False)
            return N("prob", classes[index[0]]), general
        if key == "loss":
            return N("loss"), Mul(-1, log(N("prob", classes[record.y]), evaluate=False), evaluate=False)
        return self.gradient(record, key, index, tag)

    def gradient(self, record: StepDerivation, key: str, index: tuple, tag: str):
        """(symbol, chain rule) of one gradient cell: upstream gradients times SymPy's derivatives of the
        general forms of the layer they feed."""
        sc, N, classes = self.sc, self.N, self.sc.classes

        def general(k, i):
            return self.general(record, k, i)[1]

        if key == "grad_logits":
            c = classes[index[0]]
            return N.grad("logit", c, sample=tag), minus(N("prob", c), N("label", c))
        if key == "grad_dense_weights":
            c, n = index
            weight = N("dense_weight", classes[c], n + 1)
            pairs = [(N.grad("logit", classes[c], sample=tag), general("logits", (c,)), weight)]
            return N.grad("dense_weight", classes[c], n + 1, sample=tag), chain(pairs)
        if key == "grad_dense_biases":
            (c,) = index
            pairs = [(N.grad("logit", classes[c], sample=tag), general("logits", (c,)), N("dense_bias", classes[c]))]
            return N.grad("dense_bias", classes[c], sample=tag), chain(pairs)
        if key == "grad_features":
            (n,) = index
            feature = N("feature", None, n + 1)
            pairs = [
                (N.grad("logit", name, sample=tag), general("logits", (c,)), feature) for c, name in enumerate(classes)
            ]
            return N.grad("feature", None, n + 1, sample=tag), chain(pairs)
        name = self.filter_names[index[0]]
        if key == "grad_pooled":
            k, i, j = index
            n = int(np.ravel_multi_index((k, i, j), record.values["pooled"].shape))
            pairs = [
                (N.grad("feature", None, n + 1, sample=tag), general("features", (n,)), N("pooled", name, i + 1, j + 1))
            ]
            return N.grad("pooled", name, i + 1, j + 1, sample=tag), chain(pairs)
        if key == "grad_activated":
            k, r, q = index
            cell = N("activated", name, r + 1, q + 1)
            pairs = []
            for i, j in self.readers(record, r, q):
                pooled = general("pooled", (k, i, j))
                if sc.pool.kind == "max":  # at this point max(...) is its first largest argument
                    winner = winner_cell(i, j, record.winners[k, i, j], self.pool_size, self.pool_stride)
                    pooled = N("activated", name, winner[0] + 1, winner[1] + 1)
                pairs.append((N.grad("pooled", name, i + 1, j + 1, sample=tag), pooled, cell))
            return N.grad("activated", name, r + 1, q + 1, sample=tag), chain(pairs)
        if key == "grad_conv":
            k, i, j = index
            pairs = [
                (
                    N.grad("activated", name, i + 1, j + 1, sample=tag),
                    general("activated", index),
                    N("conv", name, i + 1, j + 1),
                )
            ]
            return N.grad("conv", name, i + 1, j + 1, sample=tag), chain(pairs)
        cells = list(np.ndindex(*sc.conv_shape))
        if key == "grad_filters":
            k, c, u, v = index
            weight = self.w(k, c, u, v)
            pairs = [
                (N.grad("conv", name, i + 1, j + 1, sample=tag), general("conv", (k, i, j)), weight) for i, j in cells
            ]
            return N.grad("filter", name, *self._chan(c), u + 1, v + 1, sample=tag), chain(pairs)
        (k,) = index
        bias = N("filter_bias", name)
        pairs = [(N.grad("conv", name, i + 1, j + 1, sample=tag), general("conv", (k, i, j)), bias) for i, j in cells]
        return N.grad("filter_bias", name, sample=tag), chain(pairs)

    def readers(self, record, r: int, q: int):
        """The pooled cells whose window holds activated cell (r, q)."""
        (ph, pw), (sh, sw) = self.pool_size, self.pool_stride
        Ho, Wo = record.values["pooled"].shape[1:]
        rows = [i for i in range(Ho) if i * sh <= r < i * sh + ph]
        cols = [j for j in range(Wo) if j * sw <= q < j * sw + pw]
        return [(i, j) for i in rows for j in cols]

    def update_general(self, record: UpdateDerivation, key: str, index: tuple):
        symbol = self.symbol_of(key, index)
        lhs = self.symbol_of(key, index, new=True)
        learns = key in ("dense_weights", "dense_biases") or self.sc.training.update_filters
        if not learns:
            return lhs, symbol
        info = self.N.info[symbol]  # dL/d(this parameter) of each step the update applies
        grads = plus(*[self.N.grad(info.kind, info.owner, *info.index, sample=step.sample) for step in record.steps])
        eta = self.N("learning_rate")
        scale = Rational(record.scale.numerator, record.scale.denominator)
        return lhs, minus(symbol, times(eta, scale, grads) if scale != 1 else times(eta, grads))

    # records -----------------------------------------------------------------------------
    def step(self, path, sample, iteration, params: dict, backward: bool) -> StepDerivation:
        y = self.sc.label_index(sample)
        record = StepDerivation(path, sample.name, sample.label, iteration, y)
        values = self.forward_values(exact_array(sample.pixels), params, y)
        if backward:
            values.update(self.backward_values(values, params, y))
        record.winners = values.pop("winners")
        values.pop("taps")
        values = {key: exactify(array) for key, array in values.items()}
        record.values = {**params, **values, "input": exact_array(sample.pixels)}
        keys = FORWARD_KEYS + (BACKWARD_KEYS if backward else ())
        for key in keys:
            record.groups[key] = Group(key, values[key], self._maker(record, key))
        return record

    def _maker(self, record, key):
        def make(index):
            if isinstance(record, UpdateDerivation) and record.optimizer:
                return self.optimizer_quantity(record, key, index)
            symbol, general = (
                self.update_general(record, key, index)
                if isinstance(record, UpdateDerivation)
                else self.general(record, key, index)
            )
            return self.make(record, key, index, symbol, general)

        return make

    def update(self, path, iteration, after, params: dict, steps: list[StepDerivation], scale) -> UpdateDerivation:
        record = UpdateDerivation(path, iteration, after, steps=steps, before=params, scale=scale)
        self._steps_taken = record.step = getattr(self, "_steps_taken", 0) + 1
        if self.optimizer.active:  # momentum, adam: engine/optimizer_exact.py
            keys = [k for k in PARAMETER_KEYS if self.sc.training.update_filters or not k.startswith("filter")]
            totals = {k: sum(step.values[GRADIENT_OF[k]] for step in steps) * scale for k in keys}
            new, state, record.optimizer = self.optimizer.update({k: params[k] for k in keys}, totals)
            new = {**{k: params[k].copy() for k in PARAMETER_KEYS if k not in keys}, **new}
            new.update({f"{name}_{k}": array for k, tensors in state.items() for name, array in tensors.items()})
        else:
            new = self.update_values(params, steps, scale)
        record.values = new
        for key in new:
            record.groups[key] = Group(key, new[key], self._maker(record, key))
        return record

    def optimizer_quantity(self, record: UpdateDerivation, key: str, index: tuple) -> Quantity:
        """A momentum/Adam update's cell: the new parameter, or a state value (``m_dense_weights``)."""
        if key in PARAMETER_KEYS:
            if key not in record.optimizer["grads"]:  # a frozen parameter keeps its value
                symbol = self.symbol_of(key, index)
                return self.make(record, key, index, self.symbol_of(key, index, new=True), symbol)
            return self.optimizer_equations(record, key, index)[-1]
        param = next(k for k in PARAMETER_KEYS if key.endswith("_" + k))
        name = key[: -len(param) - 1]
        return next(q for q in self.optimizer_equations(record, param, index) if q.path.endswith(f".{name}"))

    def optimizer_equations(self, record: UpdateDerivation, key: str, index: tuple) -> list[Quantity]:
        """g_t, the state equations and p' of one parameter cell of a momentum/Adam update."""
        return self.optimizer.equations(record.optimizer, key, index, legacy_cell(self, record, key, index))


def derive(sc: Scenario) -> Derivation:
    """Every value of the run, layer by layer, in the order the training visits them."""
    with mpmath.workdps(DPS + 10):
        return _derive(sc)


def _derive(sc: Scenario) -> Derivation:
    D = Deriver(sc)
    params = dict(D.initial)
    steps: list[StepDerivation] = []
    updates: list[UpdateDerivation] = []
    per_sample = sc.training.update == "per_sample"
    scale = Fraction(1, len(sc.inputs)) if sc.training.update == "batch_mean" else Fraction(1)

    def apply(iteration: int, after: str | None, pending: list[StepDerivation]) -> dict:
        record = D.update(
            f"updates[{len(updates)}]", iteration, after, params, pending, Fraction(1) if per_sample else scale
        )
        updates.append(record)
        return record.values

    bar = progress(len(sc.inputs) * (sc.training.iterations + 1), f"deriving {sc.name}")
    for iteration in range(1, sc.training.iterations + 1):
        pending = []
        for sample in sc.inputs:
            record = D.step(f"steps[{len(steps)}]", sample, iteration, params, backward=True)
            bar.update()
            steps.append(record)
            pending.append(record)
            if per_sample:
                params = apply(iteration, sample.name, pending)
                pending = []
        if not per_sample:
            params = apply(iteration, None, pending)

    final = []
    for n, sample in enumerate(sc.inputs):
        final.append(D.step(f"final[{n}]", sample, None, params, backward=False))
        bar.update()
    bar.close()
    softmax = {y: softmax_derivation(sc.classes, y) for y in {sc.label_index(s) for s in sc.inputs}}
    return Derivation(sc, D.N, steps, updates, final, softmax, D)
