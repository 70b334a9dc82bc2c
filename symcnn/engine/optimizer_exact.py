"""The optimizer's step in exact numbers and as worked equations (the SymPy side of ``optimizers``).

Bulk: ``optimizers.step`` over object arrays of SymPy numbers: Rationals while the maths is rational
(momentum always; Adam's m, v, m-hat, v-hat, and its square root where v-hat is a perfect square, as at
t = 1), 50-digit Floats once a square root is irrational. Per cell: the same rules run over SymPy
symbols give each equation's general form (``m_t = beta_1 m_{t-1} + (1 - beta_1) g_t``); evaluated at
the cell's numbers, each must agree with the bulk value.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import sympy
from sympy import Pow, Rational

from ..errors import VerificationError
from . import optimizers
from .algebra import DPS, Quantity, evaluate, exact, minus, plus, times, to_exact, to_sympy

ROUNDING = sympy.Rational(1, 10**45)  # 50-digit gradients this close to 0 (relative) are 0, as in exact.py

# a rule's or hyperparameter's name -> (notation kind, index) of its symbol
SYMBOLS = {
    "lr": ("learning_rate", ()),
    "mu": ("momentum", ()),
    "beta1": ("beta", (1,)),
    "beta2": ("beta", (2,)),
    "eps": ("eps", ()),
    "t": ("step", ()),
    "g": ("opt_grad", ()),
    "velocity": ("velocity", ()),
    "m": ("adam_m", ()),
    "v": ("adam_v", ()),
    "m_hat": ("adam_m_hat", ()),
    "v_hat": ("adam_v_hat", ()),
}


def exact_sqrt(x):
    """sqrt exactly where it is rational (a perfect square), else a 50-digit Float."""
    root = sympy.sqrt(x)
    return root if root.is_Rational else sympy.Float(root.evalf(DPS + 10), DPS)


sqrt_each = np.frompyfunc(exact_sqrt, 1, 1)  # over object arrays


def sympy_array(values) -> np.ndarray:
    return np.vectorize(to_sympy, otypes=[object])(np.asarray(values, dtype=object))


def native_array(values) -> np.ndarray:
    """SymPy numbers back to the engine's Fractions and mpmath floats (a 50-digit 0 is the exact 0)."""
    from fractions import Fraction

    def native(v):
        value = to_exact(v)
        return Fraction(0) if not value else value

    return np.vectorize(native, otypes=[object])(np.asarray(values, dtype=object))


def zeros(p: np.ndarray) -> np.ndarray:
    return np.full(p.shape, sympy.Integer(0), dtype=object)


def without_residue(grads: dict) -> dict:
    """The exact engine's twin of ``optimizers.without_residue``: a 50-digit gradient within rounding
    of 0 (relative to the update's largest) is the exact 0 (rational gradients are exact already)."""
    values = [v for g in grads.values() for v in g.flat]
    if all(v.is_Rational for v in values):
        return grads
    largest = max((abs(v) for v in values), default=sympy.Integer(0))
    snap = np.vectorize(lambda v: sympy.Integer(0) if abs(v) <= ROUNDING * largest else v, otypes=[object])
    return {name: snap(g) for name, g in grads.items()}


class Form:
    """A SymPy expression whose operators build our unevaluated nodes (terms in the order written),
    so that a rule's formula, run over symbols, is its general form."""

    def __init__(self, expr) -> None:
        self.expr = expr if isinstance(expr, sympy.Basic) else sympy.sympify(expr)

    @staticmethod
    def of(other):
        return other.expr if isinstance(other, Form) else sympy.sympify(other)

    def __add__(self, other):
        return Form(plus(self.expr, Form.of(other)))

    def __radd__(self, other):
        return Form(plus(Form.of(other), self.expr))

    def __sub__(self, other):
        return Form(minus(self.expr, Form.of(other)))

    def __rsub__(self, other):
        return Form(minus(Form.of(other), self.expr))

    def __mul__(self, other):
        return Form(times(self.expr, Form.of(other)))

    def __rmul__(self, other):
        return Form(times(Form.of(other), self.expr))

    def __truediv__(self, other):
        return Form(times(self.expr, Pow(Form.of(other), -1, evaluate=False)))

    def __pow__(self, power):
        return Form(Pow(self.expr, Form.of(power), evaluate=False))


def form_sqrt(x: Form) -> Form:
    return Form(Pow(x.expr, Rational(1, 2), evaluate=False))


@dataclass(frozen=True)
class Cell:
    """One parameter cell of an update, as the worked equations need it."""

    path: str  # where the new parameter sits in `symcnn values`
    symbol: sympy.Symbol  # the parameter before the step
    new: sympy.Symbol  # ... and after it
    value: object  # its exact value before the step
    grad_general: sympy.Expr  # g_t in the per-sample gradient symbols: (scale times) their sum
    grad_env: dict  # those symbols -> exact values


class ExactOptimizer:
    """The optimizer across one derivation's updates: state per parameter tensor (any hashable name),
    step count t; and one cell's worked equations."""

    def __init__(self, sc, notation) -> None:
        self.N = notation
        self.opt = sc.training.optimizer
        self.kind = optimizers.rule_kind(self.opt)
        self.hyper = optimizers.hyperparameters(self.opt, sc.training.learning_rate, exact)
        self.state: dict = {}  # tensor name -> {state name: SymPy numbers}
        self.t = 0

    @property
    def active(self) -> bool:
        return self.opt.kind != "sgd"

    def update(self, params: dict, totals: dict) -> tuple[dict, dict, dict]:
        """One step over named tensors: (new parameters, new state, both as the engine's numbers; extras
        for the worked equations: t, the state before, the gradients used)."""
        self.t += 1
        named = {key: sympy_array(value) for key, value in params.items()}
        grads = without_residue({key: sympy_array(value) for key, value in totals.items()})
        before = self.state
        new, self.state = optimizers.step(self.opt, self.hyper, named, grads, before, self.t, sqrt_each, zeros)
        state = {name: {key: native_array(a) for key, a in tensors.items()} for name, tensors in self.state.items()}
        return {key: native_array(a) for key, a in new.items()}, state, {"t": self.t, "before": before, "grads": grads}

    def symbol(self, name: str, time: str | None = None):
        kind, index = SYMBOLS[name]
        return self.N(kind, None, *index, time=time) if time else self.N(kind, None, *index)

    def equations(self, extras: dict, tensor, index: tuple, cell: Cell) -> list[Quantity]:
        """g_t, each state equation, and p' for one cell of tensor ``tensor``: symbol = general = value,
        every value re-evaluated from its general form and compared with the rules' value."""
        state_names = optimizers.STATE[self.opt.kind]
        before = extras["before"].get(tensor) or {}
        numbers = dict(self.hyper)
        numbers["t"] = sympy.Integer(extras["t"])
        numbers["p"] = to_sympy(cell.value)
        numbers["g"] = extras["grads"][tensor][index]
        for name in state_names:
            numbers[name] = before[name][index] if before else sympy.Integer(0)
        values = optimizers.apply(self.kind, {**numbers, "sqrt": exact_sqrt})
        symbols = {name: self.symbol(name) for name in self.hyper}
        symbols.update(t=self.symbol("t"), p=cell.symbol, g=self.symbol("g", "t"))
        for name in state_names:
            symbols[name] = self.symbol(name, "t-1")
        env = {symbols[name]: to_exact(numbers[name]) for name in numbers}
        quantities = [self.gradient(cell, symbols["g"], numbers["g"])]
        ns = {name: Form(symbol) for name, symbol in symbols.items()}
        for name, formula in optimizers.RULES[self.kind]:
            general = formula(SimpleNamespace(**ns, sqrt=form_sqrt)).expr
            lhs = cell.new if name == "p" else self.symbol(name, "t")
            value = getattr(values, name)
            mine = {s: env[s] for s in general.free_symbols}
            shown = evaluate(general, mine)
            if not agree(shown, value):
                raise VerificationError(f"{cell.path}: {lhs} evaluates to {shown}, the optimizer rule gives {value}")
            where = cell.path if name == "p" else f"{cell.path}.{name}"
            quantities.append(Quantity(where, lhs, general, mine, to_sympy(value)))
            ns[name] = Form(lhs)
            env[lhs] = to_exact(value)
        return quantities

    def gradient(self, cell: Cell, symbol, value) -> Quantity:
        """g_t: the update's gradient of the parameter, (scale times) the sum over its samples."""
        if not agree(evaluate(cell.grad_general, cell.grad_env), value) and value != 0:  # 0: a residue taken as 0
            raise VerificationError(f"{cell.path}: g_t disagrees with the summed gradients")
        return Quantity(f"{cell.path}.g", symbol, cell.grad_general, cell.grad_env, to_sympy(value))


def gradient_form(grads: list, scale) -> sympy.Expr:
    scale = Rational(scale.numerator, scale.denominator)
    return times(scale, plus(*grads)) if scale != 1 else plus(*grads)


def legacy_cell(D, record, key: str, index: tuple) -> Cell:
    """A cell of a legacy scenario's update (engine/exact.py's Deriver and UpdateDerivation)."""
    info = D.N.info[D.symbol_of(key, index)]
    grads = [D.N.grad(info.kind, info.owner, *info.index, sample=s.sample) for s in record.steps]
    general = gradient_form(grads, record.scale)
    env = {s: D.lookup(s, record.steps[0], record.steps, record.before) for s in general.free_symbols}
    symbol, new = D.symbol_of(key, index), D.symbol_of(key, index, new=True)
    return Cell(D.path(record, key, index), symbol, new, record.before[key][index], general, env)


def stack_cell(D, record, n: int, part: int, index: tuple, path: str, scale) -> Cell:
    """A cell of a stack's update (engine/stack.py's StackDeriver and Record)."""
    which = ("weights", "biases")[part]
    env, grads = {}, []
    for step in record.steps:
        symbol = D.param_symbol(n, which, index, grad=True, sample=step.sample)
        env[symbol] = step.values["records"][n]["grads"][part][index]
        grads.append(symbol)
    symbol, new = D.param_symbol(n, which, index), D.param_symbol(n, which, index, new=True)
    return Cell(path, symbol, new, record.before[n][part][index], gradient_form(grads, scale), env)


def agree(a, b) -> bool:
    """Exact values equal; 50-digit ones to 30 digits."""
    a, b = to_sympy(a), to_sympy(b)
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    return abs(a - b) <= sympy.Float(10, DPS) ** -30 * max(1, abs(b))
