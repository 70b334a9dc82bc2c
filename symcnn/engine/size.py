"""How big a run is, before running it: steps (forward and backward passes), values (the numbers of the
`symcnn values` JSON) and seconds on this machine. The commands refuse a run past the limits unless
asked with --force, within a second: one training pass is run and timed, the rest is multiplied out."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from ..errors import UsageError
from ..scenario.model import Scenario

MAX_STEPS = 10_000  # forward and backward passes: iterations x samples
MAX_VALUES = 5_000_000  # numbers of the run (about 2 GB of SymPy objects for `check`)
EXACT_SECONDS_PER_VALUE = 1.5e-4  # `check` of the large built-ins, 2 cores under load: bench/run_size.py


@dataclass(frozen=True)
class Estimate:
    steps: int
    values: int
    seconds: float  # NumPy alone (`symcnn values`)
    exact_seconds: float  # with SymPy as well (`check`, `render`, `exercise`)

    @property
    def too_big(self) -> bool:
        return self.steps > MAX_STEPS or self.values > MAX_VALUES

    def describe(self, exact: bool = True) -> str:
        seconds = self.exact_seconds if exact else self.seconds
        return f"{self.steps:,} steps, {self.values:,} values, about {duration(seconds)} here"


def estimate(sc: Scenario) -> Estimate:
    """Run one training pass (NumPy), count its values and time it; the run is that times the passes."""
    from .numeric import run

    passes = sc.training.iterations
    one = dataclasses.replace(sc, training=dataclasses.replace(sc.training, iterations=1))
    start = time.perf_counter()
    trace = run(one).to_dict()
    elapsed = time.perf_counter() - start
    per_pass = count(trace["steps"]) + count(trace["updates"])
    values = per_pass * passes + count(trace["final"])
    seconds = elapsed * passes
    return Estimate(len(trace["steps"]) * passes, values, seconds, seconds + values * EXACT_SECONDS_PER_VALUE)


def guard(sc: Scenario, force: bool = False, exact: bool = True) -> Estimate:
    """The estimate; UsageError (exit 2) when past the limits and not ``force``d."""
    size = estimate(sc)
    if size.too_big and not force:
        where = "training.iterations" if size.steps > MAX_STEPS else "inputs"
        raise UsageError(
            f"{where}: a run of {size.describe(exact)}; more than the limits of {MAX_STEPS:,} steps or "
            f"{MAX_VALUES:,} values: add --force to run it anyway"
        )
    return size


def count(data) -> int:
    """Floating-point numbers in nested lists and dicts (names, labels, iteration numbers are not counted)."""
    if isinstance(data, dict):
        return sum(count(v) for v in data.values())
    if isinstance(data, list):
        return sum(count(v) for v in data)
    return int(isinstance(data, float))


def duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
