"""The command line: parse, call the library, print. Exit codes are decided here and only here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys

from .errors import PartialFailure, SymcnnError, UsageError
from .rendering import FORMATS
from .version import __version__

FORCE_HELP = "run even past the size limits (10,000 steps, 5 million values)"
SCENARIO_HELP = "a .yaml/.yml/.json scenario file, or the name of a built-in scenario (see `symcnn list`)"


def loaded(args: argparse.Namespace, exact: bool = True):
    """The scenario, refused (exit 2, within a second) when its run is past the size limits (more than
    10,000 steps or 5 million values) and --force is not given."""
    from .engine.size import guard
    from .scenario.sources import load

    sc = load(args.scenario)
    guard(sc, force=args.force, exact=exact)
    return sc


def cmd_list(args: argparse.Namespace) -> int:
    """Print the built-in scenarios, one per line: name, then title."""
    from .scenario.sources import builtin_names, load

    for name in builtin_names():
        print(f"{name}\t{load(name).title}")
    return 0


def cmd_values(args: argparse.Namespace) -> int:
    """Print every number of the run as JSON (NumPy only; SymPy is not imported)."""
    from .engine.numeric import run

    trace = run(loaded(args, exact=False))
    json.dump(trace.to_dict(), sys.stdout, indent=args.indent, allow_nan=False)
    sys.stdout.write("\n")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Re-derive every value with SymPy and NumPy, compare them and audit the claims."""
    sc = loaded(args)  # before SymPy is imported: a refusal takes well under a second
    from .verify import check

    report = check(sc, rtol=args.rtol, atol=args.atol, thorough=args.thorough)
    print(report.table())
    return 0 if report.ok else 1


def cmd_render(args: argparse.Namespace) -> int:
    """Write the worked solution in one or more formats into --out."""
    sc = loaded(args)
    from .rendering.formats import render_to_dir

    if args.compare_optimizers:
        sc = dataclasses.replace(sc, display={**sc.display, "compare_optimizers": True})
    written = render_to_dir(
        sc,
        args.format,
        args.out,
        detail=args.detail,
        precision=args.precision,
        iterations=args.iterations,
        fractions=args.fractions,
        force=args.force,
    )
    for path in written:
        print(path)
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    """Render every built-in scenario in every format into OUT/<name>/, and an example exercise batch with
    its LMS question banks into OUT/exercises/ (what output/ holds). A format that fails (a PDF without
    TeX, say) leaves the others written; each failure is one error line."""
    from .exercises.batch import EXAMPLE_BATCH, write_exercises
    from .rendering.formats import render_examples

    written, failures = [], []
    try:
        written += render_examples(args.out, pdf=not args.no_pdf)
    except PartialFailure as exc:
        written, failures = exc.written, exc.failures
    written += write_exercises(out=os.path.join(args.out, "exercises"), **EXAMPLE_BATCH)
    if failures:
        raise PartialFailure(written, failures)
    for path in written:
        print(path)
    return 0


def cmd_exercise(args: argparse.Namespace) -> int:
    """Write exercise sheets: COUNT variants of a scenario with new numbers drawn from SEED, each with a
    student sheet (setup and questions) and a solution (the worked solution, answers first), plus
    key.json for `symcnn grade`; with --format pdf also class.pdf, every sheet ready to print."""
    sc = loaded(args)
    from .exercises.batch import write_exercises

    written = write_exercises(sc, args.seed, args.count, args.out, args.difficulty, args.format, args.jobs)
    for path in written:
        print(path)
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    """Mark answers against the key.json of `symcnn exercise`. A student's YAML/JSON file: each question
    right or wrong with the expected value, then the score. A class's CSV (columns student/email/id,
    variant, q1..q7, in any order, others kept): a gradebook CSV with score, percent and a mark per
    question, into --out or on stdout; nothing is written if a row is bad. Exits 0 whatever the scores."""
    if args.answers.lower().endswith(".csv"):
        from .exercises.gradebook import gradebook, write_gradebook

        book = gradebook(args.answers, args.key)
        if args.out is None:
            sys.stdout.write(book.csv())
        else:
            print(f"{write_gradebook(book, args.out)}: {book.summary()}")
        return 0
    if args.out is not None:
        raise UsageError("--out: only a CSV of a class's answers writes a gradebook")
    from .exercises.grading import grade

    print(grade(args.answers, args.key).table())
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check what each feature needs on this machine (Python packages, TeX with a probe document of every
    LaTeX package and font the templates use, the test tools, the cache folder) and how to fix what is
    missing. Exits 0 when every document format can be produced, else 1."""
    from .doctor import diagnose

    report = diagnose()
    print(report.table())
    return 0 if report.ok else 1


def formats(text: str) -> list[str]:
    """``markdown,latex`` -> ["markdown", "latex"]; an unknown name is a usage error."""
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in FORMATS:
            raise argparse.ArgumentTypeError(f"invalid choice: '{name}' (choose from {', '.join(FORMATS)})")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symcnn",
        description="Worked solutions for tiny CNNs: every number derived with SymPy and checked with NumPy.",
    )
    parser.add_argument("--version", action="version", version=f"symcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list the built-in scenarios", description=cmd_list.__doc__)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("values", help="print every number of the run as JSON", description=cmd_values.__doc__)
    p.add_argument("scenario", help=SCENARIO_HELP)
    p.add_argument("--indent", type=int, default=None, help="indent the JSON by N spaces")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_values)

    p = sub.add_parser("check", help="compare symbolic and numeric values, audit claims", description=cmd_check.__doc__)
    p.add_argument("scenario", help=SCENARIO_HELP)
    p.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance (default 1e-9)")
    p.add_argument("--atol", type=float, default=1e-12, help="absolute tolerance (default 1e-12)")
    p.add_argument(
        "--thorough",
        action="store_true",
        help="also build every cell's own SymPy expression and confirm it gives the layer rule's value "
        "(slower: about 0.3 ms a value)",
    )
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("render", help="write the worked solution", description=cmd_render.__doc__)
    p.add_argument("scenario", help=SCENARIO_HELP)
    p.add_argument(
        "--format",
        "-f",
        required=True,
        type=formats,
        metavar="F[,F...]",
        help=f"output format: {', '.join(FORMATS)}; several, comma-separated, share one check",
    )
    p.add_argument("--out", "-o", required=True, help="output folder (created if missing)")
    p.add_argument("--detail", choices=("full", "summary"), default=None, help="expand every cell, or one per matrix")
    p.add_argument("--precision", type=int, default=None, help="decimals shown for rounded numbers")
    p.add_argument("--iterations", choices=("all", "first", "last"), default="all", help="which iterations to show")
    p.add_argument(
        "--fractions",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show exact non-terminating values as fractions (1/3) instead of rounded decimals",
    )
    p.add_argument(
        "--compare-optimizers",
        action="store_true",
        help="add a section training the same scenario with SGD, momentum and Adam, side by side",
    )
    p.add_argument(
        "--force", action="store_true", help=FORCE_HELP + "; also write a --detail full document of hundreds of pages"
    )
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "examples", help="render the built-in scenarios in every format", description=cmd_examples.__doc__
    )
    p.add_argument("--out", "-o", default="output", help="output folder (default: output)")
    p.add_argument("--no-pdf", action="store_true", help="skip compiling PDFs (no TeX needed)")
    p.set_defaults(func=cmd_examples)

    p = sub.add_parser(
        "doctor", help="what this machine can produce, and how to fix it", description=cmd_doctor.__doc__
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "exercise",
        help="write exercise sheets of seeded variants, with solutions and an answer key",
        description=cmd_exercise.__doc__,
    )
    p.add_argument(
        "scenario", nargs="?", default="four-images", metavar="SCENARIO", help=SCENARIO_HELP + " (default: four-images)"
    )
    # numbers are checked by the library, so that a bad one is one `error: --seed: ...` line like any bad input
    p.add_argument(
        "--seed", required=True, metavar="N", help="whole number >= 0; the same seed gives the same variants"
    )
    p.add_argument("--count", default="1", metavar="M", help="how many variants (default 1)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--difficulty", default="easy", metavar="{easy,medium,hard}", help="easy (default), medium or hard")
    p.add_argument(
        "--format",
        "-f",
        default="markdown",
        metavar="F[,F...]",
        help="sheets: markdown (default), pdf or html; question banks for an LMS: moodle (moodle.xml), "
        "gift (questions.gift), qti (qti.zip, for Canvas); several, comma-separated",
    )
    p.add_argument("--jobs", "-j", default=None, metavar="J", help="worker processes (default: the number of cores)")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=cmd_exercise)

    p = sub.add_parser(
        "grade",
        help="mark a student's answers file, or a class's CSV, against an exercise key",
        description=cmd_grade.__doc__,
    )
    p.add_argument(
        "answers",
        metavar="ANSWERS",
        help="a student's answers, YAML or JSON: {variant: N, answers: {q1: ..., ...}}; or a class's answers, "
        "a .csv with a header row: student (or email, id), variant, q1, q2, ...",
    )
    p.add_argument("--key", "-k", required=True, metavar="KEY.json", help="the key.json that `symcnn exercise` wrote")
    p.add_argument(
        "--out",
        "-o",
        default=None,
        metavar="GRADES.csv",
        help="CSV answers: write the gradebook here (default: stdout)",
    )
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except PartialFailure as exc:  # what was written, then one line per failure
        for path in exc.written:
            print(path)
        for failure in exc.failures:
            print(f"error: {_one_line(failure)}", file=sys.stderr)
        return exc.exit_code
    except SymcnnError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: temporary folders are gone, nothing half-written is left
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not interrupt the message
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def run() -> None:
    """The `symcnn` command: main(), then exit without tearing the interpreter down. Freeing every
    SymPy object one by one at exit costs a tenth of a second of a one-second run; the operating system
    reclaims the memory at once. Files are closed and output is flushed before."""
    # NumPy's OpenBLAS would start a thread per core at import, for nothing: symcnn's arrays are small
    # or hold Python numbers (a user's own setting wins)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `symcnn values x | head`: the reader has gone, nothing is lost
        pass
    os._exit(code)


def _one_line(text: str) -> str:
    return " ".join(text.split())
