"""`symcnn values four-images` against `python -c "import numpy, yaml"`, measured side by side.

Runs both commands alternately N times (default 15) in this one process and prints the medians
and their ratio. Usage: python bench/startup.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import numpy, yaml'": [sys.executable, "-c", "import numpy, yaml"],
    "symcnn values four-images": [sys.executable, "-m", "symcnn", "values", "four-images"],
    "python -c 'import sympy'": [sys.executable, "-c", "import sympy"],
    "symcnn check four-images": [sys.executable, "-m", "symcnn", "check", "four-images"],
}


def main(n: int) -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(n):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c 'import numpy, yaml'"])
    print(f"{'command':<34} {'median s':>9} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<34} {median:>9.3f} {median / base:>7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
