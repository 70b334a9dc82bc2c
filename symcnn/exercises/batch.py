"""`symcnn exercise`: a batch of seeded variants of a scenario, each with a student sheet, a solution
and its part of the answer key, built in parallel over the machine's cores.

    OUT/key.json                     every variant's questions: value, tolerance, `symcnn values` path
    OUT/variant-01/scenario.yaml     the variant as a scenario file (`symcnn check` / `render` take it)
    OUT/variant-01/student.md        the student sheet (pdf: student.tex and student.pdf)
    OUT/variant-01/solution.md       the worked solution, questions and answers first
    OUT/key.md                       every variant's answers in one table (pdf: key.tex and key.pdf)
    OUT/class.pdf                    pdf only: every student sheet, the key, then every solution, to print
    OUT/moodle.xml                   --format moodle: a Moodle XML question bank (moodle.py)
    OUT/questions.gift               --format gift: the same in Moodle's GIFT text format (gift.py)
    OUT/qti.zip                      --format qti: the same as a QTI 1.2 package for Canvas (qti.py)

``--format`` takes several formats, comma-separated: sheet formats (markdown, pdf, html) write the sheets
and the key table; LMS formats (moodle, gift, qti) write one question bank of the whole batch. Without a sheet
format a variant's folder holds its scenario file only.

Everything is written into a staging folder inside OUT and moved in when the whole batch is done,
so a failure leaves nothing half-written. Variant k depends only on (seed, k).
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..document.model import Settings
from ..errors import RenderError, UsageError
from ..progress import progress, quiet
from ..rendering.formats import compile_pdf, have_tex, new_folder, render_text, tex_fix, write_formats
from ..rendering.templates import LATEX_DELIMITERS, jinja_environment
from ..scenario.model import Scenario
from ..scenario.sources import load
from ..verify import checked
from . import gift, moodle, qti
from .lms import Batch, Item, build_item
from .questions import key_entry
from .sheets import key_document, solution_document, student_document
from .stack_questions import choose_any_questions
from .stack_variants import draw_any_variant
from .variants import DIFFICULTIES

DEFAULT_SCENARIO = "four-images"
SHEET_FORMATS = {"markdown": "markdown", "pdf": "latex", "html": "html"}  # --format -> document format
LMS_FORMATS = {
    "moodle": moodle,
    "gift": gift,
    "qti": qti,
}  # --format -> its module: write(Batch) -> {file: bytes}, PICTURES
KEY_FORMAT = "symcnn exercise key 1"
# output/exercises/ (`symcnn examples`): seed 2026, 5 variants, the sheets and every LMS format
EXAMPLE_BATCH = {"scenario": "four-images", "seed": 2026, "count": 5, "fmt": "markdown,moodle,gift,qti"}


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    seed: int
    index: int
    difficulty: str
    formats: tuple[str, ...]
    staging: str


def folder_name(index: int) -> str:
    return f"variant-{index:02d}"


def scenario_yaml(variant) -> str:
    header = (
        f"# Exercise variant {variant.index} of seed {variant.seed} ({variant.difficulty}), "
        "written by symcnn exercise.\n# `symcnn check` and `symcnn render` take this file like any scenario.\n"
    )
    return header + yaml.safe_dump(
        variant.data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
    )


@dataclass(frozen=True)
class Built:
    """What a worker hands back for one variant."""

    index: int
    key: dict  # its entry in key.json
    files: list[str]  # written, relative to the staging folder
    answers: tuple  # exact (SymPy) answers, for the answer key's table
    kinds: tuple[str, ...]
    checked: int  # values SymPy and NumPy agreed on
    item: Item | None  # for the LMS formats


def build_variant(job: Job) -> Built:
    """Draw, check and write one variant into the staging folder (the batch's bar is the only one)."""
    with quiet():
        return _build_variant(job)


def _build_variant(job: Job) -> Built:
    variant = draw_any_variant(job.scenario, job.seed, job.index, job.difficulty)
    questions = choose_any_questions(variant)
    report = checked(variant.scenario, f"{variant.scenario.name}: ")  # SymPy against NumPy, every value
    settings = Settings.from_display(variant.scenario.display)
    docs = [
        student_document(report, variant, questions, settings),
        solution_document(report, variant, questions, settings),
    ]
    name = folder_name(job.index)
    folder = Path(job.staging) / name
    folder.mkdir(parents=True)
    (folder / "scenario.yaml").write_text(scenario_yaml(variant), encoding="utf-8")
    written = ["scenario.yaml"]
    for fmt in job.formats:
        if fmt == "pdf":
            written += write_pdfs(docs, folder)
        elif fmt in SHEET_FORMATS:
            for doc in docs:
                written += [p.relative_to(folder).as_posix() for p in write_formats(doc, [SHEET_FORMATS[fmt]], folder)]
    answers = tuple(report.derivation.quantity_at(q.path).value for q in questions)
    styles = sorted({LMS_FORMATS[fmt].PICTURES for fmt in job.formats if fmt in LMS_FORMATS})
    item = build_item(report, variant, questions, settings, styles) if styles else None
    return Built(
        job.index,
        key_entry(variant, questions, name),
        [f"{name}/{w}" for w in written],
        answers,
        tuple(q.kind for q in questions),
        report.compared,
        item,
    )


def write_pdfs(docs, folder: Path) -> list[str]:
    """Each document as LaTeX and its compiled PDF (aux files stay in a temporary folder)."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".latex-") as tmp:
        work = Path(tmp)
        sources = []
        for doc in docs:
            for file, text in render_text(doc, "latex").items():
                (work / file).write_text(text, encoding="utf-8")
                sources.append(work / file)
        pdfs = compile_pdf(sources, work)
        for path in sources + pdfs:
            os.replace(path, folder / path.name)
    return [p.name for p in sources + pdfs]


def run_jobs(jobs: list[Job], workers: int) -> list[Built]:
    """Every job, in a process pool when more than one worker; results in variant order."""
    bar = progress(len(jobs), "variants", unit="variant")
    results = []
    try:
        if workers <= 1:
            for job in jobs:
                results.append(build_variant(job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(build_variant, job) for job in jobs]
                try:
                    for future in as_completed(futures):
                        results.append(future.result())
                        bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return sorted(results, key=lambda built: built.index)


def class_tex(names: list[str]) -> str:
    env = jinja_environment(**LATEX_DELIMITERS)
    return env.get_template("latex/class.tex.j2").render(variants=names)


def check_request(seed, count, difficulty: str, fmt, jobs) -> tuple[int, int, int, tuple[str, ...]]:
    """The batch's options, checked before anything is read or written; returns (seed, count, workers,
    formats). ``fmt`` is a format, several comma-separated, or a list of them."""
    seed = whole_number(seed, "--seed", 0)
    count = whole_number(count, "--count", 1)
    workers = whole_number(jobs, "--jobs", 1) if jobs is not None else os.cpu_count() or 1
    if difficulty not in DIFFICULTIES:
        raise UsageError(f"--difficulty: unknown '{difficulty}'; expected one of {', '.join(DIFFICULTIES)}")
    names = [name.strip() for name in (fmt.split(",") if isinstance(fmt, str) else fmt)]
    for name in names:
        if name not in SHEET_FORMATS and name not in LMS_FORMATS:
            known = ", ".join([*SHEET_FORMATS, *LMS_FORMATS])
            raise UsageError(f"--format: unknown '{name}'; expected one of {known}, or several comma-separated")
    if "pdf" in names and not have_tex():
        raise RenderError(f"--format pdf: latexmk and pdflatex are needed, or use --format markdown ({tex_fix()})")
    return seed, count, min(workers, count), tuple(dict.fromkeys(names))


def whole_number(value, option: str, minimum: int) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("-").isdigit():
        raise UsageError(f"{option}: expected a whole number, got '{value}'")
    if int(text) < minimum:
        raise UsageError(f"{option}: must be >= {minimum}, got {int(text)}")
    return int(text)


def write_exercises(
    scenario=DEFAULT_SCENARIO,
    seed: int = 0,
    count: int = 1,
    out: str | Path = "exercises",
    difficulty: str = "easy",
    fmt: str | list[str] = "markdown",
    jobs: int | None = None,
) -> list[Path]:
    """Write ``count`` variants of ``scenario`` drawn from ``seed`` into ``out``; returns the variant
    folders and the top-level files (key.json, the key table, with pdf class.tex and class.pdf, and
    each LMS format's question bank). ``fmt``: a format, several comma-separated, or a list."""
    seed, count, workers, formats = check_request(seed, count, difficulty, fmt, jobs)
    sc = load(scenario)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a folder")
    with new_folder(out), tempfile.TemporaryDirectory(dir=out, prefix=".symcnn-") as tmp:  # no empty --out left
        staging = Path(tmp)
        work = [Job(sc, seed, k, difficulty, formats, str(staging)) for k in range(1, count + 1)]
        results = run_jobs(work, workers)
        key = {
            "format": KEY_FORMAT,
            "scenario": sc.name,
            "seed": seed,
            "difficulty": difficulty,
            "count": count,
            "tolerance": "absolute 0.005 for values of 0.1 or more (and 0), else 5% of the value; the loss "
            "also allows for a probability rounded to 3 decimals (0.0005 / p)",
            "variants": {str(built.index): built.key for built in results},
        }
        (staging / "key.json").write_text(json.dumps(key, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files = [file for built in results for file in built.files] + ["key.json"]
        answers = {built.index: built.answers for built in results}
        checked = sum(built.checked for built in results)
        table = key_document(sc, seed, difficulty, answers, list(results[0].kinds), checked)
        for name in formats:
            if name == "pdf":
                files += write_pdfs([table], staging)
                names = [folder_name(built.index) for built in results]
                (staging / "class.tex").write_text(class_tex(names), encoding="utf-8")
                compile_pdf([staging / "class.tex"], staging)  # its aux files stay behind in the staging folder
                files += ["class.tex", "class.pdf"]
            elif name in SHEET_FORMATS:
                files += [
                    p.relative_to(staging).as_posix() for p in write_formats(table, [SHEET_FORMATS[name]], staging)
                ]
            else:
                batch = Batch(sc.name, sc.title, seed, difficulty, tuple(built.item for built in results))
                for file, content in LMS_FORMATS[name].write(batch).items():
                    (staging / file).write_bytes(content)
                    files.append(file)
        for file in files:
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / file, out / file)
    top = [out / folder_name(built.index) for built in results]
    return top + [out / f for f in files if "/" not in f]
