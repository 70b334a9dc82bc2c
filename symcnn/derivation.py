"""SymPy: every quantity of the run as general form = substituted form = value.

Layer by layer, never one giant expression: each quantity's general form is written in the symbols
of the layer before (``o_cat = sum_n W_{cat,n} f_n + b_cat``), its substituted form puts that step's
numbers in the same places (terms keep their order), and its value is exact (Rational) where the
maths is rational and a 50-digit Float where exp/log enter. Every derivative comes from SymPy: the
softmax/cross-entropy derivative is ``sympy.diff``-ed and simplified once per (classes, label), and each
chain-rule factor (dz/dw, do/dW, dm/da, da/dz, ...) is SymPy's derivative of the general form
(``algebra.diff``: the expression's own derivative rule, as ``sympy.diff`` applies it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import sympy
from sympy import Add, Mul, Piecewise, Pow, Rational, exp, log

from .algebra import MaxOf, Quantity, chain, exact, minus, plus, quantity, times
from .errors import VerificationError
from .numeric import GRAD_KEYS
from .progress import progress
from .scenario import Activation, Scenario, pool_window, winner_cell
from .symbols import Notation


@dataclass
class StepDerivation:
    """One forward pass (and, for training steps, its backward pass) as arrays of Quantity."""

    path: str
    sample: str
    label: str
    iteration: int | None
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    winners: np.ndarray | None = None  # max pool: index of the winning cell per window


@dataclass
class UpdateDerivation:
    path: str
    iteration: int
    after: str | None
    groups: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class SoftmaxDerivation:
    """dL/do_c for L = -log softmax(o)_y, as SymPy differentiated and simplified it."""

    label: int
    logits: tuple[sympy.Symbol, ...]
    loss: sympy.Expr
    derivatives: tuple[sympy.Expr, ...]  # raw sympy.diff
    simplified: tuple[sympy.Expr, ...]  # after simplify
    closed_form: tuple[sympy.Expr, ...]  # p_c - y_c, shown equal to the simplified form


@dataclass
class Derivation:
    scenario: Scenario
    notation: Notation
    parameters: dict  # symbol -> initial value
    steps: list[StepDerivation]
    updates: list[UpdateDerivation]
    final: list[StepDerivation]
    softmax: dict[int, SoftmaxDerivation]

    def quantities(self):
        for record in (*self.steps, *self.updates, *self.final):
            for array in record.groups.values():
                yield from array.flat

    def values(self) -> dict[str, sympy.Expr]:
        return {q.path: q.value for q in self.quantities()}

    # Jupyter display: the worked solution (symcnn.notebook builds it through check and build_document)
    def _repr_html_(self) -> str:
        from .notebook import solution_html

        return solution_html(self)

    def _repr_markdown_(self) -> str:
        from .notebook import solution_markdown

        return solution_markdown(self)

    def _repr_latex_(self) -> str:
        from .notebook import solution_latex

        return solution_latex(self)


# ---------------------------------------------------------------- activation and softmax as data


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
        simplified = sympy.simplify(derivative)
        target = exp(oc) / denominator - (1 if c == label else 0)
        if sympy.simplify(simplified - target) != 0:
            raise VerificationError(f"SymPy's dL/do_{classes[c]} = {simplified} is not p - y")
        raw.append(derivative)
        simple.append(simplified)
        closed.append(target)
    return SoftmaxDerivation(label, o, loss, tuple(raw), tuple(simple), tuple(closed))


# ---------------------------------------------------------------- one step


class Deriver:
    """Builds the quantities of one scenario; symbols are shared, values live in per-step envs."""

    def __init__(self, sc: Scenario, notation: Notation | None = None) -> None:
        self.sc = sc
        self.N = notation if notation is not None else Notation()
        self.channels, self.height, self.width = sc.inputs[0].pixels.shape
        self.kh, self.kw = sc.kernel_shape
        self.multi = self.channels > 1

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

    def parameters(self, w, b, W, B) -> dict:
        """env of parameter symbols -> values (exact Rationals from the floats given)."""
        sc, N = self.sc, self.N
        env = {N("learning_rate"): exact(sc.training.learning_rate)}
        for k, flt in enumerate(sc.conv.filters):
            env[N("filter_bias", flt.name)] = b[k]
            for c, u, v in np.ndindex(self.channels, self.kh, self.kw):
                env[self.w(k, c, u, v)] = w[k][c, u, v]
        for c, name in enumerate(sc.classes):
            env[N("dense_bias", name)] = B[c]
            for n in range(W.shape[1]):
                env[N("dense_weight", name, n + 1)] = W[c, n]
        return env

    # forward -----------------------------------------------------------------------------
    def forward(self, record: StepDerivation, env: dict, x: np.ndarray, y: int) -> None:
        sc, N, g = self.sc, self.N, record.groups
        for c, r, q in np.ndindex(*x.shape):
            env[self.x(c, r, q)] = exact(x[c, r, q])
        for c, name in enumerate(sc.classes):
            env[N("label", name)] = sympy.Integer(int(c == y))
        s, p = sc.conv.stride, sc.conv.padding
        K = len(sc.conv.filters)
        Ho, Wo = sc.conv_shape
        conv = np.empty((K, Ho, Wo), object)
        act = np.empty_like(conv)
        for k, flt in enumerate(sc.conv.filters):
            for i, j in np.ndindex(Ho, Wo):
                terms = [
                    times(self.w(k, c, u, v), self.x(c, i * s + u - p, j * s + v - p))
                    for c, u, v in np.ndindex(self.channels, self.kh, self.kw)
                    if 0 <= i * s + u - p < self.height and 0 <= j * s + v - p < self.width
                ]
                z = N("conv", flt.name, i + 1, j + 1)
                conv[k, i, j] = quantity(
                    f"{record.path}.conv[{k}][{i}][{j}]", z, plus(*terms, N("filter_bias", flt.name)), env
                )
                act[k, i, j] = quantity(
                    f"{record.path}.activated[{k}][{i}][{j}]",
                    N("activated", flt.name, i + 1, j + 1),
                    activation_expr(sc.activation, z),
                    env,
                )
        g["conv"], g["activated"] = conv, act
        self._pool(record, env)
        pooled = g["pooled"]
        features = np.empty(pooled.size, object)
        for n, m in enumerate(pooled.flat):  # filter-major, then row-major
            features[n] = quantity(f"{record.path}.features[{n}]", N("feature", None, n + 1), m.symbol, env)
        g["features"] = features
        logits = np.empty(len(sc.classes), object)
        for c, name in enumerate(sc.classes):
            terms = [times(N("dense_weight", name, n + 1), f.symbol) for n, f in enumerate(features)]
            logits[c] = quantity(
                f"{record.path}.logits[{c}]", N("logit", name), plus(*terms, N("dense_bias", name)), env
            )
        g["logits"] = logits
        exps = [exp(o.symbol, evaluate=False) for o in logits]
        denominator = plus(*exps)
        probs = np.empty_like(logits)
        for c, name in enumerate(sc.classes):
            general = Mul(exps[c], Pow(denominator, -1, evaluate=False), evaluate=False)
            probs[c] = quantity(f"{record.path}.probs[{c}]", N("prob", name), general, env)
        g["probs"] = probs
        loss = Mul(-1, log(probs[y].symbol, evaluate=False), evaluate=False)
        g["loss"] = np.array(quantity(f"{record.path}.loss", N("loss"), loss, env), dtype=object)

    def _pool(self, record: StepDerivation, env: dict) -> None:
        sc, N, act = self.sc, self.N, record.groups["activated"]
        K = act.shape[0]
        Ho, Wo = sc.pooled_shape
        pooled = np.empty((K, Ho, Wo), object)
        record.winners = np.zeros((K, Ho, Wo), int) if sc.pool.kind == "max" else None
        (ph, pw), (sh, sw) = pool_window(sc.pool, act.shape[1:]) if sc.pool.kind != "none" else ((1, 1), (1, 1))
        for k, flt in enumerate(sc.conv.filters):
            for i, j in np.ndindex(Ho, Wo):
                cells = [act[k, i * sh + u, j * sw + v].symbol for u, v in np.ndindex(ph, pw)]
                if sc.pool.kind == "max":
                    general = MaxOf(*cells) if len(cells) > 1 else cells[0]
                    values = [env[a] for a in cells]
                    record.winners[k, i, j] = max(range(len(values)), key=lambda t: (values[t], -t))
                elif sc.pool.kind == "avg":
                    general = times(Rational(1, len(cells)), plus(*cells)) if len(cells) > 1 else cells[0]
                else:
                    general = cells[0]
                pooled[k, i, j] = quantity(
                    f"{record.path}.pooled[{k}][{i}][{j}]", N("pooled", flt.name, i + 1, j + 1), general, env
                )
        record.groups["pooled"] = pooled

    # backward ----------------------------------------------------------------------------
    def backward(self, record: StepDerivation, env: dict, y: int) -> None:
        sc, N, g, tag = self.sc, self.N, record.groups, record.sample
        softmax_derivation(sc.classes, y)  # SymPy derives dL/do = p - y; raises if it does not
        P = record.path
        grad_logits = np.empty(len(sc.classes), object)
        for c, name in enumerate(sc.classes):
            general = minus(N("prob", name), N("label", name))
            grad_logits[c] = quantity(f"{P}.grad_logits[{c}]", N.grad("logit", name, sample=tag), general, env)
        g["grad_logits"] = grad_logits
        logits, features = g["logits"], g["features"]
        F = len(features)
        gW = np.empty((len(sc.classes), F), object)
        gB = np.empty(len(sc.classes), object)
        for c, name in enumerate(sc.classes):
            for n in range(F):
                weight = N("dense_weight", name, n + 1)
                gW[c, n] = quantity(
                    f"{P}.grad_dense_weights[{c}][{n}]",
                    N.grad("dense_weight", name, n + 1, sample=tag),
                    chain([(grad_logits[c].symbol, logits[c].general, weight)]),
                    env,
                )
            bias = N("dense_bias", name)
            gB[c] = quantity(
                f"{P}.grad_dense_biases[{c}]",
                N.grad("dense_bias", name, sample=tag),
                chain([(grad_logits[c].symbol, logits[c].general, bias)]),
                env,
            )
        g["grad_dense_weights"], g["grad_dense_biases"] = gW, gB
        gf = np.empty(F, object)
        for n, f in enumerate(features):
            pairs = [(grad_logits[c].symbol, logits[c].general, f.symbol) for c in range(len(sc.classes))]
            gf[n] = quantity(f"{P}.grad_features[{n}]", N.grad("feature", None, n + 1, sample=tag), chain(pairs), env)
        g["grad_features"] = gf
        self._backward_conv(record, env)

    def _backward_conv(self, record: StepDerivation, env: dict) -> None:
        sc, N, g, tag, P = self.sc, self.N, record.groups, record.sample, record.path
        pooled, act, conv = g["pooled"], g["activated"], g["conv"]
        gm = np.empty_like(pooled)
        for n, (k, i, j) in enumerate(np.ndindex(*pooled.shape)):
            gm[k, i, j] = quantity(
                f"{P}.grad_pooled[{k}][{i}][{j}]",
                N.grad("pooled", sc.conv.filters[k].name, i + 1, j + 1, sample=tag),
                chain([(g["grad_features"][n].symbol, g["features"][n].general, pooled[k, i, j].symbol)]),
                env,
            )
        g["grad_pooled"] = gm
        # which pooled cells read each activated cell, with the expression to differentiate
        readers = {index: [] for index in np.ndindex(*act.shape)}
        (ph, pw), (sh, sw) = pool_window(sc.pool, act.shape[1:]) if sc.pool.kind != "none" else ((1, 1), (1, 1))
        for k, i, j in np.ndindex(*pooled.shape):
            general = pooled[k, i, j].general
            if sc.pool.kind == "max":  # at this point max(...) is its first largest argument
                winner = record.winners[k, i, j]
                general = act[(k, *winner_cell(i, j, winner, (ph, pw), (sh, sw)))].symbol
            for u, v in np.ndindex(ph, pw):
                cell = (k, i * sh + u, j * sw + v)
                readers[cell].append((gm[k, i, j].symbol, general, act[cell].symbol))
        ga = np.empty_like(act)
        gz = np.empty_like(act)
        for (k, i, j), pairs in readers.items():
            name = sc.conv.filters[k].name
            ga[k, i, j] = quantity(
                f"{P}.grad_activated[{k}][{i}][{j}]",
                N.grad("activated", name, i + 1, j + 1, sample=tag),
                chain(pairs),
                env,
            )
            gz[k, i, j] = quantity(
                f"{P}.grad_conv[{k}][{i}][{j}]",
                N.grad("conv", name, i + 1, j + 1, sample=tag),
                chain([(ga[k, i, j].symbol, act[k, i, j].general, conv[k, i, j].symbol)]),
                env,
            )
        g["grad_activated"], g["grad_conv"] = ga, gz
        K = len(sc.conv.filters)
        gw = np.empty((K, self.channels, self.kh, self.kw), object)
        gb = np.empty(K, object)
        for k, flt in enumerate(sc.conv.filters):
            cells = list(np.ndindex(*conv.shape[1:]))
            for c, u, v in np.ndindex(self.channels, self.kh, self.kw):
                weight = self.w(k, c, u, v)
                index = "".join(f"[{t}]" for t in self.filter_index(k, c, u, v))
                pairs = [(gz[k, i, j].symbol, conv[k, i, j].general, weight) for i, j in cells]
                symbol = N.grad("filter", flt.name, *self._chan(c), u + 1, v + 1, sample=tag)
                gw[k, c, u, v] = quantity(f"{P}.grad_filters[{k}]{index}", symbol, chain(pairs), env)
            pairs = [(gz[k, i, j].symbol, conv[k, i, j].general, N("filter_bias", flt.name)) for i, j in cells]
            gb[k] = quantity(
                f"{P}.grad_filter_biases[{k}]", N.grad("filter_bias", flt.name, sample=tag), chain(pairs), env
            )
        g["grad_filters"], g["grad_filter_biases"] = gw, gb

    # update ------------------------------------------------------------------------------
    def update(self, record: UpdateDerivation, params: dict, steps: list[StepDerivation], scale) -> dict:
        """theta' = theta - eta * scale * (sum of the steps' gradients); returns the new parameter env."""
        sc, N = self.sc, self.N
        env = dict(params)
        for step in steps:
            for key in GRAD_KEYS:
                env.update((q.symbol, q.value) for q in step.groups[key].flat)
        eta = N("learning_rate")
        new_params = dict(params)

        def step_to(path: str, symbol, lhs, key: str, index: tuple, learns: bool = True) -> Quantity:
            if learns:
                grads = plus(*[step.groups[key][index].symbol for step in steps])
                general = minus(symbol, times(eta, scale, grads) if scale != 1 else times(eta, grads))
            else:
                general = symbol
            q = quantity(path, lhs, general, env)
            new_params[symbol] = q.value
            return q

        P, g = record.path, record.groups
        C, F = len(sc.classes), steps[0].groups["features"].size
        g["dense_weights"] = np.empty((C, F), object)
        g["dense_biases"] = np.empty(C, object)
        for c, name in enumerate(sc.classes):
            for n in range(F):
                W = N("dense_weight", name, n + 1)
                g["dense_weights"][c, n] = step_to(
                    f"{P}.dense_weights[{c}][{n}]",
                    W,
                    N("dense_weight", name, n + 1, new=True),
                    "grad_dense_weights",
                    (c, n),
                )
            b = N("dense_bias", name)
            g["dense_biases"][c] = step_to(
                f"{P}.dense_biases[{c}]", b, N("dense_bias", name, new=True), "grad_dense_biases", (c,)
            )
        K = len(sc.conv.filters)
        learns = sc.training.update_filters
        g["filters"] = np.empty((K, self.channels, self.kh, self.kw), object)
        g["filter_biases"] = np.empty(K, object)
        for k, flt in enumerate(sc.conv.filters):
            for c, u, v in np.ndindex(self.channels, self.kh, self.kw):
                index = "".join(f"[{t}]" for t in self.filter_index(k, c, u, v))
                lhs = N("filter", flt.name, *self._chan(c), u + 1, v + 1, new=True)
                g["filters"][k, c, u, v] = step_to(
                    f"{P}.filters[{k}]{index}", self.w(k, c, u, v), lhs, "grad_filters", (k, c, u, v), learns
                )
            b = N("filter_bias", flt.name)
            g["filter_biases"][k] = step_to(
                f"{P}.filter_biases[{k}]", b, N("filter_bias", flt.name, new=True), "grad_filter_biases", (k,), learns
            )
        return new_params


def derive(sc: Scenario) -> Derivation:
    """Every quantity of the run, layer by layer, in the order the training visits them."""
    D = Deriver(sc)
    w = [np.vectorize(exact, otypes=[object])(f.weights) for f in sc.conv.filters]
    b = [exact(f.bias) for f in sc.conv.filters]
    W = np.vectorize(exact, otypes=[object])(sc.dense.weights)
    B = [exact(v) for v in sc.dense.biases]
    params = D.parameters(w, b, W, B)
    initial = dict(params)
    steps: list[StepDerivation] = []
    updates: list[UpdateDerivation] = []
    per_sample = sc.training.update == "per_sample"
    scale = Rational(1, len(sc.inputs)) if sc.training.update == "batch_mean" else 1

    def apply(iteration: int, after: str | None, pending: list[StepDerivation]) -> dict:
        record = UpdateDerivation(f"updates[{len(updates)}]", iteration, after)
        updates.append(record)
        return D.update(record, params, pending, 1 if per_sample else scale)

    bar = progress(len(sc.inputs) * (sc.training.iterations + 1), f"deriving {sc.name}")
    for iteration in range(1, sc.training.iterations + 1):
        pending = []
        for sample in sc.inputs:
            y = sc.label_index(sample)
            record = StepDerivation(f"steps[{len(steps)}]", sample.name, sample.label, iteration)
            env = dict(params)
            D.forward(record, env, sample.pixels, y)
            D.backward(record, env, y)
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
        record = StepDerivation(f"final[{n}]", sample.name, sample.label, None)
        D.forward(record, dict(params), sample.pixels, sc.label_index(sample))
        bar.update()
        final.append(record)
    bar.close()
    softmax = {y: softmax_derivation(sc.classes, y) for y in {sc.label_index(s) for s in sc.inputs}}
    return Derivation(sc, D.N, initial, steps, updates, final, softmax)
