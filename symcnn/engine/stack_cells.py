"""Each cell of a stack's run as a SymPy quantity, and the whole run derived exactly (``derive_stack``).

Forward cells are the layer's general form over the symbols of its input cells and parameters; gradient
cells are the chain rule: upstream gradients times SymPy's derivative of the general form they feed.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
from sympy import Mul, Pow, Rational, exp, log

from ..errors import VerificationError
from ..layers.conv import flipped_terms
from ..layers.pool import pool_window, winner_cell
from ..scenario.model import Scenario
from .algebra import DPS, MaxOf, Quantity, chain, evaluate, minus, plus, times, to_sympy
from .exact import Group, activation_expr, agrees, alike_env
from .notation import Notation
from .optimizer_exact import stack_cell
from .optimizers import STATE_KEYS
from .stack import Record, StackDerivation, StackDeriver


class Cells:
    """(symbol, general form, env) of any cell of a record; ``make`` checks it against the bulk value."""

    def __init__(self, deriver: StackDeriver) -> None:
        self.D = deriver
        self.memo: dict = {}

    # the value a symbol stands for is looked up where the symbol was made: ``env`` is built alongside
    def general(self, record: Record, where, index: tuple):
        """``where``: (n, key) of a layer group or (None, key) of a top-level group."""
        memo = self.memo.setdefault(id(record), {})
        found = memo.get((where, index))
        if found is None:
            found = memo[where, index] = self._general(record, where, index)
        return found

    def _general(self, record: Record, where, index: tuple):
        n, key = where
        D, sample = self.D, record.sample
        if n is None:
            return getattr(self, f"_{key}")(record, index)
        layer = D.layers[n]
        if key == "output":
            return getattr(self, f"_out_{layer.layer}")(record, n, layer, index)
        if key == "grad_output":
            return self._grad_output(record, n, index)
        which = "weights" if key == "grad_weights" else "biases"
        if which == "weights" and layer.layer == "conv" and len(index) == 3:  # a filter given as kh x kw
            index = (index[0], 0, *index[1:])
        variable, env = D.param_symbol(n, which, index), {}
        env[variable] = record.values["params"][n][0 if which == "weights" else 1][index]
        symbol = D.param_symbol(n, which, index, grad=True, sample=sample)
        return symbol, self._chain_into(record, n, variable, self._users_of_param(record, n, which, index), env), env

    # forward ------------------------------------------------------------------------------
    def _in(self, record, n, index, env):
        symbol = self.D.input_symbol(n, index)
        value = record.values["records"][n]["input"]
        env[symbol] = value.reshape(-1)[index[0]] if value.ndim != len(index) else value[index]
        return symbol

    def _param(self, record, n, which, index, env):
        symbol = self.D.param_symbol(n, which, index)
        env[symbol] = record.values["params"][n][0 if which == "weights" else 1][index]
        return symbol

    def _out_conv(self, record, n, layer, index):
        k, i, j = index
        env: dict = {}
        C, H, W = record.values["records"][n]["input"].shape
        kh, kw = layer.kernel_shape
        s, p = layer.stride, layer.padding
        terms = [
            times(self._param(record, n, "weights", (k, c, u, v), env), self._in(record, n, (c, r, q), env))
            for c, u, v in np.ndindex(C, kh, kw)
            for r, q in [(i * s + u - p, j * s + v - p)]
            if 0 <= r < H and 0 <= q < W
        ]
        general = plus(*terms, self._param(record, n, "biases", (k,), env))
        return self.D.output_symbol(n, index), general, env

    def _out_activation(self, record, n, layer, index):
        env: dict = {}
        return self.D.output_symbol(n, index), activation_expr(layer, self._in(record, n, index, env)), env

    def _out_pool(self, record, n, layer, index):
        k, i, j = index
        env: dict = {}
        (ph, pw), (sh, sw) = pool_window(layer, record.values["records"][n]["input"].shape[1:])
        cells = [self._in(record, n, (k, i * sh + u, j * sw + v), env) for u, v in np.ndindex(ph, pw)]
        if len(cells) == 1:
            general = cells[0]
        elif layer.kind == "max":
            general = MaxOf(*cells)
        else:
            general = times(Rational(1, len(cells)), plus(*cells))
        return self.D.output_symbol(n, index), general, env

    def _out_dense(self, record, n, layer, index):
        (r,) = index
        env: dict = {}
        inputs = record.values["records"][n]["input"].size
        terms = [
            times(self._param(record, n, "weights", (r, c), env), self._in(record, n, (c,), env)) for c in range(inputs)
        ]
        return self.D.output_symbol(n, index), plus(*terms, self._param(record, n, "biases", (r,), env)), env

    def _logits(self, record, index):
        return self.general(record, (self.D.last, "output"), index)

    def _probs(self, record, index):
        classes, env = self.D.sc.classes, {}
        logits = record.values["logits"]
        o = [self.D.N("logit", c) for c in classes]
        env.update({s: logits[m] for m, s in enumerate(o)})
        exps = [exp(s, evaluate=False) for s in o]
        general = Mul(exps[index[0]], Pow(plus(*exps), -1, evaluate=False), evaluate=False)
        return self.D.N("prob", classes[index[0]]), general, env

    def _loss(self, record, index):
        c = self.D.sc.classes[record.y]
        p = self.D.N("prob", c)
        general = Mul(-1, log(p, evaluate=False), evaluate=False)
        return self.D.N("loss"), general, {p: record.values["probs"][record.y]}

    def _grad_logits(self, record, index):
        c = self.D.sc.classes[index[0]]
        p, y = self.D.N("prob", c), self.D.N("label", c)
        env = {p: record.values["probs"][index[0]], y: Fraction(int(index[0] == record.y))}
        return self.D.N.grad("logit", c, sample=record.sample), minus(p, y), env

    def _grad_input(self, record, index):
        c, r, q = index if len(index) == 3 else (0, *index)
        variable = self.D.input_symbol(0, (c, r, q))
        symbol = self.D.output_symbol(-1, (c, r, q), grad=True, sample=record.sample)
        env: dict = {}
        return symbol, self._chain_into(record, 0, variable, self._users_of_input(record, 0, (c, r, q)), env), env

    # backward -----------------------------------------------------------------------------
    def _grad_output(self, record, n, index):
        D = self.D
        symbol = D.output_symbol(n, index, grad=True, sample=record.sample)
        if n == D.last:
            return symbol, *self._grad_logits(record, index)[1:]
        variable = D.input_symbol(n + 1, self._as_input(record, n + 1, index))
        users = self._users_of_input(record, n + 1, index)
        env: dict = {}
        return symbol, self._chain_into(record, n + 1, variable, users, env), env

    def _as_input(self, record: Record, n: int, index: tuple) -> tuple:
        """Layer n reads cell ``index`` of its input as: a feature number when it flattens maps."""
        if self.D.layers[n].layer == "dense" and len(index) == 3:
            return (int(np.ravel_multi_index(index, record.values["records"][n]["input"].shape)),)
        return index

    def _users_of_input(self, record, n, index) -> list[tuple]:
        """Output cells of layer n whose general form holds input cell ``index`` (maps: (c, r, q))."""
        layer, rec = self.D.layers[n], record.values["records"][n]
        out_shape = rec["output"].shape
        if layer.layer == "conv":
            return [
                (k, i, j)
                for k, i, j, _, _ in flipped_terms(out_shape, layer.kernel_shape, layer.stride, layer.padding, index)
            ]
        if layer.layer == "activation":
            return [index]
        if layer.layer == "pool":
            k, r, q = index
            (ph, pw), (sh, sw) = pool_window(layer, rec["input"].shape[1:])
            users = [
                (k, i, j)
                for i in range(out_shape[1])
                for j in range(out_shape[2])
                if i * sh <= r < i * sh + ph and j * sw <= q < j * sw + pw
            ]
            if layer.kind == "max":  # the gradient goes to the window's winner only
                winners = rec["cache"]
                users = [
                    (k, i, j) for k, i, j in users if winner_cell(i, j, winners[k, i, j], (ph, pw), (sh, sw)) == (r, q)
                ]
            return users
        return [(r,) for r in range(out_shape[0])]

    def _users_of_param(self, record, n, which, index) -> list[tuple]:
        out_shape = record.values["records"][n]["output"].shape
        if self.D.layers[n].layer == "dense":
            return [(index[0],)]
        k = index[0]
        return [(k, i, j) for i in range(out_shape[1]) for j in range(out_shape[2])]

    def _chain_into(self, record, n, variable, users, env):
        """sum over the users u of layer n's output: dL/du * d(general of u)/d(variable)."""
        D, pairs = self.D, []
        layer = D.layers[n]
        for u in users:
            upstream = D.output_symbol(n, u, grad=True, sample=record.sample)
            _, general, used = self.general(record, (n, "output"), u)
            env.update(used)
            if layer.layer == "pool" and layer.kind == "max" and isinstance(general, MaxOf):
                pairs.append((upstream, variable, variable))  # d max / d winner = 1
            else:
                pairs.append((upstream, general, variable))
        return chain(pairs)

    # the quantity -------------------------------------------------------------------------
    def make(self, record: Record, where, index: tuple, path: str, bulk) -> Quantity:
        symbol, general, env = self.general(record, where, index)
        env = dict(env)
        for s in general.free_symbols - env.keys():
            env[s] = self.lookup(record, s)
        value = evaluate(general, alike_env(env))
        if not agrees(value, bulk):
            raise VerificationError(f"{path}: the cell's own expression gives {value}, the layer rule {bulk}")
        return Quantity(path, symbol, general, env, to_sympy(bulk))

    def lookup(self, record: Record, symbol):
        """The value of a gradient symbol of this record (upstream gradients)."""
        found = record.values["symbols"].get(symbol)
        if found is None:
            raise VerificationError(f"{record.path}: no value for {symbol}")
        return found


def _register(D: StackDeriver, record: Record) -> None:
    """symbol -> exact value of every gradient cell of a step (the upstream factors of chain rules)."""
    table = {}
    v, sample = record.values, record.sample
    for n, rec in enumerate(v["records"]):
        if "grad_output" in rec:
            for index, value in np.ndenumerate(rec["grad_output"]):
                table[D.output_symbol(n, index, grad=True, sample=sample)] = value
    record.values["symbols"] = table


def derive_stack(sc: Scenario, notation: Notation | None = None) -> StackDerivation:
    """Every value of the run, exactly, layer by layer, with each cell's quantity on demand."""
    with mpmath.workdps(DPS + 10):
        return _derive(sc, notation)


def _groups(cells: Cells, record: Record, arrays: dict, n=None) -> dict:
    out = {}
    for key, values in arrays.items():
        prefix = f"{record.path}." + (f"layers[{n}]." if n is not None else "") + key

        def make(index, key=key, prefix=prefix, values=values):
            path = prefix + "".join(f"[{i}]" for i in index)
            return cells.make(record, (n, key), index, path, values[index])

        out[key] = Group(key, np.asarray(values, dtype=object), make)
    return out


def _layer_arrays(D: StackDeriver, values: dict, backward: bool) -> list[dict]:
    out = []
    for rec in values["records"]:
        entry = {"output": rec["output"]}
        if backward:
            entry["grad_output"] = rec["grad_output"]
            if rec["grads"] is not None:
                entry["grad_weights"], entry["grad_biases"] = rec["grads"]
        out.append(entry)
    return out


def _derive(sc: Scenario, notation: Notation | None) -> StackDerivation:
    D = StackDeriver(sc, notation)
    cells = Cells(D)
    params = D.initial()
    steps, updates, final = [], [], []
    batch = sc.training.update != "per_sample"
    scale = Fraction(1, len(sc.inputs)) if sc.training.update == "batch_mean" else Fraction(1)

    def step_record(path, sample, iteration, backward=True) -> Record:
        y = sc.label_index(sample)
        values = D.forward(params, sample.pixels, y)
        if backward:
            D.backward(values, params, y)
        values["params"] = params
        record = Record(path, sample.name, sample.label, iteration, y, values=values)
        if backward:
            _register(D, record)
        top = {"logits": values["logits"], "probs": values["probs"], "loss": values["loss"]}
        if backward:
            gx = values["grad_input"]
            top["grad_logits"] = values["grad_logits"]
            top["grad_input"] = sc.as_given(gx)
        record.groups = _groups(cells, record, top)
        record.layers = [
            _groups(cells, record, arrays, n) for n, arrays in enumerate(_layer_arrays(D, values, backward))
        ]
        return record

    for iteration in range(1, sc.training.iterations + 1):
        pending: list = []
        for sample in sc.inputs:
            record = step_record(f"steps[{len(steps)}]", sample, iteration)
            steps.append(record)
            grads = [rec["grads"] for rec in record.values["records"]]
            if batch:
                pending.append(grads)
                continue
            before, params = params, D.update(params, grads, Fraction(1))
            updates.append(
                _update_record(D, f"updates[{len(updates)}]", iteration, sample.name, params, before, [record], 1)
            )
        if batch:
            total = [
                None if g is None else tuple(sum(parts) for parts in zip(*[p[n] for p in pending]))
                for n, g in enumerate(pending[0])
            ]
            before, params = params, D.update(params, total, scale)
            updates.append(
                _update_record(
                    D, f"updates[{len(updates)}]", iteration, None, params, before, steps[-len(sc.inputs) :], scale
                )
            )
    for m, sample in enumerate(sc.inputs):
        final.append(step_record(f"final[{m}]", sample, None, backward=False))
    return StackDerivation(sc, D.N, steps, updates, final, D)


def _update_record(D: StackDeriver, path: str, iteration: int, after, params, before, steps, scale) -> Record:
    """An update: per learning layer the new weights and biases, each cell p' = p - eta * (scale) * sum of
    the steps' gradients."""
    record = Record(path, after, None, iteration, values={"params": params, "scale": scale}, steps=steps, before=before)
    entries = []
    for n, (layer, p) in enumerate(zip(D.layers, params)):
        if p is None or not D.sc.learns(layer):
            continue
        flat = layer.layer == "conv" and layer.filters[0].ndim == 2
        entry = {}
        for part, key in enumerate(("weights", "biases")):
            shown = p[part][:, 0] if flat and key == "weights" else p[part]
            prefix = f"{path}.layers[{len(entries)}].{key}"

            def make(index, n=n, part=part, key=key, prefix=prefix, flat=flat, shown=shown):
                full = (index[0], 0, *index[1:]) if flat and key == "weights" else index
                return _update_cell(
                    D, record, n, part, full, prefix + "".join(f"[{i}]" for i in index), shown[index], scale
                )

            entry[key] = Group(key, np.asarray(shown, dtype=object), make)
            if D.optimizer.active:
                entry.update(_state_groups(D, record, n, part, flat, prefix, scale))
        entries.append(entry)
    record.layers = entries
    return record


def optimizer_equations(D: StackDeriver, record: Record, n: int, part: int, index: tuple) -> list[Quantity]:
    """g_t, the state equations and p' of one parameter cell of a momentum/Adam update (index: full, with
    the channel for conv weights)."""
    which = ("weights", "biases")[part]
    path = f"{record.path}.layers[{n}].{which}" + "".join(f"[{i}]" for i in index)
    cell = stack_cell(D, record, n, part, index, path, record.values["scale"])
    return D.optimizer.equations(record.values["optimizer"], (n, part), index, cell)


def _state_groups(D: StackDeriver, record: Record, n: int, part: int, flat: bool, prefix: str, scale) -> dict:
    """A momentum/Adam update's state of tensor (n, part) as groups ``state.velocity``, ``state.m_biases``, ..."""
    extras, out = D.optimizer_extras, {}
    record.values["optimizer"] = extras
    for name, array in D.optimizer_state[n, part].items():
        key = "state." + STATE_KEYS[name][part]
        shown = array[:, 0] if flat and part == 0 else array

        def make(index, name=name, key=key):
            full = (index[0], 0, *index[1:]) if flat and part == 0 else index
            cell = stack_cell(D, record, n, part, full, prefix + "".join(f"[{i}]" for i in index), scale)
            return next(q for q in D.optimizer.equations(extras, (n, part), full, cell) if q.path.endswith("." + name))

        out[key] = Group(key, np.asarray(shown, dtype=object), make)
    return out


def _update_cell(D: StackDeriver, record: Record, n: int, part: int, index: tuple, path: str, bulk, scale) -> Quantity:
    if D.optimizer.active:
        cell = stack_cell(D, record, n, part, index, path, scale)
        return D.optimizer.equations(record.values["optimizer"], (n, part), index, cell)[-1]
    which = ("weights", "biases")[part]
    old = D.param_symbol(n, which, index)
    eta = D.N("learning_rate")
    env = {old: record.before[n][part][index], eta: D.eta}
    grads = []
    for step in record.steps:
        symbol = D.param_symbol(n, which, index, grad=True, sample=step.sample)
        env[symbol] = step.values["records"][n]["grads"][part][index]
        grads.append(symbol)
    total = plus(*grads)
    factor = times(to_sympy(scale), eta) if scale != 1 else eta
    general = minus(old, times(factor, total))
    value = evaluate(general, alike_env(env))
    if not agrees(value, bulk):
        raise VerificationError(f"{path}: the update's own expression gives {value}, the engine {bulk}")
    return Quantity(path, D.param_symbol(n, which, index, new=True), general, env, to_sympy(bulk))
