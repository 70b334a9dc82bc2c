"""The optimizer's step in exact numbers and as worked equations (the SymPy side of ``optimizers``).

Bulk: ``optimizers.step`` over object arrays of SymPy numbers: Rationals while the maths is rational
(momentum always; Adam's m, v, m-hat, v-hat, and its square root where v-hat is a perfect square, as at
t = 1), 50-digit Floats once a square root is irrational. Per cell: the same rules run over SymPy
symbols give each equation's general form (``m_t = beta_1 m_{t-1} + (1 - beta_1) g_t``); evaluated at
the cell's numbers, each must agree with the bulk value.
"""

from __future__ import annotations

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


class ExactOptimizer:
    """The optimizer across one derivation's updates: state per parameter tensor, step count t."""

    def __init__(self, deriver) -> None:
        sc = deriver.sc
        self.deriver = deriver
        self.opt = sc.training.optimizer
        self.kind = optimizers.rule_kind(self.opt)
        self.hyper = optimizers.hyperparameters(self.opt, sc.training.learning_rate, exact)
        self.state: dict = {}  # tensor name -> {state name: SymPy numbers}
        self.t = 0

    @property
    def active(self) -> bool:
        return self.opt.kind != "sgd"

    def update(self, keys, params: dict, totals: dict) -> tuple[dict, dict]:
        """One step: (new parameters, record extras: t, the state before and after, the gradients)."""
        self.t += 1
        named = {key: sympy_array(params[key]) for key in keys}
        grads = without_residue({key: sympy_array(totals[key]) for key in keys})
        before = self.state
        new, self.state = optimizers.step(self.opt, self.hyper, named, grads, before, self.t, sqrt_each, zeros)
        values = {key: native_array(new[key]) for key in keys}
        for name, tensors in self.state.items():
            for state, array in tensors.items():
                values[f"{state}_{name}"] = native_array(array)
        extras = {"t": self.t, "before": before, "grads": grads}
        return values, extras

    # one cell's worked equations -----------------------------------------------------------
    def symbol(self, name: str, time: str | None = None):
        kind, index = SYMBOLS[name]
        return self.deriver.N(kind, None, *index, time=time) if time else self.deriver.N(kind, None, *index)

    def equations(self, record, key: str, index: tuple) -> list[Quantity]:
        """g_t, each state equation, and p' for parameter ``key[index]`` of update ``record``: symbol =
        general = value, every value re-evaluated from its general form and compared with the bulk."""
        D, extras = self.deriver, record.optimizer
        state_names = optimizers.STATE[self.opt.kind]
        before = extras["before"].get(key) or {}
        numbers = {name: value for name, value in self.hyper.items()}
        numbers["t"] = sympy.Integer(extras["t"])
        numbers["p"] = to_sympy(record.before[key][index])
        numbers["g"] = extras["grads"][key][index]
        for name in state_names:
            numbers[name] = before[name][index] if before else sympy.Integer(0)
        cell = optimizers.apply(self.kind, {**numbers, "sqrt": exact_sqrt})
        symbols = {name: self.symbol(name) for name in self.hyper}
        symbols["t"] = self.symbol("t")
        symbols["p"] = D.symbol_of(key, index)
        symbols["g"] = self.symbol("g", "t")
        for name in state_names:
            symbols[name] = self.symbol(name, "t-1")
        env = {symbols[name]: to_exact(numbers[name]) for name in numbers}
        path = D.path(record, key, index)
        quantities = [self.gradient(record, key, index, symbols["g"], env)]
        ns = {name: Form(symbol) for name, symbol in symbols.items()}
        for name, formula in optimizers.RULES[self.kind]:
            general = formula(SimpleNamespace(**ns, sqrt=form_sqrt)).expr
            lhs = D.symbol_of(key, index, new=True) if name == "p" else self.symbol(name, "t")
            value = getattr(cell, name)
            mine = {s: env[s] for s in general.free_symbols}
            shown = evaluate(general, mine)
            if not agree(shown, value):
                raise VerificationError(f"{path}: {lhs} evaluates to {shown}, the optimizer rule gives {value}")
            where = path if name == "p" else f"{path}.{name}"
            quantities.append(Quantity(where, lhs, general, mine, value))
            ns[name] = Form(lhs)
            env[lhs] = to_exact(value)
        return quantities

    def gradient(self, record, key: str, index: tuple, symbol, env: dict) -> Quantity:
        """g_t: the update's gradient of the parameter, (scale times) the sum over its samples."""
        D = self.deriver
        info = D.N.info[D.symbol_of(key, index)]
        grads = [D.N.grad(info.kind, info.owner, *info.index, sample=s.sample) for s in record.steps]
        scale = Rational(record.scale.numerator, record.scale.denominator)
        general = times(scale, plus(*grads)) if scale != 1 else plus(*grads)
        mine = {s: D.lookup(s, record.steps[0], record.steps, record.before) for s in general.free_symbols}
        value = env[symbol]
        if not agree(evaluate(general, mine), value) and value != 0:  # 0: a rounding residue taken as 0
            raise VerificationError(f"{D.path(record, key, index)}: g_t disagrees with the summed gradients")
        return Quantity(f"{D.path(record, key, index)}.g", symbol, general, mine, to_sympy(value))


def agree(a, b) -> bool:
    """Exact values equal; 50-digit ones to 30 digits."""
    a, b = to_sympy(a), to_sympy(b)
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    return abs(a - b) <= sympy.Float(10, DPS) ** -30 * max(1, abs(b))
