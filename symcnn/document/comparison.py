"""``--compare-optimizers``: the same scenario trained with plain SGD, momentum and Adam (same learning rate,
PyTorch's default hyperparameters unless the scenario sets its own), side by side: a table of each pass's
mean loss and the final losses, and a chart of the mean loss per pass. Every run is checked (SymPy against
NumPy) before its numbers are shown."""

from __future__ import annotations

import dataclasses

import numpy as np
import sympy

from ..errors import VerificationError
from ..scenario.model import Optimizer, Scenario
from .layout import chart_top
from .model import Cell, Chart, Figure, Section, Table, Text
from .optimizer_text import optimizer_name

KINDS = ("sgd", "momentum", "adam")


def variants(sc: Scenario) -> list[Scenario]:
    """The scenario under each optimizer kind; its own optimizer keeps its own hyperparameters."""
    own = sc.training.optimizer
    out = []
    for kind in KINDS:
        opt = own if own.kind == kind else Optimizer(kind)
        training = dataclasses.replace(sc.training, optimizer=opt)
        out.append(dataclasses.replace(sc, training=training, claims=()))
    return out


def losses(sc: Scenario) -> tuple[list[float], list[float]]:
    """(mean loss of each pass, final loss of each sample), from a run whose every value was checked."""
    from ..verify import check

    report = check(sc)
    if not report.ok:
        raise VerificationError(f"comparing optimizers: the {sc.training.optimizer.kind} run does not check")
    values = report.derivation
    passes = sorted({s.iteration for s in values.steps})
    per_pass = [
        float(np.mean([float(s.groups["loss"].values.item()) for s in values.steps if s.iteration == p]))
        for p in passes
    ]
    final = [float(f.groups["loss"].values.item()) for f in values.final]
    return per_pass, final


SHORT = {"sgd": "SGD", "momentum": "momentum", "adam": "Adam"}


def comparison(sc: Scenario) -> Section:
    runs = [(v.training.optimizer, *losses(v)) for v in variants(sc)]
    passes = len(runs[0][1])
    number = lambda v: Cell(sympy.Float(v, 15), True)  # noqa: E731
    header = (Cell("optimizer"),) + tuple(Cell(f"pass {p + 1}") for p in range(passes)) + (Cell("final"),)
    rows = [(Cell(SHORT[opt.kind]),) + tuple(map(number, (*per, float(np.mean(fin))))) for opt, per, fin in runs]
    samples = (Cell("optimizer"),) + tuple(Cell(x.name) for x in sc.inputs)
    finals = [(Cell(SHORT[opt.kind]),) + tuple(map(number, fin)) for opt, _, fin in runs]
    ticks = tuple(f"pass {p + 1}" for p in range(passes)) + ("final",)
    series = tuple((SHORT[opt.kind], (*per, float(np.mean(fin)))) for opt, per, fin in runs)
    chart = Chart("mean loss", ticks, series, chart_top(v for _, ys in series for v in ys))
    ranked = sorted(runs, key=lambda r: float(np.mean(r[2])))
    blocks = [
        Text(
            f"The same network, images and learning rate ({sc.training.learning_rate:g}) trained with "
            + ", ".join(optimizer_name(opt) for opt, _, _ in runs)
            + ". The mean loss of a pass is taken before each sample's update in that pass; 'final' after "
            "training. Final mean loss, lowest first: "
            + ", ".join(f"{SHORT[opt.kind]} {float(np.mean(fin)):.3f}" for opt, _, fin in ranked)
            + "."
        ),
        Text("Mean loss per pass:"),
        Table(header, tuple(rows)),
        Text("Each sample's loss after training:"),
        Table(samples, tuple(finals)),
        Figure("optimizers-compared", "Mean loss per pass under each optimizer.", (chart,)),
    ]
    return Section("Optimizers compared", "optimizers-compared", blocks, 1)
