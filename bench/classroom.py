"""Class grading and LMS exports: wall times from one run, as ratios to `python -c "import numpy, yaml"`.

    python bench/classroom.py            # 200 students; a batch of 30 variants in every LMS format
    python bench/classroom.py --students 2000

Rows: `symcnn grade answers.csv --key key.json --out grades.csv` for a class of N students (subprocess,
the issue's target: 200 students in under 2 s), the same in-process (parse, mark, write), and
`symcnn exercise --count 30 --format moodle,gift,qti` against `--format markdown` (the sheets), with
the size of each export. Every time is the median of 3 runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(function, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(*args: str):
    return lambda: subprocess.run([sys.executable, *args], check=True, capture_output=True)


def class_csv(key: Path, students: int, path: Path) -> None:
    rng = np.random.default_rng(0)
    variants = json.loads(key.read_text())["variants"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "variant", *[f"q{n}" for n in range(1, 8)]])
        for s in range(students):
            number = str(rng.integers(1, len(variants) + 1))
            values = [q["value"] + rng.normal(0, q["tol"]) for q in variants[number]["questions"].values()]
            writer.writerow([f"s{s}@school.example", f"Student {s}", number, *[f"{v:.4f}" for v in values]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--variants", type=int, default=30)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = timed(command("-c", "import numpy, yaml"))
        rows.append(("python -c 'import numpy, yaml' (baseline)", base, ""))
        n = str(args.variants)
        sheets = timed(command("-m", "symcnn", "exercise", "--seed", "1", "--count", n, "--out", str(tmp / "s")), 1)
        rows.append((f"exercise --count {n} --format markdown", sheets, ""))
        exports = timed(
            command(
                "-m",
                "symcnn",
                "exercise",
                "--seed",
                "1",
                "--count",
                n,
                "--format",
                "moodle,gift,qti",
                "--out",
                str(tmp / "l"),
            ),
            1,
        )
        files = ("moodle.xml", "questions.gift", "qti.zip")
        sizes = ", ".join(f"{name} {(tmp / 'l' / name).stat().st_size / 1e6:.1f} MB" for name in files)
        rows.append((f"exercise --count {n} --format moodle,gift,qti", exports, sizes))
        key = tmp / "l" / "key.json"
        answers = tmp / "answers.csv"
        class_csv(key, args.students, answers)
        out = str(tmp / "grades.csv")
        cli = timed(command("-m", "symcnn", "grade", str(answers), "--key", str(key), "--out", out))
        rows.append((f"grade answers.csv ({args.students} students), subprocess", cli, "target < 2 s"))
        from symcnn.exercises.gradebook import gradebook, write_gradebook

        inside = timed(lambda: write_gradebook(gradebook(answers, key), out))
        rows.append((f"grade answers.csv ({args.students} students), in-process", inside, ""))
    print("| what | seconds | x baseline | note |\n|---|---:|---:|---|")
    for what, seconds, note in rows:
        print(f"| {what} | {seconds:.3f} | {seconds / base:.2f} | {note} |")


if __name__ == "__main__":
    main()
