"""Build the worked solution (a Document) from a checked derivation, section by section."""

from __future__ import annotations

import numpy as np
import sympy

from ..engine.algebra import FRACTION_TERMS, exact, minus, shorten
from ..engine.exact import Deriver, Group, StepDerivation, UpdateDerivation, activation_expr
from ..engine.optimizers import STATE
from ..progress import progress
from ..scenario.model import pool_window, winner_cell
from ..verify import Report
from .bookends import Bookends
from .comparison import comparison
from .model import (
    Derivative,
    Document,
    Figure,
    Formula,
    Section,
    Settings,
    Text,
    assemble,
    cells_to_show,
    conv_sum,
    equation,
    matrices,
    relu_display,
    worked_steps,
)
from .names import ACTIVATION_NAMES, unique_slugs
from .optimizer_text import representative, state_blocks, worked_blocks
from .panels import build_panels
from .pictures import Illustrator


class Builder(Bookends):
    """A checked derivation's worked solution: the bookends, and for each pass and sample its forward,
    backward and update sections."""

    def __init__(self, report: Report, settings: Settings) -> None:
        self.report = report
        self.d = report.derivation
        self.sc = report.scenario
        self.settings = settings
        self.N = self.d.notation
        self.deriver = Deriver(self.sc, self.N)
        self.filter_keys = unique_slugs(f.name for f in self.sc.conv.filters)
        self.pictures = Illustrator(self.d, settings.precision)
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

    # ------------------------------------------------------------------ a pass's sections
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
        if update.optimizer:
            blocks = self.optimizer_blocks(update) + blocks
        after = f" after {update.after}" if update.after else f" after pass {update.iteration}"
        return Section(f"Update{after}", f"{key}-update", blocks)

    def optimizer_blocks(self, update: UpdateDerivation) -> list:
        """Momentum/Adam: the convention, one parameter's state equations, the state matrices."""
        opt, g, N = self.sc.training.optimizer, update.groups, self.N
        extras = update.optimizer
        index = representative(extras["grads"]["dense_weights"], extras["before"].get("dense_weights"))
        quantities = self.d.deriver.optimizer_equations(update, "dense_weights", index)
        blocks = worked_blocks(opt, "the dense layer", update.step, quantities, self.eq)
        names = STATE[opt.kind]
        blocks += state_blocks(N, {s: g[f"{s}_dense_weights"] for s in names}, self.matrices, "the dense weights")
        if self.sc.training.update_filters:
            channels = g["filters"].shape[1]
            for k, flt in enumerate(self.sc.conv.filters):
                for c in range(channels):
                    what = f"filter {flt.name}" + (f", channel {c + 1}" if channels > 1 else "")
                    blocks += state_blocks(N, {s: g[f"{s}_filters"][k, c] for s in names}, self.matrices, what)
        return blocks

    # ------------------------------------------------------------------ the whole
    def build(self) -> Document:
        sc, d = self.sc, self.d
        sections = [self.setup()]
        iterations = sorted({s.iteration for s in d.steps})
        shown = {"all": iterations, "first": iterations[:1], "last": iterations[-1:]}[self.settings.iterations]
        steps = worked_steps(d.steps, shown, self.settings.samples)
        bar = progress(len(steps) + 1, f"writing {sc.name}", unit="sample")
        for step in steps:
            bar.update()
            key = section_key(d, step)
            title = f"Pass {step.iteration}, {step.sample} (label {step.label})"
            sections.append(Section(title, key, [], 1))
            sections += self.forward(step, key)
            sections += self.backward(step, key)
            update = next((u for u in d.updates if u.iteration == step.iteration and u.after == step.sample), None)
            if update is not None:
                sections.append(self.update(update, key))
        for u in d.updates:
            if u.after is None and u.iteration in shown:
                sections.append(Section(f"Pass {u.iteration}: batch update", section_key(d, u), [], 1))
                sections.append(self.update(u, section_key(d, u)))
        sections += [self.summary(), self.final()]
        if self.settings.compare_optimizers:
            sections.append(comparison(sc))
        bar.close()
        audit = self.audit()
        if audit is not None:
            sections.append(audit)
        report = self.report
        panels = build_panels(self.d, self.shown, self.settings.detail == "summary", report.numeric)
        return assemble(report, sections, self.settings, self.N, panels=panels)


def section_key(d, record: StepDerivation | UpdateDerivation) -> str:
    """The key of a step's sections (``img1``; ``it2-img1`` when there are several passes), which an update
    after that sample shares; a batch update's is ``it1-batch``."""
    sample = record.sample if isinstance(record, StepDerivation) else record.after
    if sample is None:
        return f"it{record.iteration}-batch"
    names = [x.name for x in d.scenario.inputs]
    passes = len({s.iteration for s in d.steps}) > 1
    return (f"it{record.iteration}-" if passes else "") + dict(zip(names, unique_slugs(names)))[sample]


def build_document(report: Report, settings: Settings | None = None) -> Document:
    return Builder(report, settings or Settings()).build()
