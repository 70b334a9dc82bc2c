"""symcnn benchmark: one table, every figure from this one run, ratios against baselines measured here.

    python bench/run.py                 # all configurations (several minutes)
    python bench/run.py --quick         # the two small ones
    python bench/run.py --markdown      # print the table as Markdown (for bench/RESULTS.md)

Columns: NumPy forward+backward+update of the whole run in-process (the floor), then wall times of
`symcnn values`, `symcnn check`, `symcnn render --format markdown` and `--format latex` (summary
detail) as subprocesses, the peak memory (max RSS) of `check`, and the naive SymPy route (one composed
loss, `diff` for every parameter, `subs`) capped at 60 s. Each time is also given as a ratio to the
NumPy floor and to `python -c "import sympy"`, measured in the same run. Commands that exceed their cap
show as `> cap`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CAP = 300.0  # seconds for one symcnn command
NAIVE_CAP = 60.0

# name, input size, channels, filters, kernel, pool, classes
CONFIGS = [
    ("4x4, 2x2x2, none, 2 (four-images)", 4, 1, 2, 2, 0, 2),
    ("8x8, 4x3x3, 2, 3", 8, 1, 4, 3, 2, 3),
    ("16x16, 4x3x3, 2, 10", 16, 1, 4, 3, 2, 10),
    ("28x28, 8x3x3, 2, 10", 28, 1, 8, 3, 2, 10),
    ("28x28x3, 8x3x3, 2, 10", 28, 3, 8, 3, 2, 10),
    ("64x64, 16x3x3, 2, 10", 64, 1, 16, 3, 2, 10),
]
TARGETS = """Targets (issue 6), each from this run:
- 28x28x8 -> 10: `render --format markdown` (check + summary Markdown) <= 10 s and <= 1 GiB;
- four-images: `render --format markdown,latex,beamer,snippets` (check + all four text formats, one process)
  <= 2.5x `python -c "import sympy"` (aim 2x);
- `values four-images` <= 1.5x `python -c "import numpy, yaml"`;
- 64x64x16 -> 10: `check` <= 60 s."""


def scenario(size: int, channels: int, filters: int, kernel: int, pool: int, classes: int) -> dict:
    """A seeded scenario with two inputs of one-decimal pixels (exact for SymPy, as a teacher writes)."""
    if size == 4:
        from symcnn.scenario.sources import read_source

        return read_source("four-images")[0]
    rng = np.random.default_rng(size * 100 + channels)
    shape = (channels, size, size) if channels > 1 else (size, size)
    fshape = (channels, kernel, kernel) if channels > 1 else (kernel, kernel)
    conv = size - kernel + 1
    pooled = conv // pool if pool else conv
    features = filters * pooled * pooled
    return {
        "name": f"bench-{size}-{channels}",
        "classes": [f"c{i}" for i in range(classes)],
        "inputs": [
            {"name": f"x{i}", "label": f"c{i % classes}", "pixels": np.round(rng.uniform(0, 1, shape), 1).tolist()}
            for i in range(2)
        ],
        "conv": {
            "filters": [
                {"name": f"F{k}", "weights": np.round(rng.uniform(-1, 1, fshape), 1).tolist(), "bias": 0.1}
                for k in range(filters)
            ]
        },
        "activation": "relu",
        "pool": {"kind": "max", "size": pool} if pool else "none",
        "dense": {
            "weights": np.round(rng.uniform(-0.1, 0.1, (classes, features)), 2).tolist(),
            "biases": [0.0] * classes,
        },
        "training": {"learning_rate": 0.1, "iterations": 1},
    }


def timed(command: list[str], cap: float) -> tuple[float | None, int]:
    """Wall time (None past the cap) and peak RSS in KiB of one subprocess."""
    elapsed, rss, _ = timed_cpu(command, cap)
    return elapsed, rss


def timed_cpu(command: list[str], cap: float) -> tuple[float | None, int, float]:
    """Wall time (None past the cap), peak RSS in KiB and CPU time (user + system) of one subprocess."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + cap
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            elapsed = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
            return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if time.perf_counter() > deadline:
            process.kill()
            _, _, usage = os.wait4(process.pid, 0)
            return None, usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        time.sleep(0.005)


def numpy_floor(data: dict) -> float:
    import symcnn

    sc = symcnn.load(data)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        symcnn.run(sc)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


NAIVE = r"""
import json, sys, sympy
from sympy import Max, Symbol, exp, log
d = json.load(open(sys.argv[1]))
x = d["inputs"][0]["pixels"]
x = x if isinstance(x[0][0], list) else [x]
C, H, W = len(x), len(x[0]), len(x[0][0])
filters = [f["weights"] if isinstance(f["weights"][0][0], list) else [f["weights"]] for f in d["conv"]["filters"]]
k = len(filters[0][0])
values, z = {}, []
for n, f in enumerate(filters):
    b = Symbol(f"b{n}"); values[b] = sympy.nsimplify(d["conv"]["filters"][n].get("bias", 0))
    w = {(c, u, v): Symbol(f"w{n}_{c}{u}{v}") for c in range(C) for u in range(k) for v in range(k)}
    for key, s in w.items():
        values[s] = sympy.nsimplify(f[key[0]][key[1]][key[2]])
    z.append([[Max(0, sum(w[c, u, v] * sympy.nsimplify(x[c][i + u][j + v]) for c in range(C) for u in range(k) for v in range(k)) + b)
               for j in range(W - k + 1)] for i in range(H - k + 1)])
pool = d["pool"]
p = pool["size"] if isinstance(pool, dict) else 1
feats = [Max(*[m[i + a][j + c] for a in range(p) for c in range(p)]) if p > 1 else m[i][j]
         for m in z for i in range(0, len(m) - p + 1, p) for j in range(0, len(m[0]) - p + 1, p)]
logits = []
for c, row in enumerate(d["dense"]["weights"]):
    Wc = [Symbol(f"W{c}_{n}") for n in range(len(row))]
    values.update({s: sympy.nsimplify(v) for s, v in zip(Wc, row)})
    logits.append(sum(a * f for a, f in zip(Wc, feats)) + sympy.nsimplify(d["dense"]["biases"][c]))
y = d["classes"].index(d["inputs"][0]["label"])
L = -log(exp(logits[y]) / sum(exp(o) for o in logits))
grads = [sympy.diff(L, s).subs(values).evalf() for s in values]
"""


def naive(path: Path) -> float | None:
    return timed([sys.executable, "-c", NAIVE, str(path)], NAIVE_CAP)[0]


def fmt(seconds: float | None, cap: float) -> str:
    return (
        f"> {cap:.0f} s" if seconds is None else (f"{seconds * 1000:.2f} ms" if seconds < 0.1 else f"{seconds:.2f} s")
    )


def ratio(seconds: float | None, base: float) -> str:
    return "—" if seconds is None else f"{seconds / base:,.0f}×" if seconds / base >= 100 else f"{seconds / base:.1f}×"


def side_by_side(commands: dict[str, list[str]], runs: int = 9) -> dict[str, tuple[float, float]]:
    """Median wall and CPU seconds of each command, the commands alternating run by run (so that a busy
    moment of a shared machine hits all of them alike)."""
    walls: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for key, command in commands.items():
            wall, _, cpu = timed_cpu(command, CAP)
            walls[key].append(wall)
            cpus[key].append(cpu)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in commands}


def small_targets(symcnn: list[str], tmp: str) -> list[str]:
    """The two small-scale targets, measured side by side with their baselines."""
    m = side_by_side(
        {
            "import sympy": [sys.executable, "-c", "import sympy"],
            "four text formats": [
                *symcnn,
                "render",
                "four-images",
                "--format",
                "markdown,latex,beamer,snippets",
                "--out",
                str(Path(tmp) / "four"),
            ],
            "check": [*symcnn, "check", "four-images"],
            "import numpy, yaml": [sys.executable, "-c", "import numpy, yaml"],
            "values": [*symcnn, "values", "four-images"],
        }
    )

    def line(what: str, key: str, base: str, target: float) -> str:
        (wall, cpu), (base_wall, base_cpu) = m[key], m[base]
        return (
            f"| {what} | {wall:.3f} s wall, {cpu:.3f} s CPU | `{base}`: {base_wall:.3f} s wall, {base_cpu:.3f} s CPU "
            f"| {wall / base_wall:.2f}× wall, {cpu / base_cpu:.2f}× CPU | ≤ {target}× |"
        )

    return [
        "| four-images | time | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|",
        line(
            "`render --format markdown,latex,beamer,snippets` (check + 4 formats)",
            "four text formats",
            "import sympy",
            2.5,
        ),
        line("`check`", "check", "import sympy", 2.5),
        line("`values`", "values", "import numpy, yaml", 1.5),
    ]


def torch_floor(data: dict) -> float | None:
    """PyTorch float64 forward + backward + SGD step of every sample of a `layers` scenario, in-process
    (median of 5), or None without torch: the floor for the stack rows."""
    try:
        import torch
    except ImportError:
        return None
    F = torch.nn.functional
    as_t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    layers = []
    for item in data["layers"]:
        ((kind, body),) = item.items()
        if kind == "conv":
            w = torch.stack([as_t(f["weights"]).reshape(-1, *np.shape(f["weights"])[-2:]) for f in body["filters"]])
            b = as_t([f.get("bias", 0) for f in body["filters"]])
            layers.append((kind, body, [w, b]))
        elif kind == "dense":
            layers.append((kind, body, [as_t(body["weights"]), as_t(body["biases"])]))
        else:
            layers.append((kind, body, []))
    samples = [
        (as_t(s["pixels"]).reshape(-1, *np.shape(s["pixels"])[-2:]), data["classes"].index(s["label"]))
        for s in data["inputs"]
    ]
    eta = data["training"]["learning_rate"]

    def one_pass() -> None:
        params = [[t.clone().requires_grad_(True) for t in p] for _, _, p in layers]
        for x, y in samples:
            h = x.unsqueeze(0)
            for (kind, body, _), p in zip(layers, params):
                if kind == "conv":
                    h = F.conv2d(h, *p, stride=body.get("stride", 1), padding=body.get("padding", 0))
                elif kind == "activation":
                    h = F.relu(h) if body == "relu" else torch.tanh(h) if body == "tanh" else h
                elif kind == "pool":
                    h = F.max_pool2d(h, body["size"]) if body["kind"] == "max" else F.avg_pool2d(h, body["size"])
                else:
                    h = F.linear(h.flatten(1), *p)
            F.cross_entropy(h, torch.tensor([y])).backward()
            with torch.no_grad():
                for p in params:
                    for t in p:
                        t -= eta * t.grad
                        t.grad = None

    times = []
    for _ in range(5):
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stack_rows(symcnn: list[str]) -> list[str]:
    """The network-stack built-ins (issue 13): `symcnn values` side by side with `import sympy`, and the
    in-process NumPy run and PyTorch forward+backward of lenet-like as floors."""
    import symcnn as package
    from symcnn.scenario.sources import read_source

    m = side_by_side(
        {
            "import sympy": [sys.executable, "-c", "import sympy"],
            "values lenet-like": [*symcnn, "values", "lenet-like"],
            "values two-conv": [*symcnn, "values", "two-conv"],
        },
        runs=5,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    data = read_source("lenet-like")[0]
    read, read_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    package.load(data)
    validate = time.perf_counter() - start
    floor, torch_time = numpy_floor(data), torch_floor(data)
    base_wall, base_cpu = m["import sympy"]
    lines = [
        "| stacks | time | ratio to `import sympy` (same run) |",
        "|---|---|---|",
        f"| `import sympy` (baseline) | {base_wall:.3f} s wall, {base_cpu:.3f} s CPU | 1× |",
    ]
    for key in ("values lenet-like", "values two-conv"):
        wall, cpu = m[key]
        lines.append(
            f"| `symcnn {key}` | {wall:.3f} s wall, {cpu:.3f} s CPU | {wall / base_wall:.2f}× wall, "
            f"{cpu / base_cpu:.2f}× CPU |"
        )
    lines.append(
        f"| lenet-like: read the YAML (in-process) | {fmt(read, CAP)} wall, {fmt(read_cpu, CAP)} CPU | "
        f"{read / base_wall:.2f}× wall, {read_cpu / base_cpu:.2f}× CPU |"
    )
    lines.append(
        f"| lenet-like: validate the data read (in-process) | {fmt(validate, CAP)} | {validate / base_wall:.2f}× |"
    )
    lines.append(f"| lenet-like: NumPy run (in-process, floor) | {fmt(floor, CAP)} | {floor / base_wall:.2f}× |")
    torch_cell = "torch not installed" if torch_time is None else fmt(torch_time, CAP)
    torch_ratio = "—" if torch_time is None else f"{torch_time / base_wall:.2f}×"
    lines.append(
        f"| lenet-like: PyTorch float64 forward+backward+SGD (in-process, floor) | {torch_cell} | {torch_ratio} |"
    )
    lines += exact_stack_rows(symcnn, base_wall, base_cpu)
    return lines


STACK_TARGETS = {"check": 30, "render": 60}  # issue 13: at most this many times `import sympy`
STACK_MEMORY = 1.5 * 2**20  # KiB: at most 1.5 GiB


def exact_stack_rows(symcnn: list[str], base_wall: float, base_cpu: float) -> list[str]:
    """`symcnn check lenet-like` and `render lenet-like --format markdown` (the exact engine, every cell's
    value; render adds the summary document), timed once each after the baseline, with peak memory; the
    targets are read on CPU time, which a loaded machine inflates less than wall time."""
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "check": [*symcnn, "check", "lenet-like"],
            "render": [*symcnn, "render", "lenet-like", "--format", "markdown", "--out", tmp],
        }
        for key, command in commands.items():
            elapsed, rss, cpu = timed_cpu(command, CAP)
            target = STACK_TARGETS[key]
            met = elapsed is not None and cpu / base_cpu <= target and rss <= STACK_MEMORY
            shown = " ".join(command[len(symcnn) : len(symcnn) + 2]) + (" --format markdown" if key == "render" else "")
            wall = "—" if elapsed is None else f"{elapsed / base_wall:.1f}× wall"
            lines.append(
                f"| `symcnn {shown}` | {fmt(elapsed, CAP)} wall, {cpu:.1f} s CPU, peak {rss / 2**20:.2f} GiB | "
                f"{cpu / base_cpu:.1f}× CPU, {wall} (target ≤ {target}×, ≤ 1.5 GiB: {'met' if met else 'NOT met'}) |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two smallest configurations")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--stacks", action="store_true", help="only the network-stack rows (lenet-like, two-conv)")
    parser.add_argument(
        "--cap", type=float, default=CAP, help=f"seconds allowed per symcnn command (default {CAP:.0f})"
    )
    args = parser.parse_args()
    cap = args.cap
    configs = CONFIGS[:2] if args.quick else CONFIGS
    symcnn = [sys.executable, "-m", "symcnn"]
    if args.stacks:
        print("\n".join(stack_rows(symcnn)))
        return
    import_sympy = statistics.median(timed([sys.executable, "-c", "import sympy"], 60)[0] for _ in range(5))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targets = small_targets(symcnn, tmp)
        print("done: small targets", file=sys.stderr)
        stacks = stack_rows(symcnn)
        print("done: stacks", file=sys.stderr)
        for name, size, channels, filters, kernel, pool, classes in configs:
            data = scenario(size, channels, filters, kernel, pool, classes)
            path = Path(tmp) / f"{data['name']}.json"
            path.write_text(json.dumps(data))
            floor = numpy_floor(data)
            values = timed([*symcnn, "values", str(path)], cap)[0]
            check, rss = timed([*symcnn, "check", str(path)], cap)
            out = Path(tmp) / "out"
            md, md_rss = timed([*symcnn, "render", str(path), "--format", "markdown", "--out", str(out)], cap)
            tex = timed([*symcnn, "render", str(path), "--format", "latex", "--out", str(out)], cap)[0]
            slow = naive(path) if size <= 8 else None
            rows.append((name, floor, values, check, md, tex, rss, md_rss, slow, size <= 8))
            print(f"done: {name}", file=sys.stderr)
    header = [
        "configuration",
        "NumPy run (floor)",
        "values",
        "check",
        "render md",
        "render latex",
        "peak MiB (check / render md)",
        "naive SymPy",
    ]
    lines = []
    for name, floor, values, check, md, tex, rss, md_rss, slow, tried in rows:
        cells = [name, fmt(floor, cap)]
        for t in (values, check, md, tex):
            cells.append(f"{fmt(t, cap)} ({ratio(t, floor)} floor, {ratio(t, import_sympy)} sympy)")
        cells.append(f"{rss / 1024:.0f} / {md_rss / 1024:.0f}")
        cells.append(fmt(slow, NAIVE_CAP) if tried else "not tried")
        lines.append(cells)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    if args.markdown:
        print(f'Machine: {machine}. `python -c "import sympy"`: {import_sympy:.3f} s (median of 5).\n')
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
        print("\n" + TARGETS + "\n")
        print("\n".join(targets))
        print("\n" + "\n".join(stacks))
    else:
        print(f"{machine}; import sympy {import_sympy:.3f} s")
        for cells in [header, *lines]:
            print("  ".join(cells))
        print("\n".join(targets))
        print("\n".join(stacks))


if __name__ == "__main__":
    main()
