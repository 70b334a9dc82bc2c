"""Optimizer steps as data: PyTorch's SGD (momentum, nesterov) and Adam over named parameter tensors.

Each kind is a table of rules ``(name, formula)`` applied in order; a formula reads the hyperparameters,
the step number ``t``, the parameter ``p``, its gradient ``g`` and the state (before the step) from a
namespace and returns the new value of ``name``, which later rules read. The same formulas run on
NumPy float arrays (the numeric engine), on object arrays of SymPy numbers (the exact engine: Rationals
while rational, 50-digit Floats once a square root is irrational) and on SymPy symbols (the general
forms a document shows), so there is one truth for all three.

PyTorch's conventions (``torch.optim.SGD`` with dampening 0 and no weight decay, ``torch.optim.Adam``
with amsgrad off and no weight decay): state per parameter tensor, starting at zero, t counting steps
from 1. This module imports neither SymPy nor the engines.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

# kind -> the state each parameter tensor carries, named as in `symcnn values`
STATE: dict[str, tuple[str, ...]] = {"sgd": (), "momentum": ("velocity",), "adam": ("m", "v")}

Rule = tuple[str, Callable]
RULES: dict[str, tuple[Rule, ...]] = {
    "sgd": (("p", lambda s: s.p - s.lr * s.g),),
    "momentum": (
        ("velocity", lambda s: s.mu * s.velocity + s.g),
        ("p", lambda s: s.p - s.lr * s.velocity),
    ),
    "nesterov": (
        ("velocity", lambda s: s.mu * s.velocity + s.g),
        ("p", lambda s: s.p - s.lr * (s.g + s.mu * s.velocity)),
    ),
    "adam": (
        ("m", lambda s: s.beta1 * s.m + (1 - s.beta1) * s.g),
        ("v", lambda s: s.beta2 * s.v + (1 - s.beta2) * s.g**2),
        ("m_hat", lambda s: s.m / (1 - s.beta1**s.t)),
        ("v_hat", lambda s: s.v / (1 - s.beta2**s.t)),
        ("p", lambda s: s.p - s.lr * s.m_hat / (s.sqrt(s.v_hat) + s.eps)),
    ),
}

# hyperparameter -> how to read it from (optimizer config, learning rate)
HYPER: dict[str, Callable] = {
    "lr": lambda opt, lr: lr,
    "mu": lambda opt, lr: opt.momentum,
    "beta1": lambda opt, lr: opt.betas[0],
    "beta2": lambda opt, lr: opt.betas[1],
    "eps": lambda opt, lr: opt.eps,
}
USES = {"sgd": ("lr",), "momentum": ("lr", "mu"), "nesterov": ("lr", "mu"), "adam": ("lr", "beta1", "beta2", "eps")}


def rule_kind(opt) -> str:
    """The rule table of an optimizer config (momentum with nesterov has its own)."""
    return "nesterov" if opt.kind == "momentum" and opt.nesterov else opt.kind


def hyperparameters(opt, lr, number: Callable = float) -> dict:
    """The hyperparameters the rules read, each made a number by ``number`` (float, or exact)."""
    return {name: number(HYPER[name](opt, lr)) for name in USES[rule_kind(opt)]}


def apply(kind: str, values: dict) -> SimpleNamespace:
    """Run the rules of ``kind`` over ``values`` (hyperparameters, t, sqrt, p, g, state before):
    the namespace afterwards holds every intermediate (m_hat, ...) and the new state and p."""
    s = SimpleNamespace(**values)
    for name, formula in RULES[kind]:
        setattr(s, name, formula(s))
    return s


def step(
    opt,
    hyper: dict,
    params: dict,
    grads: dict,
    state: dict,
    t: int,
    sqrt: Callable = np.sqrt,
    zeros: Callable = np.zeros_like,
) -> tuple[dict, dict]:
    """One optimizer step over named tensors: (new params, new state). ``state`` maps a tensor's name
    to its state (``{"m": ..., "v": ...}``); a tensor without state starts from zeros."""
    kind = rule_kind(opt)
    new_params, new_state = {}, {}
    for name, p in params.items():
        before = state.get(name) or {key: zeros(p) for key in STATE[opt.kind]}
        s = apply(kind, {**hyper, "t": t, "sqrt": sqrt, "p": p, "g": grads[name], **before})
        new_params[name] = s.p
        new_state[name] = {key: getattr(s, key) for key in STATE[opt.kind]}
    return new_params, new_state


def without_residue(grads: dict, sizes: dict, noise: float) -> dict:
    """Gradients within rounding of 0 as 0, in the spirit of the ReLU-kink rule: an entry no larger than
    ``noise`` times the sum of the magnitudes of the terms it summed (``sizes``) is what float64 leaves of
    a sum whose exact value is 0. Adam would turn such a residue into a step of up to lr; the exact
    engine moves nothing."""
    return {name: np.where(np.abs(g) <= noise * sizes[name], 0.0, g) for name, g in grads.items()}


# the contract's names of each state tensor in `updates[u].layers[].state`: (for the weights, for the biases)
STATE_KEYS = {"velocity": ("velocity", "velocity_biases"), "m": ("m", "m_biases"), "v": ("v", "v_biases")}
