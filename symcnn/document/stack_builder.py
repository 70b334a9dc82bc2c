"""The worked solution of a `layers` stack: one forward section per layer in order, the backward pass in
reverse (each layer's weight gradients and the gradient into its input, the conv input gradient as a
correlation with the flipped filter), the updates, the training summary and the final pass."""

from __future__ import annotations

import numpy as np

from ..engine.algebra import exact
from ..engine.optimizers import STATE
from ..engine.stack import Record
from ..engine.stack_cells import optimizer_equations
from ..escape import slug
from ..progress import progress
from ..verify import Report
from . import stack_formulas as formulas
from .builder import Builder
from .comparison import comparison
from .layout import heatmap
from .model import (
    Cell,
    Document,
    Figure,
    Section,
    Settings,
    Table,
    Text,
    assemble,
    cells_to_show,
    equation,
    matrices,
    values_of,
    worked_steps,
)
from .names import ACTIVATION_NAMES, UPDATE_NAMES, WIDE_CLASSES, unique_slugs
from .numbers import plain_number
from .optimizer_text import STATE_KINDS, STATE_WORDS, representative, step_column, worked_blocks
from .pictures import training_figure

FLIPPED = (
    "Why the filter appears flipped: output cell (i, j) met input cell (r, q) through filter entry "
    "(r - s(i-1) + p, q - s(j-1) + p), so as (i, j) moves right the entry moves left: the sum is a "
    "correlation of the zero-padded upstream gradient with the filter rotated by 180 degrees."
)


class StackBuilder:
    def __init__(self, report: Report, settings: Settings) -> None:
        self.report, self.settings = report, settings
        self.d = report.stack
        self.sc = report.scenario
        self.D = self.d.deriver
        self.N = self.d.notation
        self.sample_keys = dict(zip((x.name for x in self.sc.inputs), unique_slugs(x.name for x in self.sc.inputs)))
        self.precision = settings.precision

    # ------------------------------------------------------------------ helpers
    @property
    def elide(self) -> bool:
        return self.settings.detail == "summary"

    def eq(self, q):
        return equation(q, elide=self.elide)

    def cells(self, group, nonzero: bool = False) -> list[tuple]:
        """Cells to expand: every one at full detail; else one, where something happens when asked."""
        if self.settings.detail == "full":
            return list(np.ndindex(*group.shape))
        if nonzero:
            values = np.abs(values_of(group))
            if values.max(initial=0) > 0:
                return [np.unravel_index(int(np.argmax(values)), group.shape)]
        return cells_to_show(group, self.settings.detail)

    def show(self, blocks: list, group, name_of, nonzero: bool = False) -> None:
        """Representative equations, then the whole array (one matrix per channel of a map)."""
        for index in self.cells(group, nonzero):
            blocks.append(self.eq(group[index]))
        values = group.values
        if values.ndim == 4:  # filters with channels: one matrix per filter and channel
            for k in range(values.shape[0]):
                for c in range(values.shape[1]):
                    blocks += matrices(name_of(k, c), group[k][c], elide=self.elide)
        elif values.ndim == 3:
            for k in range(values.shape[0]):
                blocks += matrices(name_of(k), group[k], elide=self.elide)
        else:
            blocks += matrices(name_of(0), group, elide=self.elide)

    def name(self, n: int, grad: bool = False, sample=None):
        """The matrix name of layer n's output (n = -1: the image), per channel k."""

        def of(k):
            if n < 0:
                return self.N.grad("input", None, sample=sample) if grad else self.N("input", None)
            shape = self.d.steps[0].layers[n]["output"].shape
            info = self.N.info[self.D.output_symbol(n, (k, 0, 0) if len(shape) == 3 else (0,))]
            return self.N.grad(info.kind, info.owner, sample=sample) if grad else self.N(info.kind, info.owner)

        return of

    def describe(self, layer) -> str:
        kind = layer.layer
        if kind == "conv":
            kh, kw = layer.kernel_shape
            return (
                f"convolution (cross-correlation), {len(layer.filters)} filter(s) {kh}x{kw}, "
                f"stride {layer.stride}, padding {layer.padding}"
            )
        if kind == "activation":
            return ACTIVATION_NAMES[layer.kind]
        if kind == "pool":
            size = "global" if layer.is_global else f"window {layer.size[0]}x{layer.size[1]}, stride {layer.stride[0]}"
            return f"{layer.kind} pooling, {size}"
        rows, cols = layer.weights.shape
        return f"dense, {cols} inputs to {rows} outputs"

    # ------------------------------------------------------------------ sections
    def setup(self) -> Section:
        sc = self.sc
        blocks: list = [Text(f"Classes: {', '.join(sc.classes)}.")]
        for x in sc.inputs:
            blocks.append(Text(f"Image {x.name} (label {x.label}):"))
            values = np.vectorize(exact, otypes=[object])(x.pixels)
            for c in range(values.shape[0]):
                blocks += matrices(self.N("input", None), values[c], elide=self.elide)
        blocks.append(
            Figure(
                "setup-images",
                "The input images.",
                tuple(heatmap(f"image {x.name}", x.pixels[0], "gray", self.precision) for x in sc.inputs),
            )
        )
        rows = [(Cell(str(n + 1)), Cell(layer.name), Cell(self.describe(layer))) for n, layer in enumerate(sc.layers)]
        blocks.append(Text("The network, applied top to bottom, then softmax and cross-entropy:"))
        blocks.append(Table((Cell("#"), Cell("layer"), Cell("what it does")), tuple(rows)))
        first = self.d.steps[0]
        for n, layer in enumerate(sc.layers):
            if layer.layer == "conv":
                for k, flt in enumerate(layer.filters):
                    blocks.append(Text(f"{layer.name}, filter {flt.name}, bias {self.plain(flt.bias)}:"))
                    w = first.values["params"][n][0][k]
                    for c in range(w.shape[0]):
                        blocks += matrices(self._param_name(n, k, channel=self._channel(n, c)), w[c], elide=self.elide)
            elif layer.layer == "dense":
                W, B = first.values["params"][n]
                blocks.append(Text(f"{layer.name}: weights (one row per output) and biases:"))
                blocks += matrices(self._param_name(n, 0), W, elide=self.elide)
                blocks += matrices(self._param_name(n, 0, "biases"), B, elide=self.elide)
        t = sc.training
        blocks.append(
            Text(
                f"Learning rate {self.plain(t.learning_rate)}, {t.iterations} pass(es), parameters updated "
                f"{UPDATE_NAMES[t.update]}; "
                + ("conv filters learn too." if t.update_filters else "conv filters stay fixed; dense layers learn.")
            )
        )
        return Section("Setup", "setup", blocks, 1)

    def _param_name(
        self, n: int, k: int, which: str = "weights", new: bool = False, channel=None, grad=False, sample=None
    ):
        """The name of a parameter matrix (w^A, W^hidden, b^A, ...), of one channel of a filter with ``channel``,
        of its gradient with ``grad``."""
        layer = self.sc.layers[n]
        index = (k, 0, 0, 0) if layer.layer == "conv" else (0, 0) if which == "weights" else (0,)
        info = self.N.info[self.D.param_symbol(n, which, index)]
        owner = info.owner if info.kind in ("filter", "filter_bias", "weight", "bias") else None
        sub = (channel + 1,) if channel is not None else ()
        if grad:
            return self.N.grad(info.kind, owner, *sub, sample=sample)
        return self.N(info.kind, owner, *sub, new=new) if new else self.N(info.kind, owner, *sub)

    def _channel(self, n: int, c: int):
        """The channel index to name, when a conv layer's filters have more than one."""
        layer = self.sc.layers[n]
        return c if layer.layer == "conv" and layer.filters[0].weights.shape[0] > 1 else None

    def plain(self, number: float) -> str:
        return plain_number(exact(number), self.precision)

    def forward(self, step: Record, key: str) -> list[Section]:
        sections = []
        for n, layer in enumerate(self.sc.layers):
            blocks: list = []
            out = step.layers[n]["output"]
            if layer.layer == "dense" and n == self.D.first_dense and step.values["records"][n]["input"].ndim == 3:
                blocks.append(
                    Text(
                        "Flatten: the feature maps, channel after channel, row by row, become the "
                        "vector f that the dense layer reads."
                    )
                )
                blocks += matrices(
                    self.N("feature", None), step.values["records"][n]["input"].reshape(-1), elide=self.elide
                )
            if layer.layer == "conv":
                source = "the image" if n == 0 else f"the output of {self.sc.layers[n - 1].name}"
                blocks.append(
                    Text(f"With x this layer's input ({source}), z its output, w and b its filters and biases:")
                )
                blocks.append(formulas.conv_forward(self.N, layer, step.values["records"][n]["input"].shape[0]))
            self.show(blocks, out, self.name(n))
            if layer.layer == "conv":
                blocks.append(
                    Figure(
                        f"{key}-{slug(layer.name)}-maps",
                        f"Feature maps of {layer.name}.",
                        tuple(
                            heatmap(f"{layer.name}, {flt.name}", out.values[k], "diverging", self.precision)
                            for k, flt in enumerate(layer.filters)
                        ),
                    )
                )
            sections.append(
                Section(f"Layer {n + 1}, {layer.name}: {self.describe(layer)}", f"{key}-{slug(layer.name)}", blocks)
            )
        g = step.groups
        sections.append(Section("Softmax", f"{key}-softmax", [self.eq(q) for q in g["probs"]]))
        sections.append(Section("Cross-entropy loss", f"{key}-loss", [self.eq(g["loss"].item())]))
        return sections

    def backward(self, step: Record, key: str) -> list[Section]:
        g, sample = step.groups, step.sample
        sections = [Section("Backward: loss to logits", f"{key}-grad-logits", [self.eq(q) for q in g["grad_logits"]])]
        for n in range(len(self.sc.layers) - 1, -1, -1):
            layer, blocks = self.sc.layers[n], []
            groups = step.layers[n]
            if "grad_weights" in groups:
                gw, gb = groups["grad_weights"], groups["grad_biases"]
                self.show(
                    blocks,
                    gw,
                    lambda k, c=None, n=n: self._param_name(
                        n, k, channel=None if c is None else self._channel(n, c), grad=True, sample=sample
                    ),
                    nonzero=True,
                )
                blocks += [self.eq(gb[i]) for i in self.cells(gb)]
                blocks += matrices(
                    self.N.grad(
                        self.N.info[self._param_name(n, 0, "biases")].kind,
                        self.N.info[self._param_name(n, 0, "biases")].owner,
                        sample=sample,
                    ),
                    gb,
                    elide=self.elide,
                )
            into = g["grad_input"] if n == 0 else step.layers[n - 1]["grad_output"]
            if layer.layer == "conv":
                blocks += self.flipped_intro(step, n, layer)
            elif layer.layer == "dense" and n > 0 and self.sc.layers[n - 1].layer == "activation":
                into_hidden, through = formulas.dense_backward(self.N)
                blocks += [
                    Text("Into a hidden layer: the upstream gradient goes back through the transposed weights,"),
                    into_hidden,
                    Text(
                        "and then, in the activation's section, through its derivative: "
                        "delta = (W^T delta') times f'(h)."
                    ),
                    through,
                ]
            self.show(blocks, into, self.name(n - 1, True, sample), nonzero=True)
            if layer.layer == "conv":
                blocks.append(self.flipped_picture(step, n, layer, into, key))
            if n == 0:
                blocks.append(
                    Figure(
                        f"{key}-saliency",
                        f"Saliency map of {sample}: dL/dx, the loss's sensitivity to each pixel.",
                        tuple(
                            heatmap(f"dL/dx, {sample}", v, "diverging", self.precision)
                            for v in self._channels(into.values)
                        ),
                    )
                )
            title = f"Backward through {layer.name}" + (" (flipped filter)" if layer.layer == "conv" else "")
            sections.append(Section(title, f"{key}-grad-{slug(layer.name)}", blocks))
        return sections

    def flipped_intro(self, step: Record, n: int, layer) -> list:
        scatter, flipped = formulas.conv_input_gradient(self.N, layer, step.values["records"][n]["output"].shape)
        kh, kw = layer.kernel_shape
        return [
            Text(
                "Into the layer's input: each input cell collects dL/dz of every output cell whose window "
                "covered it, times the filter entry that met it:"
            ),
            scatter,
            Text(FLIPPED),
            Text(
                f"With delta the upstream gradient, {layer.stride - 1} zero(s) between its cells and "
                f"{kh - 1 - layer.padding} around it:"
            ),
            flipped,
        ]

    def flipped_picture(self, step: Record, n: int, layer, into, key: str):
        """The expanded cell of dL/dx as the upstream window over the flipped filter (checked)."""
        index = self.cells(into, nonzero=True)[0]
        cell = tuple(int(t) for t in (index if len(index) == 3 else (0, *index)))
        rec = step.values["records"][n]
        dz = np.vectorize(float, otypes=[float])(rec["grad_output"])
        w = np.vectorize(float, otypes=[float])(step.values["params"][n][0])
        name = "the image" if n == 0 else f"the output of {self.sc.layers[n - 1].name}"
        return formulas.flipped_figure(
            f"{key}-{slug(layer.name)}-flipped",
            layer,
            dz,
            w,
            rec["input"].shape,
            cell,
            float(into.values[tuple(index)]),
            self.precision,
            name,
        )

    @staticmethod
    def _channels(values: np.ndarray) -> list:
        return [values] if values.ndim == 2 else list(values)

    def update(self, update: Record, key: str) -> Section:
        blocks = []
        learning = [
            (n, layer)
            for n, layer in enumerate(self.sc.layers)
            if update.values["params"][n] is not None and self.sc.learns(layer)
        ]
        for entry, (n, layer) in zip(update.layers, learning):
            w, b = entry["weights"], entry["biases"]
            blocks.append(Text(f"{layer.name}:"))
            for index in self.cells(w):
                blocks.append(self.eq(w[index]))
            if w.values.ndim == 4:
                for k in range(w.shape[0]):
                    for c in range(w.shape[1]):
                        name = self._param_name(n, k, new=True, channel=self._channel(n, c))
                        blocks += matrices(name, w[k][c], elide=self.elide)
            elif layer.layer == "conv" and w.values.ndim == 3:
                for k in range(w.shape[0]):
                    blocks += matrices(self._param_name(n, k, new=True), w[k], elide=self.elide)
            else:
                blocks += matrices(self._param_name(n, 0, new=True), w, elide=self.elide)
            blocks += [self.eq(b[i]) for i in self.cells(b)]
            if self.sc.training.optimizer.kind != "sgd":
                blocks += self.optimizer_blocks(update, n, layer, entry)
        after = f" after {update.sample}" if update.sample else f" after pass {update.iteration}"
        return Section(f"Update{after}", f"{key}-update", blocks)

    def optimizer_blocks(self, update: Record, n: int, layer, entry: dict) -> list:
        """Momentum/Adam: one parameter's state equations (with the convention at t = 1), the state matrices."""
        opt, extras = self.sc.training.optimizer, update.values["optimizer"]
        index = representative(extras["grads"][n, 0], extras["before"].get((n, 0)))
        quantities = optimizer_equations(self.D, update, n, 0, index)
        blocks = worked_blocks(opt, layer.name, extras["t"], quantities, self.eq)
        if extras["t"] == 1 and any(entry is not first for first in update.layers[:1]):
            blocks = blocks[1:]  # the convention once, with the first layer
        for state in STATE[opt.kind]:
            values = entry["state." + state].values
            blocks.append(Text(f"The {STATE_WORDS[state]} of {layer.name}'s weights after this step:"))
            arrays = [values[k] for k in range(values.shape[0])] if values.ndim >= 3 else [values]
            for array in arrays:
                for plane in [array[c] for c in range(array.shape[0])] if array.ndim == 3 else [array]:
                    blocks += matrices(self.N(STATE_KINDS[state], None, time="t"), plane, elide=self.elide)
        return blocks

    def summary(self) -> Section:
        sc, N = self.sc, self.N
        wide = len(sc.classes) > WIDE_CLASSES
        columns = (
            (Cell("predicted"), Cell("p(predicted)"), Cell("p(label)"))
            if wide
            else tuple(Cell(N("prob", c), True) for c in sc.classes)
        )
        header = (Cell("pass"), Cell("sample"), Cell("label")) + columns + (Cell(N("loss"), True),)
        rows = []
        for step in (*self.d.steps, *self.d.final):
            g = step.groups
            probs = g["probs"].numbers()
            if wide:
                best = int(np.argmax(values_of(g["probs"])))
                cells = (Cell(sc.classes[best]), Cell(probs[best], True), Cell(probs[step.y], True))
            else:
                cells = tuple(Cell(p, True) for p in probs)
            when = "final" if step.iteration is None else str(step.iteration)
            rows.append(
                (Cell(when), Cell(step.sample), Cell(step.label)) + cells + (Cell(g["loss"].numbers().item(), True),)
            )
        header, rows = step_column(sc, self.d.steps, self.d.final, header, rows)
        return Section("Training summary", "summary", [Table(header, tuple(rows)), training_figure(self.d)], 1)

    def final(self) -> Section:
        blocks = []
        for step in self.d.final:
            g = step.groups
            best = self.sc.classes[int(np.argmax(values_of(g["probs"])))]
            blocks.append(Text(f"{step.sample} (label {step.label}): predicted {best}."))
            if self.settings.samples is not None and step.sample not in self.settings.samples:
                continue  # a sample not worked in full: its prediction only (its numbers are in the summary)
            blocks += [self.eq(q) for q in g["probs"]] + [self.eq(g["loss"].item())]
        return Section("Final pass with the trained parameters", "final", blocks, 1)

    def build(self) -> Document:
        sc, d = self.sc, self.d
        sections = [self.setup()]
        iterations = sorted({s.iteration for s in d.steps})
        shown = {"all": iterations, "first": iterations[:1], "last": iterations[-1:]}[self.settings.iterations]
        passes = len(iterations) > 1
        steps = worked_steps(d.steps, shown, self.settings.samples)
        bar = progress(len(steps) + 1, f"writing {sc.name}", unit="sample")
        for step in steps:
            bar.update()
            key = (f"it{step.iteration}-" if passes else "") + self.sample_keys[step.sample]
            sections.append(Section(f"Pass {step.iteration}, {step.sample} (label {step.label})", key, [], 1))
            sections += self.forward(step, key) + self.backward(step, key)
            update = next((u for u in d.updates if u.iteration == step.iteration and u.sample == step.sample), None)
            if update is not None:
                sections.append(self.update(update, key))
        for u in d.updates:
            if u.sample is None and u.iteration in shown:
                sections.append(Section(f"Pass {u.iteration}: batch update", f"it{u.iteration}-batch", [], 1))
                sections.append(self.update(u, f"it{u.iteration}-batch"))
        sections += [self.summary(), self.final()]
        if self.settings.compare_optimizers:
            sections.append(comparison(sc))
        bar.close()
        return assemble(self.report, sections, self.settings, self.N)


def build_any_document(report: Report, settings: Settings | None = None) -> Document:
    """The worked solution: per layer for a `layers` stack, the article's layout for the legacy keys."""
    builder = StackBuilder if report.scenario.is_stack else Builder
    return builder(report, settings or Settings()).build()
