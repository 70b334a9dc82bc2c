"""The sections around a worked solution's passes: the setup before them; the training summary, the final
pass and the audit of the stated numbers after. ``Builder`` mixes them in; the student sheet uses the setup."""

from __future__ import annotations

import numpy as np
import sympy

from ..engine.algebra import exact
from .model import Cell, Section, Table, Text
from .names import ACTIVATION_NAMES, UPDATE_NAMES, WIDE_CLASSES
from .numbers import plain_number
from .optimizer_text import step_column


class Bookends:
    """Needs of its builder: ``sc``, ``d`` (the derivation), ``report``, ``N`` (the notation), ``settings``,
    ``pictures`` and the helpers ``matrices``, ``eq`` and ``note`` (a quantity shown: its path explorable)."""

    def setup(self) -> Section:
        sc, blocks = self.sc, []
        blocks.append(Text(f"Classes: {', '.join(sc.classes)}."))
        for x in sc.inputs:
            blocks.append(Text(f"Image {x.name} (label {x.label}):"))
            values = np.vectorize(exact, otypes=[object])(x.pixels)
            for c in range(values.shape[0]):
                blocks += self.matrices(self.N("input", None), values[c])
        blocks.append(self.pictures.setup("images"))
        for flt in sc.conv.filters:
            blocks.append(Text(f"Filter {flt.name}, bias {self.plain_number(flt.bias)}:"))
            values = np.vectorize(exact, otypes=[object])(flt.weights)
            for c in range(values.shape[0]):
                blocks += self.matrices(self.N("filter", flt.name), values[c])
        blocks.append(self.pictures.setup("filters"))
        blocks.append(Text("Dense layer weights (one row per class) and biases:"))
        blocks += self.matrices(self.N("dense_weight", None), np.vectorize(exact, otypes=[object])(sc.dense.weights))
        blocks += self.matrices(self.N("dense_bias", None), np.vectorize(exact, otypes=[object])(sc.dense.biases))
        pool = sc.pool
        pool_text = (
            "no pooling"
            if pool.kind == "none"
            else (
                f"global {pool.kind} pooling"
                if pool.is_global
                else f"{pool.kind} pooling, window {pool.size[0]}x{pool.size[1]}, "
                f"stride {pool.stride[0]}x{pool.stride[1]}"
            )
        )
        training = sc.training
        blocks.append(
            Text(
                f"Convolution (cross-correlation) with stride {sc.conv.stride} and padding {sc.conv.padding}, "
                f"{ACTIVATION_NAMES[sc.activation.kind]}, {pool_text}, {sc.n_features} features, softmax and "
                f"cross-entropy loss. Learning rate {self.plain_number(training.learning_rate)}, "
                f"{training.iterations} pass(es), parameters updated {UPDATE_NAMES[training.update]}; "
                + ("filters learn too." if training.update_filters else "only the dense layer learns.")
            )
        )
        return Section("Setup", "setup", blocks, 1)

    def plain_number(self, number: float) -> str:
        """A decimal of the scenario (a bias, the learning rate) as written: exact, so 0.7 stays 0.7."""
        return plain_number(exact(number), self.settings.precision)

    def summary(self) -> Section:
        """Probabilities and loss per pass and sample; with many classes (too wide for a page) the
        predicted class and the probabilities of it and of the label instead of every class."""
        sc, N = self.sc, self.N
        wide = len(sc.classes) > WIDE_CLASSES
        if wide:
            columns = (Cell("predicted"), Cell("p(predicted)"), Cell("p(label)"))
        else:
            columns = tuple(Cell(N("prob", c), True) for c in sc.classes)
        header = (Cell("pass"), Cell("sample"), Cell("label")) + columns + (Cell(N("loss"), True),)
        rows = []
        for step in (*self.d.steps, *self.d.final):
            g = step.groups
            probs = g["probs"].numbers()
            if wide:
                best = int(np.argmax(g["probs"].values.astype(float)))
                label = sc.classes.index(step.label)
                cells = (
                    Cell(sc.classes[best]),
                    Cell(probs[best], True, self.note(g["probs"][best])),
                    Cell(probs[label], True, self.note(g["probs"][label])),
                )
            else:
                cells = tuple(Cell(p, True, self.note(g["probs"][c])) for c, p in enumerate(probs))
            when = "final" if step.iteration is None else str(step.iteration)
            loss = Cell(g["loss"].numbers().item(), True, self.note(g["loss"].item()))
            rows.append((Cell(when), Cell(step.sample), Cell(step.label)) + cells + (loss,))
        header, rows = step_column(sc, self.d.steps, self.d.final, header, rows)
        return Section("Training summary", "summary", [Table(header, tuple(rows)), self.pictures.training()], 1)

    def final(self) -> Section:
        blocks = []
        for step in self.d.final:
            g = step.groups
            best = self.sc.classes[int(np.argmax(g["probs"].values.astype(float)))]
            blocks.append(Text(f"{step.sample} (label {step.label}): predicted {best}."))
            blocks += [self.eq(q) for q in g["logits"]] + [self.eq(q) for q in g["probs"]]
            blocks.append(self.eq(g["loss"].item()))
        return Section("Final pass with the trained parameters", "final", blocks, 1)

    def audit(self) -> Section | None:
        claims = self.report.claims
        if not claims:
            return None
        header = (Cell("value"), Cell("stated"), Cell("ours"), Cell("check"), Cell("reason"))
        rows = []
        for c in claims:
            reason = (
                f"within {c.tol:g} (differs by {c.diff:.2g})"
                if c.ok
                else f"differs by {c.diff:.3g}, more than {c.tol:g}"
            )
            rows.append(
                (
                    Cell(c.note or c.at),
                    Cell(exact(c.printed), True),
                    Cell(sympy.Float(c.ours), True),
                    Cell("✓" if c.ok else "✗"),
                    Cell(reason),
                )
            )
        return Section("Audit of the stated numbers", "audit", [Table(header, tuple(rows))], 1)
