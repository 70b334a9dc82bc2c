"""Build the worked solution (a Document) from a checked derivation, section by section."""

from __future__ import annotations

import numpy as np
import sympy

from ..engine.algebra import FRACTION_TERMS, exact, minus, shorten
from ..engine.exact import Deriver, Group, StepDerivation, UpdateDerivation, activation_expr
from ..progress import progress
from ..scenario.model import pool_window, winner_cell
from ..verify import Report
from .model import (
    Cell,
    Derivative,
    Document,
    Figure,
    Formula,
    Section,
    Settings,
    Table,
    Text,
    cells_to_show,
    conv_sum,
    equation,
    matrices,
    relu_display,
)
from .names import ACTIVATION_NAMES, UPDATE_NAMES, WIDE_CLASSES, unique_slugs
from .numbers import format_number
from .panels import build_panels
from .pictures import Illustrator


class Builder:
    def __init__(self, report: Report, settings: Settings) -> None:
        self.report = report
        self.d = report.derivation
        self.sc = report.scenario
        self.settings = settings
        self.N = self.d.notation
        self.deriver = Deriver(self.sc, self.N)
        self.filter_keys = unique_slugs(f.name for f in self.sc.conv.filters)
        self.pictures = Illustrator(self.d, settings.precision)
        self.sample_keys = dict(zip((x.name for x in self.sc.inputs), unique_slugs(x.name for x in self.sc.inputs)))
        self.shown: dict = {}  # path -> quantity of every number shown with its `symcnn values` path

    def note(self, q):
        """q is shown on the page: its path becomes explorable."""
        self.shown[q.path] = q
        return q.path

    # ------------------------------------------------------------------ helpers
    def matrices(self, name, array: np.ndarray, marks=frozenset()) -> list:
        paths = (lambda index: self.note(array[index])) if isinstance(array, Group) else None
        return matrices(name, array, marks, elide=self.settings.detail == "summary", paths=paths)

    def eq(self, q, general=None, env=None):
        self.note(q)
        return equation(q, general, env, elide=self.settings.detail == "summary")

    def equations(self, blocks: list, array, display=None) -> None:
        for index in cells_to_show(array, self.settings.detail):
            q = array[index]
            if display is None:
                blocks.append(self.eq(q))
            else:
                general, env = display(q, index)
                blocks.append(self.eq(q, general, env))

    # ------------------------------------------------------------------ sections
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
        return format_number(exact(number), self.settings.precision)[0]

    def forward(self, step: StepDerivation, key: str) -> list[Section]:
        g, sc, N = step.groups, self.sc, self.N
        sections = []
        for k, flt in enumerate(sc.conv.filters):
            blocks = [conv_sum(self.deriver, k)]
            self.equations(blocks, g["conv"][k])
            blocks += self.matrices(N("conv", flt.name), g["conv"][k])
            conv_key = f"{key}-conv-{self.filter_keys[k]}"
            cell = cells_to_show(g["conv"][k], self.settings.detail)[0]  # the (first) cell expanded above
            blocks.append(self.pictures.window(step, k, conv_key, cell))
            sections.append(Section(f"Convolution with filter {flt.name}", conv_key, blocks))
        blocks = []
        kind = sc.activation.kind
        if kind != "none":
            z, slope = sympy.Symbol("z"), exact(sc.activation.slope)
            blocks.append(Formula(sympy.Symbol("a"), relu_display(kind, z, slope) or activation_expr(sc.activation, z)))
            for k, flt in enumerate(sc.conv.filters):

                def display(q, index, k=k):
                    zq = g["conv"][(k, *index)]
                    shown = relu_display(kind, zq.symbol, slope)
                    return (shown if shown is not None else q.general), {zq.symbol: zq.value}

                self.equations(blocks, g["activated"][k], display)
                blocks += self.matrices(N("activated", flt.name), g["activated"][k])
            caption = f"Activated feature maps ({ACTIVATION_NAMES[kind]})" + (
                "; outlined, the cells max pooling picks (where a window's cells differ)."
                if sc.pool.kind == "max"
                else "."
            )
            blocks.append(Figure(f"{key}-activation", caption, self.activated_panels(step)))
            sections.append(Section(ACTIVATION_NAMES[kind], f"{key}-activation", blocks))
        if sc.pool.kind != "none":
            blocks = []
            winners = self.winner_cells(step)
            for k, flt in enumerate(sc.conv.filters):
                self.equations(blocks, g["pooled"][k])
                if winners:
                    blocks.append(Text(f"Winning cells of {flt.name} (boxed):"))
                    blocks += self.matrices(N("activated", flt.name), g["activated"][k], winners[k])
                blocks += self.matrices(N("pooled", flt.name), g["pooled"][k])
            panels = [self.pictures.panel(f"m, filter {f.name}", g["pooled"][k]) for k, f in enumerate(sc.conv.filters)]
            if kind == "none":  # no activation section shows the maps pooled: show them here
                panels = [p for pair in zip(self.activated_panels(step), panels) for p in pair]
            caption = f"{sc.pool.kind.capitalize()} pooling: the pooled maps" + (
                " (outlined in the activated maps, the winning cells)." if winners else "."
            )
            blocks.append(Figure(f"{key}-pool", caption, tuple(panels)))
            sections.append(Section(f"{sc.pool.kind.capitalize()} pooling", f"{key}-pool", blocks))
        blocks = [Text("Flatten: filter by filter, row by row.")]
        blocks += self.matrices(N("feature", None), g["features"])
        sections.append(Section("Flatten", f"{key}-flatten", blocks))
        blocks = [self.eq(q) for q in g["logits"]]
        sections.append(Section("Dense layer (logits)", f"{key}-logits", blocks))
        blocks = [self.eq(q) for q in g["probs"]]
        sections.append(Section("Softmax", f"{key}-softmax", blocks))
        sections.append(Section("Cross-entropy loss", f"{key}-loss", [self.eq(g["loss"].item())]))
        return sections

    def activated_panels(self, step: StepDerivation) -> tuple:
        """Each filter's activated map as a picture, the max-pool winners outlined (except in windows whose
        cells are all equal, where the first cell wins only by convention: a map of zeros stays plain)."""
        winners = self.winner_cells(step, ties=False)
        return tuple(
            self.pictures.panel(f"a, filter {f.name}", step.groups["activated"][k], winners[k] if winners else ())
            for k, f in enumerate(self.sc.conv.filters)
        )

    def winner_cells(self, step: StepDerivation, ties: bool = True) -> list[frozenset] | None:
        """The cells max pooling picks, per filter; without ``ties``, none from windows of equal cells."""
        if self.sc.pool.kind != "max":
            return None
        (ph, pw), (sh, sw) = pool_window(self.sc.pool, step.groups["activated"].shape[1:])
        values = step.groups["activated"].values
        out = []
        for k in range(step.winners.shape[0]):
            cells = set()
            for i, j in np.ndindex(*step.winners.shape[1:]):
                window = values[k, i * sh : i * sh + ph, j * sw : j * sw + pw].astype(float)
                if ties or np.ptp(window) > 1e-12 * max(1.0, float(np.abs(window).max())):  # (50-digit noise is a tie)
                    cells.add(winner_cell(i, j, step.winners[k, i, j], (ph, pw), (sh, sw)))
            out.append(frozenset(cells))
        return out

    def backward(self, step: StepDerivation, key: str) -> list[Section]:
        g, sc, N = step.groups, self.sc, self.N
        y = sc.classes.index(step.label)
        soft = self.d.softmax[y]
        blocks = [
            Text("SymPy differentiates the loss written in the logits and simplifies:"),
            Formula(N("loss"), soft.loss),
        ]
        for c, name in enumerate(sc.classes):
            closed = minus(N("prob", name), N("label", name))
            raw, simple = soft.derivatives[c], soft.simplified[c]
            simple = None if simple == raw else simple
            if self.settings.detail == "summary":  # long class sums, cut for display
                raw, simple = (None if e is None else shorten(e, FRACTION_TERMS, 2, 1) for e in (raw, simple))
            blocks.append(Derivative(g["grad_logits"][c].symbol, raw, simple, closed))
        blocks.append(Text("that is p - y for every class. With this sample's numbers:"))
        blocks += [self.eq(q) for q in g["grad_logits"]]
        sections = [Section("Backward: loss to logits", f"{key}-grad-logits", blocks)]
        blocks = []
        self.equations(blocks, g["grad_dense_weights"])
        blocks += self.matrices(N.grad("dense_weight", None), g["grad_dense_weights"])
        blocks += [self.eq(q) for q in g["grad_dense_biases"]]
        sections.append(Section("Backward: dense weights and biases", f"{key}-grad-dense", blocks))
        if sc.training.update_filters:
            blocks = []
            for group in ("grad_features", "grad_pooled", "grad_activated", "grad_conv"):
                self.equations(blocks, g[group])
            for k, flt in enumerate(sc.conv.filters):
                self.equations(blocks, g["grad_filters"][k])
                for c in range(g["grad_filters"].shape[1]):
                    blocks += self.matrices(N.grad("filter", flt.name), g["grad_filters"][k, c])
                blocks.append(self.eq(g["grad_filter_biases"][k]))
            sections.append(Section("Backward: filters", f"{key}-grad-filters", blocks))
        return sections

    def update(self, update: UpdateDerivation, key: str) -> Section:
        g, blocks = update.groups, []
        self.equations(blocks, g["dense_weights"])
        blocks += self.matrices(self.N("dense_weight", None, new=True), g["dense_weights"])
        blocks += [self.eq(q) for q in g["dense_biases"]]
        if self.sc.training.update_filters:
            for k in range(g["filters"].shape[0]):
                self.equations(blocks, g["filters"][k])
                for c in range(g["filters"].shape[1]):
                    blocks += self.matrices(
                        self.N("filter", self.sc.conv.filters[k].name, new=True), g["filters"][k, c]
                    )
                blocks.append(self.eq(g["filter_biases"][k]))
        after = f" after {update.after}" if update.after else f" after pass {update.iteration}"
        return Section(f"Update{after}", f"{key}-update", blocks)

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

    # ------------------------------------------------------------------ the whole
    def build(self) -> Document:
        sc, d = self.sc, self.d
        sections = [self.setup()]
        iterations = sorted({s.iteration for s in d.steps})
        shown = {"all": iterations, "first": iterations[:1], "last": iterations[-1:]}[self.settings.iterations]
        passes = len(iterations) > 1
        bar = progress(sum(s.iteration in shown for s in d.steps) + 1, f"writing {sc.name}", unit="sample")
        for step in d.steps:
            if step.iteration not in shown:
                continue
            bar.update()
            key = (f"it{step.iteration}-" if passes else "") + self.sample_keys[step.sample]
            title = f"Pass {step.iteration}, {step.sample} (label {step.label})"
            sections.append(Section(title, key, [], 1))
            sections += self.forward(step, key)
            sections += self.backward(step, key)
            update = next((u for u in d.updates if u.iteration == step.iteration and u.after == step.sample), None)
            if update is not None:
                sections.append(self.update(update, key))
        for u in d.updates:
            if u.after is None and u.iteration in shown:
                sections.append(Section(f"Pass {u.iteration}: batch update", f"it{u.iteration}-batch", [], 1))
                sections.append(self.update(u, f"it{u.iteration}-batch"))
        sections += [self.summary(), self.final()]
        bar.close()
        audit = self.audit()
        if audit is not None:
            sections.append(audit)
        report = self.report
        verification = Text(
            f"{report.compared} values were derived twice, exactly with SymPy and in floating point with NumPy; "
            f"they agree to {report.max_diff:.1g} at most "
            f"(tolerance: relative {report.rtol:g}, absolute {report.atol:g})."
        )
        sections.append(Section("Verification", "verification", [verification], 1))
        context = ""
        for section in sections:  # slides and snippets say which pass and sample a part belongs to
            if section.level == 1:
                context = section.title
            else:
                section.context = context
        held = sum(c.ok for c in report.claims)
        return Document(
            sc.name,
            sc.title,
            sc.description,
            sc.notes,
            tuple(sections),
            self.settings,
            self.N,
            sc.training.update != "per_sample",
            report.compared,
            report.max_diff,
            held,
            len(report.claims),
            panels=build_panels(self.d, self.shown, self.settings.detail == "summary", report.numeric),
        )


def build_document(report: Report, settings: Settings | None = None) -> Document:
    return Builder(report, settings or Settings()).build()
