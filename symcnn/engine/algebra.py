"""The small algebra of a worked solution: a Quantity is ``symbol = general = substituted = value``.

Sums and products are built unevaluated so that terms keep the order of the formula, and the
substituted form puts numbers exactly where the symbols stood (SymPy's own ``subs`` would evaluate
and reorder). Values are exact Rationals where the maths is rational, 50-digit Floats otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property, lru_cache

import mpmath
import numpy as np
import sympy
from sympy import Add, Mul, Piecewise, Rational

DPS = 50  # digits of Floats where exact values are irrational


@dataclass(frozen=True)
class Quantity:
    """One number of the worked solution: ``symbol = general = substituted = value``."""

    path: str  # where it sits in the `symcnn values` JSON, e.g. steps[0].conv[1][0][2]
    symbol: sympy.Symbol
    general: sympy.Expr
    env: dict  # the general form's symbols -> their exact values (Fraction or mpmath float)
    value: sympy.Expr

    @cached_property
    def substituted(self) -> sympy.Expr:
        """The general form with this step's numbers in the places of the symbols."""
        return substitute(self.general, {symbol: to_sympy(value) for symbol, value in self.env.items()})


def decimal(number: float) -> Fraction:
    """A decimal as written, exactly: 0.7 -> 7/10 (as a Fraction, for the exact engine's arrays)."""
    return Fraction(repr(float(number)))


def exact(number: float) -> sympy.Rational:
    """``decimal`` as a SymPy Rational: 0.7 -> 7/10 (from the same text: SymPy caches Rationals made from
    strings, and a Rational made from a Fraction is about 5 times slower)."""
    return Rational(repr(float(number)))


def to_sympy(value) -> sympy.Expr:
    """A SymPy number from a Fraction, an int or an mpmath float (SymPy numbers pass through)."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, (Fraction, int)):
        return Rational(value.numerator, value.denominator)
    return sympy.Float(value, DPS)


def to_exact(value):
    """A Fraction or an mpmath float from a SymPy number (or a Fraction, int or mpmath float)."""
    if isinstance(value, (Fraction, int, mpmath.mpf)):
        return value
    if value.is_Rational:
        return Fraction(int(value.p), int(value.q))
    # make_mpf keeps every digit (mpf() would round to the context's precision, 15 digits by default)
    return mpmath.mp.make_mpf(value._mpf_ if value.is_Float else value.evalf(DPS + 10)._mpf_)


def to_float(value):
    """A Fraction as a float of the current mpmath precision (50-digit floats pass through)."""
    return mpmath.mpf(value.numerator) / value.denominator if isinstance(value, (Fraction, int)) else value


def comparable(values: list) -> list:
    """Numbers that compare with each other: exact if all are, else all as 50-digit floats (mpmath
    cannot compare with a Fraction)."""
    if all(isinstance(v, (Fraction, int)) for v in values):
        return list(values)
    with mpmath.workdps(DPS + 10):
        return [to_float(v) for v in values]


def evaluate(expr: sympy.Expr, env: dict | None = None):
    """The exact value of one of our expressions (sums, products, powers, exp, log, tanh, max, Sub,
    Piecewise) with symbols from ``env``: a Fraction where rational, else a 50-digit mpmath float.
    Walks the tree once; SymPy's ``doit`` would rebuild every node with its assumptions (100x slower
    on a 1,352-term logit)."""
    env = env or {}
    with mpmath.workdps(DPS + 10):
        return _evaluate(expr, env)


def _evaluate(expr, env):
    if expr.is_Symbol:
        return to_exact(env[expr])
    if expr.is_Number:
        return to_exact(expr)
    args = expr.args
    if isinstance(expr, Add):
        return sum((_evaluate(a, env) for a in args), Fraction(0))
    if isinstance(expr, Mul):
        product = Fraction(1)
        for a in args:
            product = product * _evaluate(a, env)
            if not product:
                return Fraction(0)  # an exact 0 makes the product exact, as in SymPy
        return product
    if isinstance(expr, sympy.Pow):
        base, power = _evaluate(args[0], env), _evaluate(args[1], env)
        if isinstance(power, Fraction) and power.denominator == 1:
            return base ** int(power)
        return mpmath.power(base, power)
    return _evaluate_other(expr, env)


def _evaluate_other(expr, env):
    """Our own nodes (Sub, MaxOf), Piecewise and exp/log/tanh; anything else through SymPy."""
    args = expr.args
    if isinstance(expr, Sub):
        a, b = _evaluate(args[0], env), _evaluate(args[1], env)
        if isinstance(a, Fraction) and isinstance(b, mpmath.mpf):  # mpmath cannot take a Fraction on the left
            a = to_float(a)
        return a - b
    if isinstance(expr, MaxOf):
        values = [_evaluate(a, env) for a in args]
        keys = comparable(values)
        return values[keys.index(max(keys))]
    if isinstance(expr, Piecewise):
        for value, condition in args:
            if condition is sympy.true or _holds(condition, env):
                return _evaluate(value, env)
        raise ValueError(f"no branch of {expr} holds")
    functions = {sympy.exp: mpmath.exp, sympy.log: mpmath.log, sympy.tanh: mpmath.tanh}
    if expr.func in functions:
        return functions[expr.func](_evaluate(args[0], env))
    return to_exact(to_value(expr.xreplace({s: to_sympy(env[s]) for s in expr.free_symbols}).doit()))


def _holds(condition, env) -> bool:
    compare = {
        sympy.StrictGreaterThan: lambda a, b: a > b,
        sympy.GreaterThan: lambda a, b: a >= b,
        sympy.StrictLessThan: lambda a, b: a < b,
        sympy.LessThan: lambda a, b: a <= b,
    }
    return compare[type(condition)](*comparable([_evaluate(condition.lhs, env), _evaluate(condition.rhs, env)]))


def to_value(expr: sympy.Expr) -> sympy.Expr:
    return expr if expr.is_Rational else sympy.Float(expr.evalf(DPS), DPS)


def substitute(expr: sympy.Expr, env: dict) -> sympy.Expr:
    """``expr`` with symbols replaced by numbers, structure and term order kept (not evaluated).

    A Piecewise (ReLU and its derivative) is evaluated: the branch taken is what is shown.
    """
    if expr.is_Symbol:
        return env.get(expr, expr)
    if not expr.args:
        return expr
    if isinstance(expr, Piecewise):
        return expr.xreplace({s: env[s] for s in expr.free_symbols if s in env})
    args = [substitute(arg, env) for arg in expr.args]
    try:
        return expr.func(*args, evaluate=False)
    except TypeError:
        return expr.func(*args)


def plus(*terms: sympy.Expr) -> sympy.Expr:
    """A sum in the order given (SymPy would sort it); one term stays itself, none is 0."""
    terms = [t for t in terms if not (t.is_Number and t == 0)]
    if not terms:
        return sympy.Integer(0)
    # _from_args: the unevaluated node itself (Add(..., evaluate=False) re-checks every argument,
    # a second per 15,000-term logit)
    return terms[0] if len(terms) == 1 else Add._from_args(terms)


def times(*factors: sympy.Expr) -> sympy.Expr:
    """A product in the order given; factors equal to 1 are dropped."""
    factors = [f for f in factors if not (f.is_Number and f == 1)]
    if not factors:
        return sympy.Integer(1)
    return factors[0] if len(factors) == 1 else Mul._from_args(factors)


class Sub(sympy.Expr):
    """``a - b`` kept as written (SymPy would turn it into ``a + (-1)*b`` and reorder it)."""

    def __new__(cls, a, b, evaluate: bool = False):
        return sympy.Expr.__new__(cls, sympy.sympify(a), sympy.sympify(b))

    def doit(self, **hints):
        a, b = (arg.doit(**hints) for arg in self.args)
        return a - b

    def _eval_derivative(self, symbol):
        return sympy.diff(self.args[0], symbol) - sympy.diff(self.args[1], symbol)

    def _sympystr(self, printer):
        return f"{printer._print(self.args[0])} - ({printer._print(self.args[1])})"


class MaxOf(sympy.Expr):
    """``max(a, b, ...)`` kept as written: SymPy's Max sorts its arguments and drops duplicates."""

    def __new__(cls, *args, evaluate: bool = False):
        return sympy.Expr.__new__(cls, *map(sympy.sympify, args))

    def doit(self, **hints):
        return sympy.Max(*(arg.doit(**hints) for arg in self.args))

    def _eval_derivative(self, symbol):
        return sympy.diff(sympy.Max(*self.args), symbol)

    def _sympystr(self, printer):
        return "max(" + ", ".join(printer._print(a) for a in self.args) + ")"


class Dots(sympy.Expr):
    """An elision mark in a displayed formula (printed as a centred ellipsis); never evaluated."""

    is_commutative = True

    def __new__(cls):
        return sympy.Expr.__new__(cls)

    def _sympystr(self, printer):
        return "..."


FRACTION_TERMS = 5  # a sum in a denominator cannot break across lines: keep it short


def shorten(expr: sympy.Expr, most: int, head: int = 4, tail: int = 2) -> sympy.Expr:
    """``expr`` for display with every sum or max of more than ``most`` terms cut to its first ``head``
    and last ``tail`` terms around ``Dots`` (sums in a denominator: more than FRACTION_TERMS, to 2 and 1);
    display only (the full form is what was checked). Returns ``expr`` itself when nothing is cut."""
    if not expr.args or isinstance(expr, sympy.Piecewise):
        return expr
    if isinstance(expr, sympy.Pow) and expr.exp.is_negative:
        base = shorten(expr.base, FRACTION_TERMS, 2, 1)
        return expr if base is expr.base else sympy.Pow(base, expr.exp, evaluate=False)
    args = list(expr.args)
    cut = isinstance(expr, (Add, MaxOf)) and len(args) > most
    if cut:
        args = [*args[:head], None, *args[-tail:]]
    shown = [Dots() if a is None else shorten(a, most, head, tail) for a in args]
    if not cut and all(a is b for a, b in zip(shown, args)):
        return expr
    try:
        return expr.func(*shown, evaluate=False)
    except TypeError:
        return expr.func(*shown)


def minus(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    return Sub(a, b)


@lru_cache(maxsize=65536)
def terms_with(general: sympy.Expr) -> dict:
    """symbol -> the terms of the sum ``general`` that contain it (one pass over the sum)."""
    index: dict = {}
    for term in general.args:
        for symbol in term.free_symbols:
            index.setdefault(symbol, []).append(term)
    return index


def diff(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """SymPy's derivative of ``expr``: the class's own ``_eval_derivative`` (the rule ``sympy.diff``
    dispatches to), called directly to skip the Derivative wrapper; ``sympy.diff`` where a class has none."""
    result = expr._eval_derivative(variable) if hasattr(expr, "_eval_derivative") else None
    return sympy.diff(expr, variable) if result is None else result


def derivative(general: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """d(general)/d(variable); for a sum, only the terms holding ``variable`` are differentiated
    (the derivative is linear), so a 784-term sum costs one small derivative per variable, not 784."""
    if isinstance(general, Add):
        return Add(*[diff(term, variable) for term in terms_with(general).get(variable, ())])
    return diff(general, variable)


def chain(pairs) -> sympy.Expr:
    """sum of upstream * d(general)/d(variable) over (upstream, general, variable), zero factors dropped."""
    terms = []
    for upstream, general, variable in pairs:
        factor = derivative(general, variable)
        if factor != 0:
            terms.append(times(upstream, factor))
    return plus(*terms)


def agrees(symbolic, value) -> bool:
    """Exact values must be equal; 50-digit ones equal to 30 digits."""
    if symbolic == value:
        return True
    if isinstance(symbolic, (Fraction, int)) and isinstance(value, (Fraction, int)):
        return False
    return abs(symbolic - value) <= mpmath.mpf(10) ** -30 * max(1, abs(value))


class Group:
    """An array of quantities of one kind (``conv``, ``grad_dense_weights``, ...): exact values in bulk,
    a ``Quantity`` built for a cell when asked for it (``group[k, i, j]``); ``group[k]`` is a sub-array."""

    def __init__(self, key: str, values: np.ndarray, make, offset: tuple = (), cache: dict | None = None) -> None:
        self.key = key
        self.values = values
        self._make = make
        self._offset = offset
        self._cache = {} if cache is None else cache

    @property
    def shape(self) -> tuple:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim

    @property
    def size(self) -> int:
        return self.values.size

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        index = tuple(int(i) for i in index)
        if len(index) == self.values.ndim:
            full = self._offset + index
            q = self._cache.get(full)
            if q is None:
                q = self._cache[full] = self._make(full)
            return q
        return Group(self.key, self.values[index], self._make, self._offset + index, self._cache)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    @property
    def flat(self):
        for index in np.ndindex(*self.shape):
            yield self[index]

    def item(self) -> Quantity:
        return self[()]

    def numbers(self) -> np.ndarray:
        """The values as SymPy numbers (for matrices), without building quantities."""
        return np.vectorize(to_sympy, otypes=[object])(self.values)

    def indices(self):
        """(full index, exact value) of every cell."""
        for index in np.ndindex(*self.shape):
            yield self._offset + index, self.values[index]
