"""What a document says about a momentum or Adam update: the convention sentence, the worked equations of
one representative parameter, and the state matrices. Shared by the legacy and the stack builder."""

from __future__ import annotations

import numpy as np

from ..engine.algebra import exact
from .model import Cell, Text
from .numbers import plain_number

STATE_WORDS = {"velocity": "velocity b_t", "m": "first moment m_t", "v": "second moment v_t"}
STATE_KINDS = {"velocity": "velocity", "m": "adam_m", "v": "adam_v"}


def optimizer_name(opt) -> str:
    if opt.kind == "momentum":
        return f"{'Nesterov ' if opt.nesterov else ''}momentum {plain_number(exact(opt.momentum), 6)}"
    if opt.kind == "adam":
        b1, b2 = (plain_number(exact(b), 6) for b in opt.betas)
        return f"Adam (betas {b1} and {b2}, eps {opt.eps:g})"
    return "plain SGD"


def convention(opt) -> str:
    """One sentence: PyTorch's convention and how the other common one differs."""
    if opt.kind == "momentum":
        nesterov = " With nesterov the step looks ahead: p' = p - lr * (g_t + momentum * b_t)." if opt.nesterov else ""
        return (
            "Momentum as PyTorch's torch.optim.SGD computes it (dampening 0): the velocity b_t adds up raw gradients "
            "and the learning rate multiplies it at the step, p' = p - lr * b_t. Sutskever et al. put the learning "
            "rate inside the velocity instead (v_t = momentum * v_(t-1) + lr * g_t, p' = p - v_t); the two agree "
            "only while the learning rate stays constant." + nesterov
        )
    if opt.kind == "adam":
        return (
            f"Adam as PyTorch's torch.optim.Adam computes it: both moments start at 0, the bias corrections divide by "
            f"1 - beta^t with t counting steps from 1, and eps = {opt.eps:g} is added to the square root of the "
            "corrected second moment. Keras adds its epsilon (the paper's 'epsilon hat', default 1e-7 against "
            "PyTorch's 1e-8) to the square root of the uncorrected v_t, so the same number means a different step."
        )
    return ""


def representative(grads: np.ndarray, before: dict | None = None) -> tuple:
    """The index of the parameter whose equations are shown: the first with a gradient that is not 0 and,
    where there is one, state from earlier steps that is not 0 either (else the first)."""
    states = list((before or {}).values())
    candidates = [index for index, value in np.ndenumerate(grads) if value != 0]
    for index in candidates:
        if all(s[index] != 0 for s in states):
            return index
    return candidates[0] if candidates else (0,) * grads.ndim


def worked_blocks(opt, what: str, t: int, quantities: list, eq) -> list:
    """The convention, then g_t, the state equations and p' of one parameter, each general = substituted =
    value (``eq`` re-evaluates the substituted form shown against the value)."""
    intro = Text(f"Step t = {t} of {optimizer_name(opt)}, worked for one parameter of {what}:")
    return ([Text(convention(opt))] if t == 1 else []) + [intro] + [eq(q) for q in quantities]


def state_blocks(N, groups: dict, matrices, what: str) -> list:
    """The state after the step, shown like the weights: ``groups`` maps a state name (velocity, m, v) to its
    group or array."""
    blocks = []
    for state, group in groups.items():
        blocks.append(Text(f"The {STATE_WORDS[state]} of {what} after this step:"))
        blocks += matrices(N(STATE_KINDS[state], None, time="t"), group)
    return blocks


def step_column(sc, steps: list, final: list, header: tuple, rows: list) -> tuple[tuple, list]:
    """The training summary with the optimizer's step t after the pass (momentum/Adam only): the step a
    row's gradient goes into (per_sample: one per sample; batch modes: one per pass)."""
    if sc.training.optimizer.kind == "sgd":
        return header, rows
    per_sample = sc.training.update == "per_sample"
    ts = [str(n + 1 if per_sample else step.iteration) for n, step in enumerate(steps)] + ["-"] * len(final)
    header = header[:1] + (Cell("step t"),) + header[1:]
    return header, [row[:1] + (Cell(t),) + row[1:] for row, t in zip(rows, ts)]
