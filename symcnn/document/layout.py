"""Pictures of the document model: heatmaps and line charts as boxes, lines and texts in one unit space.

The builder makes ``Heatmap``/``Chart`` panels from arrays of quantities; ``layout`` places every cell,
swatch and label (x to the right, y down, 1 unit = 1pt in TikZ, 1 px before scaling in SVG), so the
TikZ and the SVG templates only draw what is computed here and can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import singledispatch

import numpy as np
import sympy

from ..engine.algebra import Quantity
from .model import Chart, Heatmap, values_of

NUMBERS_UP_TO = 8  # cells carry their numbers up to 8x8; larger matrices are colours only
FONT = 7.0  # size of the numbers in cells and of the labels, in units
CHAR = 0.56 * FONT  # width of a digit
MIN_CELL = 20.0
GRID_SIDE = 168.0  # the longer side of a large matrix's grid
LEGEND_WIDTH, LEGEND_STEPS, LEGEND_BAR = 80.0, 11, 7.0  # four small panels fit a 16:9 slide's width
WHITE, BLUE, RED, BLACK = (255, 255, 255), (33, 102, 172), (178, 24, 43), (0, 0, 0)
WINDOW_COLOUR, MARK_COLOUR = (230, 159, 0), (0, 0, 0)  # orange window, black winners
SERIES_COLOURS = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0), (86, 180, 233))
DASHES = ("", "4 2", "1 2")  # cycled after the colours run out
CHART_W, CHART_H, CHART_LEFT, CHART_TOP = 180.0, 66.0, 30.0, 8.0  # two side by side on a slide
MAX_NAME = 28  # series names longer than this are shortened in the chart legend


# ---------------------------------------------------------------- building panels


def cell_text(value, precision: int) -> str:
    """A number as written in a cell: exact when it has at most ``precision`` decimals (0.7, -2),
    else rounded half-even keeping its zeros (0.080)."""
    v = sympy.sympify(value)
    rounded = Decimal(str(sympy.Float(v, 30))).quantize(Decimal(10) ** -precision, rounding=ROUND_HALF_EVEN)
    exact = v.is_Rational and sympy.Rational(str(rounded)) == v
    text = f"{rounded.normalize() if exact else rounded:f}"
    return text.lstrip("-") if rounded == 0 else text


def exact_values(array) -> np.ndarray:
    """SymPy numbers of a group of quantities (its bulk values) or of an array of SymPy numbers."""
    if hasattr(array, "numbers"):  # a derivation.Group
        return array.numbers()
    return np.vectorize(lambda q: q.value if isinstance(q, Quantity) else q, otypes=[object])(array)


def heatmap(title: str, array, scale: str, precision: int, marks=frozenset(), window=None) -> Heatmap:
    """A 2-D array of quantities (or SymPy numbers) as a heatmap; numbers in the cells up to 8x8."""
    exact = exact_values(array)
    if exact.ndim == 1:
        exact = exact[None, :]
    texts = None
    if max(exact.shape) <= NUMBERS_UP_TO:
        texts = tuple(tuple(cell_text(v, precision) for v in row) for row in exact)
    return Heatmap(title, values_of(exact), texts, scale, frozenset(marks), window)


# ---------------------------------------------------------------- colours


COLOUR_LEVELS = 32  # shades per colour ramp: a heatmap has few distinct colours, drawn one path each


def mix(a: tuple, b: tuple, t: float) -> tuple[int, int, int]:
    t = round(t * COLOUR_LEVELS) / COLOUR_LEVELS
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def colour(value: float, scale: str, low: float, high: float) -> tuple[int, int, int]:
    """gray: low white, high black; diverging: -m blue, 0 white, +m red (m = max |value|)."""
    if scale == "gray":
        return mix(WHITE, BLACK, 0.0 if high == low else (value - low) / (high - low))
    m = max(abs(low), abs(high)) or 1.0
    return mix(WHITE, RED if value > 0 else BLUE, min(abs(value) / m, 1.0))


def ink(fill: tuple) -> tuple[int, int, int]:
    """Black text on light cells, white on dark ones."""
    r, g, b = fill
    return WHITE if 0.2126 * r + 0.7152 * g + 0.0722 * b < 128 else BLACK


def value_range(h: Heatmap) -> tuple[float, float]:
    lo, hi = float(h.values.min()), float(h.values.max())
    if h.scale == "gray":  # pixels in [0, 1] keep that range; others their own
        low, high = (0.0, 1.0) if lo >= 0 and hi <= 1 else (min(lo, 0.0), hi)
        return low, high if high > low else low + 1.0
    m = max(abs(lo), abs(hi)) or 1.0
    return -m, m


def label(value: float) -> str:
    return f"{value:.3g}".replace("-", "\N{MINUS SIGN}")


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    fill: tuple | None = None
    text: str = ""
    ink: tuple = BLACK
    stroke: tuple | None = None
    width: float = 0.0  # stroke width


@dataclass(frozen=True)
class Label:
    x: float
    y: float  # baseline
    text: str
    anchor: str = "middle"  # start, middle, end
    fill: tuple = BLACK


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    stroke: tuple
    width: float = 1.0
    dash: str = ""


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    boxes: tuple[Box, ...]
    labels: tuple[Label, ...]
    lines: tuple[Line, ...] = ()
    dots: tuple[tuple[float, float, tuple], ...] = ()  # (x, y, colour) chart markers
    patches: tuple[tuple[tuple, tuple[tuple[float, float, float, float], ...]], ...] = ()  # colour, its rectangles
    font: float = FONT


@singledispatch
def layout(panel) -> Layout:
    raise TypeError(f"no picture layout for {type(panel).__name__}")


@layout.register
def _(h: Heatmap) -> Layout:
    rows, cols = h.values.shape
    if h.texts is not None:
        longest = max(len(t) for row in h.texts for t in row)
        cell = max(MIN_CELL, longest * CHAR + 6)
    else:
        cell = int(GRID_SIDE / max(rows, cols) * 4) / 4  # quarter units: short coordinates
    width = max(cols * cell, LEGEND_WIDTH)
    x0 = (width - cols * cell) / 2
    lo, hi = value_range(h)
    boxes, patches = [], {}  # cells with a number are boxes; plain cells and swatches, patches by colour
    for i in range(rows):
        run = 0  # plain cells: a run of equal colours along a row is one rectangle
        for j in range(cols):
            fill = colour(float(h.values[i, j]), h.scale, lo, hi)
            if h.texts is None:
                following = colour(float(h.values[i, j + 1]), h.scale, lo, hi) if j + 1 < cols else None
                run += 1
                if following != fill:
                    patches.setdefault(fill, []).append((x0 + (j + 1 - run) * cell, i * cell, run * cell, cell))
                    run = 0
                continue
            text = h.texts[i][j].replace("-", "\N{MINUS SIGN}")
            boxes.append(Box(x0 + j * cell, i * cell, cell, cell, fill, text, ink(fill)))
    boxes.append(Box(x0, 0, cols * cell, rows * cell, stroke=(150, 150, 150), width=0.5))  # frame
    line = min(2.2, cell * 0.15)  # winners' outlines, thinner on small cells
    for i, j in sorted(h.marks):
        inset, side = line / 2 + 0.1, cell - line - 0.2
        boxes.append(Box(x0 + j * cell + inset, i * cell + inset, side, side, stroke=MARK_COLOUR, width=line))
    if h.window is not None:
        i, j, wh, ww = h.window
        boxes.append(Box(x0 + j * cell, i * cell, ww * cell, wh * cell, stroke=WINDOW_COLOUR, width=2.8))
    top = rows * cell + 6  # the legend: a colour bar, its ends (and 0 when diverging) labelled
    step = width / LEGEND_STEPS
    for n in range(LEGEND_STEPS):
        value = lo + (hi - lo) * (n + 0.5) / LEGEND_STEPS
        patches.setdefault(colour(value, h.scale, lo, hi), []).append((n * step, top, step + 0.05, LEGEND_BAR))
    boxes.append(Box(0, top, width, LEGEND_BAR, stroke=(150, 150, 150), width=0.5))
    base = top + LEGEND_BAR + FONT + 1
    labels = [Label(0, base, label(lo), "start"), Label(width, base, label(hi), "end")]
    if h.scale == "diverging":
        labels.insert(1, Label(width / 2, base, "0"))
    runs = tuple((rgb, tuple(rects)) for rgb, rects in patches.items())
    return Layout(width, base + 2, tuple(boxes), tuple(labels), patches=runs)


def ticks(top: float) -> list[float]:
    step = {1.0: 0.25}.get(top) or nice_step(top / 4)
    return [k * step for k in range(int(round(top / step)) + 1)]


def nice_step(raw: float) -> float:
    power = 10 ** np.floor(np.log10(raw))
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


def chart_top(values) -> float:
    """The y axis end: 1 for probabilities, else the next multiple of a nice step."""
    high = max(values, default=1.0)
    if high <= 1.0:
        return 1.0
    step = nice_step(high / 4)
    return float(np.ceil(high / step) * step)


@layout.register
def _(c: Chart) -> Layout:
    left, top, right = CHART_LEFT, CHART_TOP, CHART_W - 10
    bottom = top + CHART_H
    n = len(c.xticks)
    pad = 14.0

    def x(k: int) -> float:
        return (left + right) / 2 if n == 1 else left + pad + (right - left - 2 * pad) * k / (n - 1)

    def y(v: float) -> float:
        return bottom - CHART_H * v / c.ymax

    lines, labels, dots = [], [], []
    for t in ticks(c.ymax):
        lines.append(Line(((left, y(t)), (right, y(t))), (220, 220, 220), 0.5))
        labels.append(Label(left - 3, y(t) + FONT / 3, f"{t:g}", "end"))
    lines.append(Line(((left, top), (left, bottom), (right, bottom)), (90, 90, 90), 0.8))
    for k, tick in enumerate(c.xticks):
        labels.append(Label(x(k), bottom + FONT + 3, tick))
    legend = bottom + 2 * FONT + 10
    for s, (name, ys) in enumerate(c.series):
        rgb = SERIES_COLOURS[s % len(SERIES_COLOURS)]
        dash = DASHES[(s // len(SERIES_COLOURS)) % len(DASHES)]
        points = tuple((x(k), y(v)) for k, v in enumerate(ys))
        lines.append(Line(points, rgb, 1.4, dash))
        dots += [(px, py, rgb) for px, py in points]
        row = legend + s * (FONT + 5)
        lines.append(Line(((left, row - FONT / 3), (left + 16, row - FONT / 3)), rgb, 1.4, dash))
        short = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "\N{HORIZONTAL ELLIPSIS}"
        labels.append(Label(left + 20, row, short, "start"))
    height = legend + len(c.series) * (FONT + 5)
    return Layout(CHART_W, height, (), tuple(labels), tuple(lines), tuple(dots))
