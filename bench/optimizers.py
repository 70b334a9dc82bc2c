"""Optimizer cost: `symcnn check` (and `values`) of four-images under SGD, momentum and Adam, filters
learning, in this one run; ratios to SGD. Target (issue 17): Adam within 1.2x of SGD for `check`.

    python bench/optimizers.py [--repeat N]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OPTIMIZERS = {"sgd": "sgd", "momentum": {"kind": "momentum", "momentum": 0.9}, "adam": {"kind": "adam"}}


def scenario(optimizer) -> dict:
    sys.path.insert(0, str(ROOT))
    from symcnn.scenario.sources import read_source

    data = copy.deepcopy(read_source("four-images")[0])
    data.pop("claims", None)
    data["training"] = {**data["training"], "optimizer": optimizer, "update_filters": True, "iterations": 2}
    return data


def timed(args: list[str], repeat: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "symcnn", *args], check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, optimizer in OPTIMIZERS.items():
            path = Path(folder) / f"four-{name}.yaml"
            path.write_text(yaml.safe_dump(scenario(optimizer)))
            rows.append((name, timed(["values", str(path)], repeat), timed(["check", str(path)], repeat)))
    base_values, base_check = rows[0][1], rows[0][2]
    print(f"four-images, filters learning, 2 passes (8 updates); median of {repeat}")
    print(f"{'optimizer':<10} {'values s':>9} {'x SGD':>6} {'check s':>8} {'x SGD':>6}")
    for name, values, check in rows:
        print(f"{name:<10} {values:>9.3f} {values / base_values:>6.2f} {check:>8.3f} {check / base_check:>6.2f}")


if __name__ == "__main__":
    main()
