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


def comparison(sc: Scenario) -> Section:
    runs = [(optimizer_name(v.training.optimizer), *losses(v)) for v in variants(sc)]
    passes = len(runs[0][1])
    header = (
        (Cell("optimizer"),)
        + tuple(Cell(f"mean loss, pass {p + 1}") for p in range(passes))
        + (Cell("mean loss, final"),)
        + tuple(Cell(f"final loss, {x.name}") for x in sc.inputs)
    )
    rows = []
    for name, per_pass, final in runs:
        numbers = [*per_pass, float(np.mean(final)), *final]
        rows.append((Cell(name),) + tuple(Cell(sympy.Float(v, 15), True) for v in numbers))
    ticks = tuple(f"pass {p + 1}" for p in range(passes)) + ("final",)
    series = tuple((name, (*per_pass, float(np.mean(final)))) for name, per_pass, final in runs)
    chart = Chart("mean loss", ticks, series, chart_top(v for _, ys in series for v in ys))
    best = min(runs, key=lambda r: float(np.mean(r[2])))[0]
    final = {name: float(np.mean(f)) for name, _, f in runs}
    sgd = final[runs[0][0]]
    blocks = [
        Text(
            f"The same network, the same images and the same learning rate {sc.training.learning_rate:g}, trained "
            "with each optimizer (PyTorch's default hyperparameters unless the scenario sets its own). The mean "
            "loss of a pass is taken before each sample's update in that pass; 'final' after training. "
            f"Lowest final mean loss: {best}. "
            + "; ".join(f"{name}: {value:.3f}" for name, value in list(final.items())[1:])
            + f", against plain SGD's {sgd:.3f}."
        ),
        Table(header, tuple(rows)),
        Figure("optimizers-compared", "Mean loss per pass under each optimizer.", (chart,)),
    ]
    return Section("Optimizers compared", "optimizers-compared", blocks, 1)
