"""The document model every format renders: sections of blocks (equations, matrices, tables, text).

Blocks hold SymPy objects, not markup; a renderer turns them into LaTeX or MathML through its printer.
Every equation shown is checked: its substituted form, re-evaluated, equals the value shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from ..engine.algebra import (
    Group,
    MaxOf,
    Quantity,
    agrees,
    evaluate,
    plus,
    shorten,
    substitute,
    times,
    to_exact,
    to_sympy,
)
from ..errors import VerificationError

SETTINGS = {"detail": ("full", "summary"), "iterations": ("all", "first", "last"), "aspect": ("16:9", "4:3")}
MAX_COLUMNS = 9  # wider matrices are shown in column chunks


@dataclass(frozen=True)
class Settings:
    detail: str = "summary"
    precision: int = 3
    fractions: bool = False
    iterations: str = "all"
    compare_optimizers: bool = False  # a section running the scenario under SGD, momentum and Adam
    aspect: str = "16:9"  # of the slides
    samples: tuple[str, ...] | None = None  # the samples worked in full; None: every one

    def __post_init__(self) -> None:
        for key, allowed in SETTINGS.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}")

    @classmethod
    def from_display(cls, display: dict, detail=None, precision=None, fractions=None, iterations="all") -> Settings:
        """The options given, else the scenario's ``display`` hints, else summary, 3 decimals, decimals."""
        return cls(
            detail=detail or display.get("detail", "summary"),
            precision=precision if precision is not None else display.get("precision", 3),
            fractions=fractions if fractions is not None else display.get("fractions", False),
            iterations=iterations,
            compare_optimizers=display.get("compare_optimizers", False),
        )


@dataclass(frozen=True)
class Equation:
    lhs: sympy.Expr
    general: sympy.Expr | None
    substituted: sympy.Expr | None
    value: sympy.Expr
    kind: str = "equation"
    path: str | None = None  # the value's `symcnn values` path (the HTML page makes it explorable)


@dataclass(frozen=True)
class Formula:
    """A general formula with indices, no numbers: lhs = rhs."""

    lhs: sympy.Expr
    rhs: sympy.Expr
    kind: str = "formula"


@dataclass(frozen=True)
class Derivative:
    """SymPy's own derivation: d(expr)/d(variable) = raw = simplified = closed form."""

    lhs: sympy.Expr
    raw: sympy.Expr
    simplified: sympy.Expr | None  # None when simplify changed nothing
    closed_form: sympy.Expr
    kind: str = "derivative"


@dataclass(frozen=True)
class Matrix:
    name: sympy.Expr
    values: np.ndarray  # 2-D of SymPy numbers; None where rows/columns are elided (shown as dots)
    marks: frozenset = frozenset()  # (row, col) cells to highlight, in shown positions
    columns: tuple[int, int] | None = None  # 1-based first/last column when chunked
    kind: str = "matrix"
    shape: tuple[int, int] | None = None  # the full size, when the matrix is elided
    paths: np.ndarray | None = None  # each shown cell's `symcnn values` path (None: no path, or elided)

    def dots(self, i: int, j: int) -> str:
        """The ellipsis an elided cell shows: "diagonal" where a gap row meets a gap column, "vertical"
        along a gap row, "horizontal" along a gap column."""
        gap_row = all(v is None for v in self.values[i])
        gap_col = all(v is None for v in self.values[:, j])
        return "diagonal" if gap_row and gap_col else "vertical" if gap_row else "horizontal"


@dataclass(frozen=True)
class Cell:
    value: object
    math: bool = False
    path: str | None = None  # a number's `symcnn values` path


@dataclass(frozen=True)
class Table:
    header: tuple[Cell, ...]
    rows: tuple[tuple[Cell, ...], ...]
    kind: str = "table"


@dataclass(frozen=True)
class Text:
    text: str
    kind: str = "text"


@dataclass(frozen=True)
class Heatmap:
    """A matrix as coloured cells: ``gray`` (an image: white 0 to black) or ``diverging`` (blue negative,
    white 0, red positive); the numbers written in the cells when they are big enough (``texts``)."""

    title: str  # plain text under the picture, e.g. "image img1", "z, filter A"
    values: np.ndarray  # 2-D floats: the colours
    texts: tuple[tuple[str, ...], ...] | None  # the numbers as shown, None for large matrices
    scale: str  # "gray" or "diverging"
    marks: frozenset = frozenset()  # (row, col) cells outlined: max-pool winners
    window: tuple[int, int, int, int] | None = None  # (row, col, height, width) outlined: a filter window
    kind: str = "heatmap"


@dataclass(frozen=True)
class Chart:
    """A line chart: one line per series (a sample), one point per x tick (a pass)."""

    title: str
    xticks: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]  # (name, y per tick)
    ymax: float  # the y axis runs from 0 to ymax
    kind: str = "chart"


@dataclass(frozen=True)
class Figure:
    """Pictures side by side (a Heatmap or Chart each), with a caption; ``key`` names its files."""

    key: str
    caption: str
    panels: tuple
    kind: str = "figure"


@dataclass
class Section:
    title: str
    key: str  # stable identifier for snippet file names, e.g. it1-img1-conv
    blocks: list = field(default_factory=list)
    level: int = 2
    context: str = ""  # the enclosing level-1 title, e.g. "Pass 1, img1 (label cat)"


@dataclass(frozen=True)
class Document:
    name: str
    title: str
    description: str
    notes: tuple[str, ...]
    sections: tuple[Section, ...]
    settings: Settings
    notation: object
    show_sample: bool
    checked: int
    max_diff: float
    claims_held: int
    claims_total: int
    kind: str = "solution"  # "student": an exercise sheet (setup and questions), nothing derived shown
    panels: tuple = ()  # the explorable page's panels (panels.Panel), one per path


# ---------------------------------------------------------------- blocks from quantities


MAX_TERMS = 24  # summary detail: longer sums (and max over more cells) show their ends around dots


def equation(q: Quantity, general: sympy.Expr | None = None, env: dict | None = None, elide: bool = False) -> Equation:
    """q as an equation. A display form (``general``, e.g. max(0, z) for ReLU) is substituted with ``env``
    and must evaluate to q's value (q's own form was checked when q was built). With ``elide`` (summary
    detail), sums of more than MAX_TERMS terms are cut for display, after the check."""
    if general is None:
        general, env = q.general, None  # q's own numbers, converted for the symbols shown only
        substituted = None
    else:
        substituted = substitute(general, env)
        shown = evaluate(substituted)
        if not agrees(shown, to_exact(q.value)):
            raise VerificationError(f"{q.path}: the substituted form evaluates to {shown}, not {q.value}")
    if elide:
        short = shorten(general, MAX_TERMS)
        if short is not general or substituted is None:
            if env is None:
                env = {s: to_sympy(q.env[s]) for s in short.free_symbols if s in q.env}
            general, substituted = short, substitute(short, env)
        else:
            substituted = shorten(substituted, MAX_TERMS)
    elif substituted is None:
        substituted = q.substituted
    if substituted == general or substituted.is_Number:
        substituted = None  # nothing to add beyond the general form / the value
    if general.is_Number or general == q.symbol:
        general = None
    return Equation(q.symbol, general, substituted, q.value, path=q.path)


ELIDE_ABOVE = 8  # summary detail: a matrix of more than 8x8 entries shows the first and last entries of
# each dimension longer than 8 around dots
HEAD, TAIL = 5, 3


def kept(n: int) -> list[int | None]:
    """Indices shown of a dimension of size n: all, or the first HEAD, a gap (None), the last TAIL."""
    return list(range(n)) if n <= ELIDE_ABOVE else [*range(HEAD), None, *range(n - TAIL, n)]


def elided(values: np.ndarray, marks) -> tuple[np.ndarray, frozenset]:
    rows, cols = kept(values.shape[0]), kept(values.shape[1])
    shown = np.empty((len(rows), len(cols)), object)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            shown[a, b] = None if i is None or j is None else values[i, j]
    where = {(i, j): (a, b) for a, i in enumerate(rows) for b, j in enumerate(cols) if i is not None and j is not None}
    return shown, frozenset(where[m] for m in marks if m in where)


def matrices(name: sympy.Expr, array, marks=frozenset(), elide: bool = False, paths=None) -> list[Matrix]:
    """A 2-D group of quantities (or array of numbers) as matrix blocks: elided around dots when large
    and ``elide`` (summary detail), else chunked by columns when wide. ``paths(index)`` names the
    `symcnn values` path of a cell (an index of ``array``), for the cells shown."""
    values = array.values if isinstance(array, Group) else np.asarray(array, dtype=object)
    flat = values.ndim == 1
    if flat:
        values = values[None, :]

    def named(rows, cols):
        if paths is None:
            return None
        out = np.empty((len(rows), len(cols)), object)
        for a, i in enumerate(rows):
            for b, j in enumerate(cols):
                out[a, b] = None if i is None or j is None else paths((j,) if flat else (i, j))
        return out

    if elide and values.size > ELIDE_ABOVE**2:
        shown, shown_marks = elided(values, marks)
        shown = np.vectorize(lambda v: None if v is None else to_sympy(v), otypes=[object])(shown)
        names = named(kept(values.shape[0]), kept(values.shape[1]))
        return [Matrix(name, shown, shown_marks, shape=values.shape, paths=names)]
    values = np.vectorize(to_sympy, otypes=[object])(values)
    names = named(range(values.shape[0]), range(values.shape[1]))
    width = values.shape[1]
    if width <= MAX_COLUMNS:
        return [Matrix(name, values, frozenset(marks), paths=names)]
    out = []
    for start in range(0, width, MAX_COLUMNS):
        stop = min(start + MAX_COLUMNS, width)
        chunk_marks = frozenset((i, j - start) for i, j in marks if start <= j < stop)
        chunk = None if names is None else names[:, start:stop]
        out.append(Matrix(name, values[:, start:stop], chunk_marks, (start + 1, stop), paths=chunk))
    return out


def worked_steps(steps, shown, samples) -> list:
    """The steps a document works in full: those of the ``shown`` passes, of the ``samples`` named
    (None: every sample)."""
    return [s for s in steps if s.iteration in shown and (samples is None or s.sample in samples)]


def values_of(array) -> np.ndarray:
    """The numbers of a group of quantities (or an array of numbers) as a float ndarray of the same shape."""
    values = array.values if isinstance(array, Group) else array
    return np.vectorize(float, otypes=[float])(values)


def cells_to_show(array: Group, detail: str) -> list[tuple]:
    """Indices of the cells to expand: every one at full detail. In summary one representative: the
    first cell of a small matrix; of a large (elided) one, the cell of largest magnitude, where
    something happens (the corner of a 28x28 digit is blank)."""
    indices = list(np.ndindex(*array.shape))
    if detail == "full":
        return indices
    if array.size <= ELIDE_ABOVE**2:
        return indices[:1]
    magnitudes = np.abs(values_of(array))
    return [np.unravel_index(int(np.argmax(magnitudes)), array.shape)]


def relu_display(kind: str, z: sympy.Expr, slope) -> sympy.Expr | None:
    """max(0, z) reads better than the Piecewise SymPy differentiates; same value."""
    if kind == "relu":
        return MaxOf(0, z)
    if kind == "leaky_relu":
        return MaxOf(z, times(slope, z))
    return None


def conv_sum(deriver, k: int) -> Formula:
    """z^{A}_{i,j} = sum_c sum_u sum_v w^{A}_{c,u,v} x_{c, s(i-1)+u-p, s(j-1)+v-p} + b^{A}."""
    sc, N = deriver.sc, deriver.N
    flt = sc.conv.filters[k]
    i, j, u, v, c = sympy.symbols("i j u v c", integer=True, positive=True)
    s, p = sc.conv.stride, sc.conv.padding

    def position(outer, inner):
        if s == 1:
            return plus(outer, inner, sympy.Integer(-1 - p))
        return plus(times(sympy.Integer(s), plus(outer, sympy.Integer(-1))), inner, sympy.Integer(-p))

    w = sympy.IndexedBase(N("filter", flt.name))
    x = sympy.IndexedBase(N("input", None))
    chan = (c,) if deriver.multi else ()
    term = times(w[(*chan, u, v)], x[(*chan, position(i, u), position(j, v))])
    limits = ([(c, 1, deriver.channels)] if deriver.multi else []) + [(u, 1, deriver.kh), (v, 1, deriver.kw)]
    general = plus(sympy.Sum(term, *limits), N("filter_bias", flt.name))
    z = sympy.IndexedBase(N("conv", flt.name))
    return Formula(z[i, j], general)


def assemble(report, sections: list, settings: Settings, notation, **extra) -> Document:
    """The worked solution from its sections: the verification section last, and each part told which pass
    and sample it belongs to (slides and snippets say so); ``report`` is the check's Report."""
    verification = Text(
        f"{report.compared} values were derived twice, exactly with SymPy and in floating point with NumPy; "
        f"they agree to {report.max_diff:.1g} at most "
        f"(tolerance: relative {report.rtol:g}, absolute {report.atol:g})."
    )
    sections = [*sections, Section("Verification", "verification", [verification], 1)]
    context = ""
    for section in sections:
        if section.level == 1:
            context = section.title
        else:
            section.context = context
    sc = report.scenario
    return Document(
        sc.name,
        sc.title,
        sc.description,
        sc.notes,
        tuple(sections),
        settings,
        notation,
        sc.training.update != "per_sample",
        report.compared,
        report.max_diff,
        sum(c.ok for c in report.claims),
        len(report.claims),
        **extra,
    )
