"""The questions of a `layers` stack variant: eight numbers along one forward and backward pass, every
layer kind asked about, each named by its `symcnn values` path (``steps[0].layers[3].output[0][1][1]``).

1. a cell of the second conv layer's output (the first's if there is one conv layer);
2. a pooling output (else an activation of a feature map);
3. a hidden unit's activation (else a logit);
4. a softmax probability;
5. a hidden layer's gradient dL/dz (else the gradient into the first dense layer's input);
6. an entry of a first-layer filter's gradient (else of the first dense layer's weights);
7. an entry of dL/dx, the gradient into the input image;
8. that first-layer weight after the first update (a dense weight when filters stay fixed).

Cells are picked by ``default_rng([seed, k, 1])`` as for the legacy questions, among non-zero values
where there are any.
"""

from __future__ import annotations

import numpy as np

from ..verify import lookup
from .questions import QUESTION_STREAM, Question, cell_text, choose_questions, pick, tolerance
from .variants import Variant


def index_path(index: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in index)


def where_text(index: tuple[int, ...]) -> str:
    """A cell of a map (channel, row, column), of an image (row, column) or of a vector (entry)."""
    if len(index) == 1:
        return f"entry {index[0] + 1}"
    *channel, i, j = index
    return (f"channel {channel[0] + 1}, " if channel else "") + cell_text((i, j))


def choose_stack_questions(variant: Variant) -> list[Question]:
    sc, trace = variant.scenario, variant.trace
    rng = np.random.default_rng([variant.seed, variant.index, QUESTION_STREAM])
    values = trace.to_dict()
    layers = sc.layers
    first_dense = next(n for n, layer in enumerate(layers) if layer.layer == "dense")
    convs = [n for n, layer in enumerate(layers) if layer.layer == "conv"]
    # filters that learn change after the first sample: then every question is about the first one
    samples = [0] if sc.training.update_filters else list(range(len(sc.inputs)))
    asked: list[tuple[str, str, int | None, int | None, str]] = []

    def step_text(s: int) -> str:
        step = trace.steps[s]
        return f"Pass {step.iteration}, image {step.sample}" + (" (the first sample)" if s == 0 else "")

    def array(path: str) -> np.ndarray:
        return np.asarray(lookup(values, path), dtype=np.float64)

    def ask_output(kind: str, s: int, n: int, what: str) -> None:
        path = f"steps[{s}].layers[{n}].output"
        index = pick(rng, array(path), lambda v: v != 0)
        layer = layers[n]
        owner = ""
        if len(index) == 3 and layer.layer == "conv":
            owner = f" (filter {layer.filters[index[0]].name})"
        asked.append(
            (
                kind,
                path + index_path(index),
                s,
                None,
                f"{step_text(s)}: {what} {layer.name}{owner}, {where_text(index)}.",
            )
        )

    # 1-2. the maps
    if convs:
        n = convs[1] if len(convs) > 1 else convs[0]
        ask_output("layer_conv", int(rng.choice(samples)), n, "the output of the conv layer")
    pools = [n for n in range(first_dense) if layers[n].layer == "pool"]
    maps = [n for n in range(first_dense) if layers[n].layer == "activation"]
    if pools or maps:
        n = int(rng.choice(pools or maps))
        kind = "layer_pool" if pools else "layer_activation"
        ask_output(kind, int(rng.choice(samples)), n, f"the output of the {layers[n].layer} layer")
    # 3-4. the dense part, first sample
    hidden = [n for n in range(first_dense, len(layers) - 1) if layers[n].layer == "activation"]
    if hidden:
        ask_output("layer_activation", 0, int(rng.choice(hidden)), "the output of the activation layer")
    else:
        c = int(rng.integers(len(sc.classes)))
        asked.append(
            ("logits", f"steps[0].logits[{c}]", 0, None, f"{step_text(0)}: the logit of class {sc.classes[c]}.")
        )
    c = int(rng.integers(len(sc.classes)))
    asked.append(
        ("probs", f"steps[0].probs[{c}]", 0, None, f"{step_text(0)}: the softmax probability of class {sc.classes[c]}.")
    )
    # 5-7. the backward pass, first sample
    dense_hidden = [n for n in range(first_dense, len(layers) - 1) if layers[n].layer == "dense"]
    n = int(rng.choice(dense_hidden)) if dense_hidden else max(first_dense - 1, 0)
    path = f"steps[0].layers[{n}].grad_output"
    index = pick(rng, array(path), lambda v: v != 0)
    what = (
        f"the output of the dense layer {layers[n].name} (before its activation)"
        if dense_hidden
        else (f"the output of {layers[n].name}")
    )
    asked.append(
        (
            "layer_grad_output",
            path + index_path(index),
            0,
            None,
            f"{step_text(0)}: the gradient of the loss with respect to {what}, {where_text(index)}.",
        )
    )
    n = convs[0] if convs else first_dense
    path = f"steps[0].layers[{n}].grad_weights"
    index = pick(rng, array(path), lambda v: v != 0)
    weight = weight_text(sc, n, index)
    asked.append(
        (
            "layer_grad_weights",
            path + index_path(index),
            0,
            None,
            f"{step_text(0)}: the gradient of the loss with respect to {weight}.",
        )
    )
    index_x = pick(rng, array("steps[0].grad_input"), lambda v: v != 0)
    asked.append(
        (
            "grad_input",
            "steps[0].grad_input" + index_path(index_x),
            0,
            None,
            f"{step_text(0)}: the gradient of the loss with respect to the input pixel at {where_text(index_x)}.",
        )
    )
    # 8. an updated weight: the one just asked about when it learns, else a weight of the last dense layer
    learning = [m for m, layer in enumerate(layers) if sc.learns(layer)]
    if n not in learning:
        n = len(layers) - 1
        index = pick(rng, array(f"steps[0].layers[{n}].grad_weights"), lambda v: v != 0)
        weight = weight_text(sc, n, index)
    asked.append(
        (
            "layer_weights",
            f"updates[0].layers[{learning.index(n)}].weights" + index_path(index),
            None,
            0,
            f"{weight[0].upper()}{weight[1:]} {update_text(variant)}.",
        )
    )

    asked += optimizer_questions(variant, rng, n, learning.index(n), index)
    questions = []
    for number, (kind, path, s, u, text) in enumerate(asked, start=1):
        value = float(lookup(values, path))
        questions.append(Question(f"q{number}", kind, path, s, u, text, value, tolerance(value)))
    return questions


def weight_text(sc, n: int, index: tuple[int, ...]) -> str:
    layer = sc.layers[n]
    if n == len(sc.layers) - 1:
        return f"the weight of {layer.name} from input {index[1] + 1} to class {sc.classes[index[0]]}"
    if layer.layer == "conv":
        k, *rest = index
        channel = f"channel {rest[0] + 1}, " if len(rest) == 3 else ""
        return f"the weight of filter {layer.filters[k].name} of {layer.name} at {channel}{cell_text(tuple(rest[-2:]))}"
    return f"the weight of {layer.name} from input {index[1] + 1} to output {index[0] + 1}"


def update_text(variant: Variant) -> str:
    sc = variant.scenario
    rate = f"learning rate {sc.training.learning_rate:g}"
    if sc.training.update == "per_sample":
        return f"after the update that follows image {variant.trace.steps[0].sample} ({rate})"
    mode = "mean" if sc.training.update == "batch_mean" else "sum"
    return f"after the batch update of pass 1 (the {mode} of all images' gradients, {rate})"


NOISE = 1e-12  # a gradient this small is rounding noise of an exact 0 (the engine counts it as 0)
STATE_TEXT = {
    "velocity": "the momentum buffer (velocity) b_t",
    "m": "Adam's first moment m_t",
    "v": "Adam's second moment v_t",
}


def optimizer_questions(variant: Variant, rng, n: int, m: int, index: tuple[int, ...]) -> list[tuple]:
    """Momentum or Adam with two updates or more: a weight's state after the second update (the velocity,
    or m_t and v_t) and the weight itself after it. The weight is the one asked about before when the
    second update's gradient of it is not 0, else one whose gradients of both updates are not 0."""
    sc, trace = variant.scenario, variant.trace
    optimizer = sc.training.optimizer
    if optimizer.kind == "sgd" or len(trace.updates) < 2:
        return []
    batch = 1 if sc.training.update == "per_sample" else len(sc.inputs)

    def moved(n: int) -> np.ndarray:  # the weights that both updates' gradients move
        first, second = (
            sum(
                np.asarray(s.layers[n]["grad_weights"], dtype=np.float64)
                for s in trace.steps[k * batch : (k + 1) * batch]
            )
            for k in (0, 1)
        )
        return (np.abs(first) > NOISE) & (np.abs(second) > NOISE)

    if not moved(n)[index]:  # else a weight of the same layer that moves, else one of the last layer
        if not moved(n).any():
            m += sum(1 for k in range(n + 1, len(sc.layers)) if sc.learns(sc.layers[k]))
            n = len(sc.layers) - 1
        index = pick(rng, moved(n), bool)
    weight = weight_text(sc, n, index)
    if optimizer.kind == "momentum":
        how = f"momentum {optimizer.momentum:g}" + (", Nesterov" if optimizer.nesterov else "")
        states = ["velocity"]
    else:
        how = f"Adam, betas {optimizer.betas[0]:g} and {optimizer.betas[1]:g}, eps {optimizer.eps:g}"
        states = ["m", "v"]
    when = f"after the second update ({how}, learning rate {sc.training.learning_rate:g})"
    at = f"updates[1].layers[{m}]"
    asked = [
        ("layer_state", f"{at}.state.{state}{index_path(index)}", None, 1, f"{STATE_TEXT[state]} of {weight} {when}.")
        for state in states
    ]
    text = f"{weight[0].upper()}{weight[1:]} {when}."
    return asked + [("layer_weights", f"{at}.weights{index_path(index)}", None, 1, text)]


def choose_any_questions(variant: Variant) -> list[Question]:
    """The questions of any variant: a `layers` stack's chosen here, the legacy keys' by
    ``questions.choose_questions`` (this module builds on that one, so the choice is made here)."""
    return (choose_stack_questions if variant.scenario.is_stack else choose_questions)(variant)
