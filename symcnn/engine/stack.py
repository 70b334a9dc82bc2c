"""The exact engine over any stack of layers: bulk exact values layer by layer, and each cell's SymPy
quantity (symbol = general form = substituted = value) on demand.

Values are Fractions while the arithmetic is rational and 50-digit mpmath floats once exp/tanh enter.
The activation rules and their derivatives, softmax and dL/do are SymPy expressions (``sympy.diff``),
compiled once; a cell's gradient is the chain rule over SymPy's derivatives of the general forms it
feeds (``algebra.chain``). Every cell built is checked against the bulk value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

import mpmath
import numpy as np
import sympy
from numpy.lib.stride_tricks import sliding_window_view
from sympy import exp

from ..display import Displayable
from ..layers import conv as conv_layer
from ..layers import pool as pool_layer
from ..scenario.model import Scenario, parse_path
from .algebra import comparable, exact, to_float
from .exact import (
    Group,
    activation_expr,
    compile_rule,
    exact_array,
    floats,
    rational,
    snap,
    softmax_derivation,
)
from .fixed import combine
from .notation import Notation
from .optimizer_exact import ExactOptimizer

ZERO = Fraction(0)


def uniform(*arrays: np.ndarray) -> list[np.ndarray]:
    """All exact, or all 50-digit floats (mpmath cannot subtract or compare with a Fraction)."""
    if all(rational(a) for a in arrays):
        return list(arrays)
    return [floats(a) for a in arrays]


def objects(shape) -> np.ndarray:
    return np.full(shape, ZERO, dtype=object)


# ---------------------------------------------------------------- records


@dataclass
class Record:
    """One step, update or final pass: groups of quantities by key; ``layers`` by layer, same keys as the JSON."""

    path: str
    sample: str | None = None
    label: str | None = None
    iteration: int | None = None
    y: int = 0
    groups: dict[str, Group] = field(default_factory=dict)
    layers: list[dict[str, Group]] = field(default_factory=list)
    values: dict = field(default_factory=dict)  # per layer: input, output, cache, grad_output, grads; params
    steps: list = field(default_factory=list)  # updates: the steps whose gradients they apply
    before: list | None = None  # updates: the parameters they start from


@dataclass
class StackDerivation(Displayable):  # Jupyter shows the worked solution (symcnn.jupyter.show)
    scenario: Scenario
    notation: Notation
    steps: list[Record]
    updates: list[Record]
    final: list[Record]
    deriver: StackDeriver

    def records(self):
        return (*self.steps, *self.updates, *self.final)

    def groups(self):
        """(path, group) of every group: top-level keys and ``layers[n].key``."""
        for record in self.records():
            for key, group in record.groups.items():
                yield f"{record.path}.{key}", group
            for n, layer in enumerate(record.layers):
                for key, group in layer.items():
                    yield f"{record.path}.layers[{n}].{key}", group

    def numbers(self):
        """(path, exact value) of every value of the `symcnn values` JSON."""
        for path, group in self.groups():
            for index, value in group.indices():
                yield path + "".join(f"[{i}]" for i in index), value

    def quantities(self):
        for _, group in self.groups():
            yield from group.flat

    def quantity_at(self, path: str):
        """The Quantity (symbol, general, substituted, value) at a `symcnn values` path, built on its own,
        e.g. ``steps[0].layers[3].output[0][1][1]`` or ``steps[0].grad_input[2][3]``."""
        part, n, key, *index = parse_path(path)
        record = {"steps": self.steps, "updates": self.updates, "final": self.final}[part][n]
        if key != "layers":
            return record.groups[key][tuple(index)]
        m, key, *index = index
        if key == "state":  # an optimizer's state: the group of ``state.m`` and so on
            key, *index = f"state.{index[0]}", *index[1:]
        group = record.layers[m][key]
        if group.values.ndim == len(index) + 1:  # a kh x kw filter's gradient: the JSON has no channel index
            index = [index[0], 0, *index[1:]]
        return group[tuple(index)]


# ---------------------------------------------------------------- the deriver


class StackDeriver:
    """Bulk exact values of a stack, and the symbols and general forms of its cells."""

    def __init__(self, sc: Scenario, notation: Notation | None = None) -> None:
        self.sc = sc
        self.N = notation if notation is not None else Notation()
        self.layers = sc.layers
        self.last = len(self.layers) - 1
        self.eta = exact(sc.training.learning_rate)
        z = sympy.Symbol("z", real=True)
        self.activation = {}
        for n, layer in enumerate(self.layers):
            if layer.layer == "activation":
                expr = activation_expr(layer, z)
                self.activation[n] = (compile_rule([z], expr), compile_rule([z], sympy.diff(expr, z)))
        self.owners = self._owners()
        o = tuple(self.N("logit", c) for c in sc.classes)
        self.logit_symbols = o
        self.probs_rule = compile_rule(o, [exp(oc) / sympy.Add(*[exp(oj) for oj in o]) for oc in o])
        self._grad_logits: dict = {}
        self._generals: dict = {}
        self.optimizer = ExactOptimizer(sc, self.N)
        self.optimizer_state: dict = {}  # after the last update: per tensor (n, part), the engine's numbers
        self.optimizer_extras: dict = {}  # ... and what its worked equations need

    # names ------------------------------------------------------------------------------
    def _owners(self) -> list[list[str | None]]:
        """Per layer input (n = 0 the image, n > 0 the output of layer n - 1): the owner name of each channel
        (the filter that made it), or None for a vector."""
        all_filters = [f.name for layer in self.layers if layer.layer == "conv" for f in layer.filters]
        channels = self.sc.channels
        current: list[str | None] = [None] * channels  # the image: x, x_c
        out = []
        for layer in self.layers:
            out.append(current)
            if layer.layer == "conv":
                current = [
                    f.name if all_filters.count(f.name) == 1 else f"{layer.name}.{f.name}" for f in layer.filters
                ]
            elif layer.layer == "dense":
                current = [None]
        out.append(current)
        return out

    def output_symbol(self, n: int, index: tuple, grad: bool = False, sample: str | None = None):
        """The symbol of cell ``index`` of layer n's output (n = -1: the image)."""
        N = self.N
        make = (lambda *a: N.grad(*a, sample=sample)) if grad else N
        if n < 0:
            c, r, q = index
            chan = (c + 1,) if self.sc.channels > 1 else ()
            return make("input", None, *chan, r + 1, q + 1)
        layer = self.layers[n]
        if layer.layer == "dense":
            if n == self.last:
                return make("logit", self.sc.classes[index[0]])
            return make("hidden", layer.name, index[0] + 1)
        if len(index) == 1:  # a vector: an activation after a dense layer
            return make("activated", layer.name, index[0] + 1)
        k, i, j = index
        owner = self.owners[n + 1][k]
        kind = {"conv": "conv", "activation": "activated", "pool": "pooled"}[layer.layer]
        if owner is None:  # maps straight from the image (a pool or activation before any conv)
            owner = f"x{k + 1}" if self.sc.channels > 1 else "x"
        return make(kind, owner, i + 1, j + 1)

    def input_symbol(self, n: int, index: tuple, grad: bool = False, sample: str | None = None):
        """The symbol of a cell of layer n's input (a dense layer reads the flattened maps as features)."""
        layer = self.layers[n]
        if layer.layer == "dense" and n == self.first_dense:
            make = (lambda *a: self.N.grad(*a, sample=sample)) if grad else self.N
            return make("feature", None, index[0] + 1)
        return self.output_symbol(n - 1, index, grad, sample)

    @property
    def first_dense(self) -> int:
        return next(n for n, layer in enumerate(self.layers) if layer.layer == "dense")

    def param_symbol(
        self, n: int, which: str, index: tuple, grad: bool = False, sample: str | None = None, new: bool = False
    ):
        N, layer = self.N, self.layers[n]
        tags = {"sample": sample, "grad": True} if grad else {"new": new} if new else {}
        if layer.layer == "conv":
            owner = self.owners[n + 1][index[0]]
            if which == "biases":
                return N("filter_bias", owner, **tags)
            k, c, u, v = index
            chan = (c + 1,) if layer.filters[k].ndim == 3 else ()
            return N("filter", owner, *chan, u + 1, v + 1, **tags)
        if n == self.last:
            c = self.sc.classes[index[0]]
            return N("dense_bias", c, **tags) if which == "biases" else N("dense_weight", c, index[1] + 1, **tags)
        if which == "biases":
            return N("bias", layer.name, index[0] + 1, **tags)
        return N("weight", layer.name, index[0] + 1, index[1] + 1, **tags)

    # bulk values -------------------------------------------------------------------------
    def initial(self) -> list:
        out = []
        for layer in self.layers:
            if layer.layer in ("conv", "dense"):
                w, b = layer.parameters()
                out.append((exact_array(w), exact_array(b)))
            else:
                out.append(None)
        return out

    def forward(self, params: list, x: np.ndarray, y: int) -> dict:
        h = exact_array(x)
        records = []
        for n, (layer, p) in enumerate(zip(self.layers, params)):
            out, cache = getattr(self, f"_forward_{layer.layer}")(n, layer, p, h)
            records.append({"input": h, "output": out, "cache": cache})
            h = out
        (o,) = uniform(h)
        probs = np.array(self.probs_rule(*o), dtype=object)
        loss = -mpmath.log(to_float(probs[y]))
        return {"records": records, "logits": h, "probs": probs, "loss": np.array(loss, dtype=object)}

    def _forward_conv(self, n, layer, p, h):
        w, b = p
        h, w, b = uniform(h, w, b)
        padding, stride = layer.padding, layer.stride
        padded = objects((h.shape[0], h.shape[1] + 2 * padding, h.shape[2] + 2 * padding))
        padded[:, padding : padding + h.shape[1], padding : padding + h.shape[2]] = h
        windows = sliding_window_view(padded, w.shape[2:], axis=(1, 2))[:, ::stride, ::stride]
        correlate = partial(np.einsum, "chwuv,kcuv->khw")
        z = combine(correlate, windows, w) + b[:, None, None]
        size = combine(correlate, np.abs(windows), np.abs(w)) + np.abs(b)[:, None, None]
        return snap(z, size), windows

    def _forward_activation(self, n, layer, p, h):
        rule, _ = self.activation[n]
        return np.array(np.broadcast_to(np.asarray(rule(h), dtype=object), h.shape)), None

    def _forward_pool(self, n, layer, p, h):
        (ph, pw), (sh, sw) = pool_layer.pool_window(layer, h.shape[1:])
        K, H, W = layer.output_shape(h.shape)
        out, winner = objects((K, H, W)), np.zeros((K, H, W), dtype=int)
        for k, i, j in np.ndindex(K, H, W):
            cells = list(h[k, i * sh : i * sh + ph, j * sw : j * sw + pw].flat)
            if layer.kind == "max":
                keys = comparable(cells)
                winner[k, i, j] = keys.index(max(keys))  # the first maximum, row-major
                out[k, i, j] = cells[winner[k, i, j]]
            else:
                out[k, i, j] = sum(cells, ZERO) * Fraction(1, ph * pw)
        return out, winner if layer.kind == "max" else None

    def _forward_dense(self, n, layer, p, h):
        W, B = p
        f, W, B = uniform(h.reshape(-1), W, B)
        o = combine(np.matmul, W, f) + B
        if n == self.last:
            return o, None
        return snap(o, combine(np.matmul, np.abs(W), np.abs(f)) + np.abs(B)), None

    def grad_logits(self, logits: np.ndarray, y: int) -> np.ndarray:
        """dL/do: SymPy's simplified derivative of -log softmax(o)_y, compiled once per label."""
        if y not in self._grad_logits:
            soft = softmax_derivation(self.sc.classes, y)
            self._grad_logits[y] = compile_rule(self.logit_symbols, list(soft.simplified))
        (logits,) = uniform(logits)
        return np.array(self._grad_logits[y](*logits), dtype=object)

    def backward(self, values: dict, params: list, y: int) -> None:
        g = self.grad_logits(values["logits"], y)
        values["grad_logits"] = g
        for n in range(self.last, -1, -1):
            layer, rec = self.layers[n], values["records"][n]
            rec["grad_output"] = g
            g, rec["grads"] = getattr(self, f"_backward_{layer.layer}")(n, layer, params[n], rec, g)
        values["grad_input"] = g

    def _backward_conv(self, n, layer, p, rec, g):
        windows = rec["cache"]
        g, w = uniform(g, p[0])
        dw = combine(partial(np.einsum, "khw,chwuv->kcuv"), g, windows)
        db = np.array([sum(g[k].flat, ZERO) for k in range(g.shape[0])], dtype=object)
        scatter = partial(conv_layer.input_gradient, stride=layer.stride, padding=layer.padding)
        dx = combine(lambda gi, wi: scatter(gi, wi, shape=rec["input"].shape), g, w)
        return dx, (dw, db)

    def _backward_activation(self, n, layer, p, rec, g):
        _, derivative = self.activation[n]
        d = np.broadcast_to(np.asarray(derivative(rec["input"]), dtype=object), g.shape)  # none: the constant 1
        return g * d, None

    def _backward_pool(self, n, layer, p, rec, g):
        return pool_layer.backward(g, rec["input"].shape, layer, rec["cache"]), None

    def _backward_dense(self, n, layer, p, rec, g):
        f = rec["input"].reshape(-1)
        g, f, W = uniform(g, f, p[0])
        back = combine(lambda Wi, gi: Wi.T @ gi, W, g)
        return back.reshape(rec["input"].shape), (combine(np.outer, g, f), g.copy())

    def update(self, params: list, grads: list, scale: Fraction) -> list:
        """One SGD step: p - eta * scale * g for the layers that learn (momentum, Adam: ``optimizer_update``)."""
        if self.optimizer.active:
            return self.optimizer_update(params, grads, scale)
        out = []
        for layer, p, g in zip(self.layers, params, grads):
            if g is None or not self.sc.learns(layer):
                out.append(p)
                continue
            pair = []
            for value, grad in zip(p, g):
                step = grad * (self.eta * scale)
                if rational(step) and rational(value):
                    pair.append(value - step)
                else:
                    pair.append(floats(value) - floats(step))
            out.append(tuple(pair))
        return out

    def optimizer_update(self, params: list, grads: list, scale: Fraction) -> list:
        """One momentum/Adam step over the learning layers' tensors (engine/optimizer_exact.py)."""
        learning = [
            n for n, (layer, g) in enumerate(zip(self.layers, grads)) if g is not None and self.sc.learns(layer)
        ]
        named = {(n, part): params[n][part] for n in learning for part in (0, 1)}
        totals = {(n, part): grads[n][part] * scale for n in learning for part in (0, 1)}
        new, self.optimizer_state, self.optimizer_extras = self.optimizer.update(named, totals)
        return [(new[n, 0], new[n, 1]) if n in learning else p for n, p in enumerate(params)]
