"""Speaker notes: one or two sentences a teacher would say over each frame of the deck, with the
frame's own numbers where they help. Plain text (the template escapes it)."""

from __future__ import annotations

from ..document.layout import cell_text

ACTIVATION_NOTES = {
    "ReLU": "ReLU keeps the positive cells and sets the others to 0. ReLU'(z) = 0 there, so no gradient "
    "reaches those cells on the way back.",
    "leaky ReLU": "Leaky ReLU scales negative cells by a small slope instead of zeroing them, so a little "
    "gradient still flows back through them.",
    "sigmoid": "The sigmoid squashes every cell into (0, 1); its slope is largest at 0 and small for large |z|.",
    "tanh": "tanh squashes every cell into (-1, 1); its slope is 1 at 0 and small for large |z|.",
}
FIXED_NOTES = {
    "flatten": "Flattening only reorders the numbers: filter by filter, row by row, into one feature vector.",
    "grad-logits": "SymPy differentiates the loss and simplifies to p - y: each probability minus the one-hot "
    "label. The true class gets a negative gradient, so the step raises its logit.",
    "grad-dense": "A weight's gradient is its class's logit gradient times the feature it multiplies: a feature "
    "that is 0 gives its weights no gradient.",
    "grad-filters": "The gradient flows back through the dense layer, the pooling and the activation to every "
    "filter weight; cells the activation cut to 0 pass nothing back.",
    "update": "Every parameter takes one step against its gradient: new = old - learning rate x gradient.",
    "summary": "Read each sample's probability of its label and its loss pass by pass: training should raise "
    "the one and lower the other.",
    "audit": "These are the numbers the source printed, checked one by one against ours.",
    "verification": "Every number in this deck was derived twice, exactly with SymPy and in floating point "
    "with NumPy, and the two agree.",
}


def values(group, precision: int) -> list[str]:
    """The values of the equations of a frame, as shown in cells (0.85, -2)."""
    return [cell_text(b.value, precision) for b in group if b.kind == "equation"]


def listed(numbers: list[str]) -> str:
    return ", ".join(numbers[:-1]) + " and " + numbers[-1] if len(numbers) > 1 else "".join(numbers)


def kind_of(section) -> str:
    """What a section shows, from its key (it1-img1-conv-A, img1-softmax, setup, ...)."""
    key = section.key
    for kind in (
        "grad-logits",
        "grad-dense",
        "grad-filters",
        "conv",
        "activation",
        "pool",
        "flatten",
        "logits",
        "softmax",
        "loss",
        "update",
        "batch",
    ):
        if key.endswith(f"-{kind}") or f"-{kind}-" in key:
            return kind
    return key


def frame_note(section, group, doc, n: int) -> str:
    """The note of the n-th frame (0: the first) of ``section``, showing ``group``'s blocks."""
    kind, shown = kind_of(section), values(group, doc.settings.precision)
    if kind == "setup":
        if any(b.kind == "figure" and "filter" in b.caption for b in group):
            return "The filters are what the convolution slides over the image: red weights positive, blue negative."
        if n == 0:
            return f"Everything the network starts with. {doc.description}".strip()
        return "The remaining parameters and how the network is trained."
    if kind == "conv":
        first = f" The first cell comes to {shown[0]}." if shown else ""
        return (
            "Lay the filter on a window of the image, multiply cell by cell, add up and add the bias; "
            "sliding the window gives the whole feature map." + first
        )
    if kind == "activation":
        return ACTIVATION_NOTES.get(section.title, f"{section.title} is applied to every cell on its own.")
    if kind == "pool":
        if section.title.lower().startswith("max"):
            return "Max pooling keeps the largest cell of each window; only that cell gets a gradient back."
        return "Average pooling takes the mean of each window; on the way back every cell gets an equal share."
    if kind == "logits":
        return "Each logit is a weighted sum of all the features plus its class's bias" + (
            f": here {listed(shown)}." if shown else "."
        )
    if kind == "softmax":
        return "Softmax turns the logits into probabilities that add up to 1" + (
            f": here {listed(shown)}." if shown else "."
        )
    if kind == "loss":
        value = f" Here it is {shown[0]}." if shown else ""
        return "The loss is minus the log of the probability of the true label: 0 only when that is 1." + value
    if kind == "final":
        return "With the trained parameters every image goes forward once more: this is what the network predicts now."
    if kind in FIXED_NOTES:
        return FIXED_NOTES[kind]
    if n:
        return f"{section.title}, continued."
    return f"{section.title}: first the general form, then the numbers that go in, then the result."
