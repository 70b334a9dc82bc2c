"""The pictures of a worked solution, as Figure blocks of the document: the images and filters, the
convolution window of the expanded cell next to its products, feature maps, pool winners, training curves."""

from __future__ import annotations

import numpy as np
import sympy

from ..engine.algebra import exact
from ..engine.exact import Derivation, StepDerivation
from ..errors import VerificationError
from .layout import chart_top, heatmap
from .model import Chart, Figure
from .numbers import plain_number
from .optimizer_text import optimizer_name


class Illustrator:
    """Builds the figures of one derivation; ``worked.Builder`` places them in its sections."""

    def __init__(self, derivation: Derivation, precision: int) -> None:
        self.d = derivation
        self.sc = derivation.scenario
        self.precision = precision
        self.in_force = self.parameters_in_force()

    def panel(self, title: str, array: np.ndarray, marks=frozenset(), window=None, scale="diverging"):
        return heatmap(title, array, scale, self.precision, marks, window)

    def setup(self, which: str) -> Figure:
        sc = self.sc
        exacts = np.vectorize(exact, otypes=[object])
        panels = []
        if which == "images":
            for x in sc.inputs:
                values = exacts(x.pixels)
                for c in range(values.shape[0]):
                    channel = f", channel {c + 1}" if values.shape[0] > 1 else ""
                    panels.append(self.panel(f"image {x.name}{channel}", values[c], scale="gray"))
            return Figure("setup-images", "The images as pictures (white 0 to black 1).", tuple(panels))
        for flt in sc.conv.filters:
            values = exacts(flt.weights)
            for c in range(values.shape[0]):
                channel = f", channel {c + 1}" if values.shape[0] > 1 else ""
                panels.append(self.panel(f"filter {flt.name}{channel}", values[c]))
        return Figure("setup-filters", "The filters: red positive, blue negative weights.", tuple(panels))

    def parameters_in_force(self) -> dict:
        """step path -> (filter weights K x C x kh x kw, filter biases K) the step's forward pass used."""
        sc = self.sc
        weights = np.array([np.vectorize(exact, otypes=[object])(f.weights) for f in sc.conv.filters], dtype=object)
        biases = [exact(f.bias) for f in sc.conv.filters]
        out = {}
        for step in self.d.steps:
            out[step.path] = (weights, biases)
            done = step.sample == sc.inputs[-1].name
            update = next(
                (
                    u
                    for u in self.d.updates
                    if u.iteration == step.iteration and (u.after == step.sample or (u.after is None and done))
                ),
                None,
            )
            if update is not None:
                weights = update.groups["filters"].numbers()
                biases = list(update.groups["filter_biases"].numbers())
        return out

    def window(self, step: StepDerivation, k: int, key: str, cell: tuple[int, int]) -> Figure:
        """The expanded output cell: the input with the filter window outlined at that cell, the filter,
        their element-wise products (checked: their sum plus the bias is the cell's value), the whole map."""
        sc, p, s = self.sc, self.sc.conv.padding, self.sc.conv.stride
        weights, biases = self.in_force[step.path]
        x = next(sample for sample in sc.inputs if sample.name == step.sample)
        pixels = np.vectorize(exact, otypes=[object])(x.pixels)
        image = np.pad(pixels, ((0, 0), (p, p), (p, p)), constant_values=sympy.Integer(0))
        w = weights[k]
        kh, kw = w.shape[1:]
        i, j = cell
        products = image[:, i * s : i * s + kh, j * s : j * s + kw] * w
        z = step.groups["conv"][k].numbers()[i, j]
        total = sum(products.flat) + biases[k]
        if not (total == z or abs(sympy.N(total - z, 40)) < sympy.Float(10) ** -30):  # exact, or to 30 digits
            path = f"{step.path}.conv[{k}][{i}][{j}]"
            raise VerificationError(f"{path}: the products shown do not add up to {z}")
        flt, panels = sc.conv.filters[k], []
        for c in range(image.shape[0]):
            channel = f", channel {c + 1}" if image.shape[0] > 1 else ""
            padded = f", padded by {p}" if p else ""
            window = (i * s, j * s, kh, kw)
            panels.append(self.panel(f"{x.name}{channel}{padded}", image[c], window=window, scale="gray"))
            panels.append(self.panel(f"filter {flt.name}{channel}", w[c]))
            panels.append(self.panel(f"w \N{MULTIPLICATION SIGN} x{channel}", products[c]))
        panels.append(self.panel(f"z, filter {flt.name}", step.groups["conv"][k]))
        caption = (
            f"Cell ({i + 1}, {j + 1}): filter {flt.name}'s window on {x.name} (outlined), the filter, the element-wise "
            f"products (their sum plus the bias {plain_number(biases[k], self.precision)} is the cell's value), and "
            f"the whole feature map z."
        )
        return Figure(key, caption, tuple(panels))

    def training(self) -> Figure:
        return training_figure(self.d)


def training_figure(d) -> Figure:
    """Probability of the label and loss of each sample, pass by pass and after training."""
    sc = d.scenario
    passes = sorted({s.iteration for s in d.steps})
    ticks = tuple(f"pass {t}" for t in passes) + ("final",)
    probs, losses = [], []
    for x in sc.inputs:
        records = [s for s in d.steps if s.sample == x.name] + [s for s in d.final if s.sample == x.name]
        y = sc.classes.index(x.label)
        probs.append((x.name, tuple(float(r.groups["probs"].values[y]) for r in records)))
        losses.append((x.name, tuple(float(r.groups["loss"].values.item()) for r in records)))
    top = chart_top(v for _, ys in losses for v in ys)
    panels = (
        Chart("probability of the label", ticks, tuple(probs), 1.0),
        Chart("loss", ticks, tuple(losses), top),
    )
    caption = "Each sample's probability of its label and its loss, pass by pass"
    if sc.training.optimizer.kind != "sgd":
        caption += f", trained with {optimizer_name(sc.training.optimizer)}"
    return Figure("summary-curves", caption + ".", panels)
