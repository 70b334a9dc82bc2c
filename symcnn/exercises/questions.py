"""The questions of an exercise variant and its answer key: which cell, which sample, what value.

Each question names one number of the run by its path in the `symcnn values` JSON; its answer is
that number, read from the NumPy trace, with a tolerance fit for hand work. The cells asked about
are picked by their own generator, ``default_rng([seed, k, 1])``, so they do not depend on how many
draws the numbers took.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..verify import lookup
from .variants import Variant

QUESTION_STREAM = 1  # third entry of the question generator's seed (the numbers use [seed, k])
ABSOLUTE_TOLERANCE = 0.005  # values of 0.1 and more: right to about two decimals
RELATIVE_TOLERANCE = 0.05  # smaller values: within 5%
ROUNDED_PROBABILITY = 0.0005  # a probability carried to 3 decimals
ACTIVATION_TEXT = {
    "relu": "the ReLU output",
    "leaky_relu": "the leaky ReLU output",
    "sigmoid": "the sigmoid output",
    "tanh": "the tanh output",
    "none": "the activation (none: a = z)",
}


KIND_TEXT = {  # what a question of each kind asks for, in the answer key's legend
    "conv": "a convolution cell",
    "activated": "an activation",
    "pooled": "a pooling output",
    "logits": "a logit",
    "probs": "a probability",
    "loss": "the loss",
    "grad_dense_weights": "a dense-weight gradient",
    "dense_weights": "an updated dense weight",
    "optimizer_state": "an optimizer state value (velocity b_t, or Adam's m_t or v_t)",
    # `layers` stacks (stack_questions.py)
    "layer_conv": "a conv layer's output cell",
    "layer_pool": "a pooling output",
    "layer_activation": "an activation",
    "layer_grad_output": "a hidden layer's gradient",
    "layer_grad_weights": "a first-layer weight gradient",
    "grad_input": "an entry of dL/dx",
    "layer_weights": "an updated weight",
    "layer_state": "an optimizer state",
}


@dataclass(frozen=True)
class Question:
    id: str  # q1, q2, ...
    kind: str  # a key of KIND_TEXT
    path: str  # where the answer sits in the `symcnn values` JSON
    step: int | None  # index into steps (None: an update)
    update: int | None  # index into updates
    text: str  # what to compute, for the student
    value: float
    tol: float

    def key_entry(self) -> dict:
        return {"question": self.text, "path": self.path, "value": self.value, "tol": self.tol}


def tolerance(value: float) -> float:
    """Absolute 0.005 for values of 0.1 or more (and 0); 5% below, so a small value is not matched by 0.
    The loss also allows for a probability rounded to 3 decimals before taking the log."""
    if value == 0 or abs(value) >= 0.1:
        return ABSOLUTE_TOLERANCE
    return float(f"{RELATIVE_TOLERANCE * abs(value):.2g}")


def cell_text(index: tuple[int, ...]) -> str:
    i, j = index
    return f"row {i + 1}, column {j + 1}"


def pick(rng: np.random.Generator, array: np.ndarray, prefer) -> tuple[int, ...]:
    """A random index of ``array``, among the cells where ``prefer`` holds if there are any."""
    cells = [index for index in np.ndindex(array.shape) if prefer(array[index])]
    cells = cells or list(np.ndindex(array.shape))
    return tuple(int(i) for i in cells[rng.integers(len(cells))])


def choose_questions(variant: Variant) -> list[Question]:
    """Seven questions along one forward and backward pass: a conv cell, an activation or pooling
    value, a logit, a probability, the loss, one dense-weight gradient and one updated weight."""
    sc, trace = variant.scenario, variant.trace
    rng = np.random.default_rng([variant.seed, variant.index, QUESTION_STREAM])
    # filters that learn change after the first sample: then every question is about the first one
    samples = [0] if sc.training.update_filters else list(range(len(sc.inputs)))
    s = int(rng.choice(samples))
    asked = [conv_question(sc, trace, rng, s)]
    others = [t for t in samples if t != s] or samples
    asked.append(map_question(sc, trace, rng, int(rng.choice(others))))
    asked += first_sample_questions(sc, trace, rng)
    values, first = trace.to_dict(), trace.steps[0]
    questions = []
    for number, (kind, path, s, u, text) in enumerate(asked, start=1):
        value = float(lookup(values, path))
        tol = tolerance(value)
        if kind == "loss":  # -ln p from p rounded to 3 decimals is off by up to 0.0005 / p
            tol = max(tol, float(f"{ROUNDED_PROBABILITY / first.probs[sc.label_index(sc.inputs[0])]:.2g}"))
        questions.append(Question(f"q{number}", kind, path, s, u, text, value, tol))
    return questions


# a question before its answer: (kind, path, step, update, text)
Asked = tuple[str, str, int | None, int | None, str]


def step_text(trace, s: int) -> str:
    step = trace.steps[s]
    return f"Pass {step.iteration}, image {step.sample}"


def conv_question(sc, trace, rng: np.random.Generator, s: int) -> Asked:
    """A convolution cell of sample ``s`` (not 0: a 0 is too easy to guess)."""
    k, i, j = pick(rng, trace.steps[s].conv, lambda v: v != 0)
    text = f"{step_text(trace, s)}: the convolution with filter {sc.conv.filters[k].name} at {cell_text((i, j))}."
    return "conv", f"steps[{s}].conv[{k}][{i}][{j}]", s, None, text


def map_question(sc, trace, rng: np.random.Generator, s: int) -> Asked:
    """A pooling output of sample ``s`` if there is pooling, else an activation (preferably of a negative
    conv value, for ReLU and leaky ReLU)."""
    step, name = trace.steps[s], step_text(trace, s)
    if sc.pool.kind != "none":
        k, i, j = pick(rng, step.pooled, lambda v: v != 0)
        where = "" if sc.pool.is_global else f", window at {cell_text((i, j))}"
        text = (
            f"{name}: the {'global ' if sc.pool.is_global else ''}{sc.pool.kind} pooling output "
            f"of filter {sc.conv.filters[k].name}{where}."
        )
        return "pooled", f"steps[{s}].pooled[{k}][{i}][{j}]", s, None, text
    negative = sc.activation.kind in ("relu", "leaky_relu") and rng.random() < 0.5
    k, i, j = pick(rng, step.conv, (lambda v: v < 0) if negative else (lambda v: v > 0))
    text = f"{name}: {ACTIVATION_TEXT[sc.activation.kind]} for filter {sc.conv.filters[k].name} at {cell_text((i, j))}."
    return "activated", f"steps[{s}].activated[{k}][{i}][{j}]", s, None, text


def first_sample_questions(sc, trace, rng: np.random.Generator) -> list[Asked]:
    """The first sample's logit, probability and loss, one dense-weight gradient and that weight updated."""
    first, with_initial = trace.steps[0], f"{step_text(trace, 0)} (the first sample)"
    c = int(rng.integers(len(sc.classes)))
    asked = [("logits", f"steps[0].logits[{c}]", 0, None, f"{with_initial}: the logit of class {sc.classes[c]}.")]
    c = int(rng.integers(len(sc.classes)))
    probability = f"{with_initial}: the softmax probability of class {sc.classes[c]}."
    asked.append(("probs", f"steps[0].probs[{c}]", 0, None, probability))
    asked.append(("loss", "steps[0].loss", 0, None, f"{with_initial}: the cross-entropy loss."))
    c, n = pick(rng, first.grad_dense_weights, lambda v: v != 0)
    h, w = sc.pooled_shape
    origin = f"filter {sc.conv.filters[n // (h * w)].name}, {cell_text(divmod(n % (h * w), w))}"
    weight = f"the dense weight of class {sc.classes[c]} and feature {n + 1} ({origin})"
    gradient = f"{with_initial}: the gradient of the loss with respect to {weight}."
    asked.append(("grad_dense_weights", f"steps[0].grad_dense_weights[{c}][{n}]", 0, None, gradient))
    rate = f"learning rate {sc.training.learning_rate:g}"
    if sc.training.update == "per_sample":
        when = f"after the update that follows image {first.sample} ({rate})"
    else:
        mode = "mean" if sc.training.update == "batch_mean" else "sum"
        when = f"after the batch update of pass 1 (the {mode} of all images' gradients, {rate})"
    asked.append(
        ("dense_weights", f"updates[0].dense_weights[{c}][{n}]", None, 0, f"{weight[0].upper()}{weight[1:]} {when}.")
    )
    if sc.training.optimizer.kind != "sgd" and len(trace.updates) >= 2:
        asked += second_step_questions(sc, rng, weight, c, n)
    return asked


STATE_TEXT = {"velocity": "velocity b_t", "m": "first moment m_t", "v": "second moment v_t"}


def second_step_questions(sc, rng: np.random.Generator, weight: str, c: int, n: int) -> list[Asked]:
    """Momentum/Adam: the same weight's optimizer state after the second step, and the weight itself then
    (where Adam's bias correction 1 - beta^2 differs from the first step's)."""
    from ..document.optimizer_text import optimizer_name
    from ..engine.optimizers import STATE

    opt = sc.training.optimizer
    state = STATE[opt.kind][int(rng.integers(len(STATE[opt.kind])))]
    with_opt = f"at step t = 2 of {optimizer_name(opt)} (learning rate {sc.training.learning_rate:g})"
    return [
        (
            "optimizer_state",
            f"updates[1].{state}_dense_weights[{c}][{n}]",
            None,
            1,
            f"The {STATE_TEXT[state]} of {weight} {with_opt}.",
        ),
        (
            "dense_weights",
            f"updates[1].dense_weights[{c}][{n}]",
            None,
            1,
            f"{weight[0].upper()}{weight[1:]} after step t = 2 of {optimizer_name(opt)}.",
        ),
    ]


def key_entry(variant: Variant, questions: list[Question], folder: str) -> dict:
    """What key.json holds for one variant."""
    return {
        "scenario": variant.scenario.name,
        "file": f"{folder}/scenario.yaml",
        "questions": {q.id: q.key_entry() for q in questions},
    }
