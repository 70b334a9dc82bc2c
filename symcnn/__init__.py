"""symcnn: a tiny CNN scenario in, a symbolically derived and NumPy-checked worked solution out.

    sc = symcnn.load("four-images")      # a file path, a built-in name or a dict
    trace = symcnn.run(sc)               # NumPy: every number (the `symcnn values` JSON)
    derivation = symcnn.derive(sc)       # SymPy: exact values; .steps[0].groups["conv"][0, 1, 1] a cell's
                                         # general form, substituted form and value
    report = symcnn.check(sc)            # both agree, and the claims hold
    symcnn.exercise(sc, seed=7, count=30, out="week5")   # seeded variants: sheets, solutions, key.json
    symcnn.grade("ada.yaml", "week5/key.json").score     # mark a student's answers

SymPy is imported only by derive/check, so `load` and `run` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import display
from .errors import RenderError, ScenarioError, SymcnnError, UsageError, VerificationError
from .rendering import FORMATS as FORMATS  # what `symcnn render` writes
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .engine.numeric import Trace
    from .scenario.model import Scenario
    from .scenario.sources import builtin_names, load

__all__ = [
    "RenderError",
    "Scenario",
    "ScenarioError",
    "SymcnnError",
    "Trace",
    "UsageError",
    "VerificationError",
    "builtin_names",
    "check",
    "derive",
    "exercise",
    "grade",
    "load",
    "render",
    "run",
]
LAZY = {
    "Trace": "engine.numeric",
    "Scenario": "scenario.model",
    "load": "scenario.sources",
    "builtin_names": "scenario.sources",
}


def __getattr__(name: str):
    """Trace, Scenario, load and builtin_names bring NumPy in: imported when first used, so that the
    command line can set itself up before NumPy starts."""
    if name not in LAZY:
        raise AttributeError(f"module 'symcnn' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def _show(obj, fmt: str) -> str:
    """Jupyter display of a Derivation or a Report (see symcnn.display): the display code loads on first use."""
    from .jupyter import show

    return show(obj, fmt)


display.register(_show)


def run(scenario) -> Trace:
    """Every number of the run, computed with NumPy (accepts what `load` accepts)."""
    from .engine.numeric import run as _run
    from .scenario.sources import load

    return _run(load(scenario))


def derive(scenario):
    """Every value of the run from SymPy's layer rules over exact numbers; each cell as a SymPy quantity
    (symbol, general form, numbers substituted, value) when asked for, e.g.
    ``derive(sc).steps[0].groups["conv"][0, 1, 1]``; for a `layers` stack, per layer:
    ``derive(sc).steps[0].layers[3]["grad_output"][0, 1, 1]``."""
    from .scenario.sources import load

    sc = load(scenario)
    if sc.is_stack:
        from .engine.stack_cells import derive_stack

        return derive_stack(sc)
    from .engine.exact import derive as _derive

    return _derive(sc)


def check(scenario, thorough: bool = False):
    """Compare the symbolic and numeric values and audit the claims; returns a Report. ``thorough``
    also builds every cell's own SymPy expression and confirms it gives the layer rule's value."""
    from .scenario.sources import load
    from .verify import check as _check

    return _check(load(scenario), thorough=thorough)


def render(scenario, fmt: str, out, **options):
    """Write the worked solution in ``fmt`` (markdown, latex, beamer, snippets, html, pdf) into the folder ``out``.

    Options: detail ("summary" or "full"), precision, iterations ("all", "first", "last"), fractions.
    Returns the paths written."""
    from .rendering.formats import render_to_dir
    from .scenario.sources import load

    return render_to_dir(load(scenario), fmt, out, **options)


def exercise(scenario="four-images", seed: int = 0, count: int = 1, out="exercises", **options):
    """Write ``count`` exercise variants of ``scenario`` drawn from ``seed`` into the folder ``out``, as
    `symcnn exercise`. Options: difficulty ("easy", "medium", "hard"), fmt ("markdown", "pdf", "html", and
    the LMS formats "moodle", "gift", "qti"; several as a list or comma-separated), jobs. Returns the variant
    folders and the top-level files (key.json, class.pdf, moodle.xml, ...)."""
    from .exercises.batch import write_exercises

    return write_exercises(scenario, seed, count, out, **options)


def grade(answers, key):
    """Mark an answers file against a key.json; returns a Grade (``.score``, ``.marks``, ``.table()``).
    A ``.csv`` of a class's answers gives a Gradebook (``.rows``, ``.csv()``, ``.summary()``)."""
    if str(answers).lower().endswith(".csv"):
        from .exercises.gradebook import gradebook

        return gradebook(answers, key)
    from .exercises.grading import grade as _grade

    return _grade(answers, key)
