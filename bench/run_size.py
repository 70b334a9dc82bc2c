"""The run-size estimate (symcnn.engine.size) against the real run: for each built-in, with a few training
passes, the estimated steps, values and seconds next to those of `run` (NumPy) and `check` (SymPy and NumPy),
measured in this one process. The exact-seconds constant (EXACT_SECONDS_PER_VALUE) comes from this table.
Usage: python bench/run_size.py [PASSES]
"""

from __future__ import annotations

import dataclasses
import sys
import time

from symcnn.engine.numeric import run
from symcnn.engine.size import EXACT_SECONDS_PER_VALUE, count, estimate
from symcnn.scenario.sources import builtin_names, load
from symcnn.verify import check


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(passes: int) -> None:
    print(f"{'scenario':<12} {'steps':>6} {'values est':>11} {'values':>9} {'numpy est s':>11} {'numpy s':>8} "
          f"{'check est s':>11} {'check s':>8} {'s/value':>9}")  # fmt: skip
    for name in builtin_names():
        base = load(name)
        sc = dataclasses.replace(base, training=dataclasses.replace(base.training, iterations=passes))
        size, estimate_s = timed(estimate, sc)
        trace, numpy_s = timed(run, sc)
        _, check_s = timed(check, sc)
        values = count(trace.to_dict())
        print(f"{name:<12} {size.steps:>6} {size.values:>11,} {values:>9,} {size.seconds:>11.3f} {numpy_s:>8.3f} "
              f"{size.exact_seconds:>11.2f} {check_s:>8.2f} {check_s / values:>9.1e}")  # fmt: skip
    print(f"EXACT_SECONDS_PER_VALUE = {EXACT_SECONDS_PER_VALUE:.1e}; the estimate itself took {estimate_s:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
