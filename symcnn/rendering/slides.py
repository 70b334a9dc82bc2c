"""A Beamer deck from a document: sections cut into frames that fit the slide, each block given the
overlay it appears on, a "(continued)" title where a section needs several frames, and a teacher's note
per frame (``notes``). The template (templates/beamer/slides.tex.j2) only lays the frames out.

Heights are estimated in slide lines of SLIDE_LINE_PT; a frame body holds ``Page.lines`` of them. The
compile tests check the estimates: no frame of a built-in overflows (no Overfull \\vbox).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import drawing
from .compact import for_slides
from .notes import frame_note

ASPECTS = ("16:9", "4:3")
SLIDE_LINE_PT = 18.0  # one slide line: a line of 11 pt text with its spacing, or a displayed row
PANEL_GAP_PT, PANEL_TITLE_PT, CAPTION_CHAR_PT = 13.0, 14.0, 5.4
TABLE_ROW_LINES = 0.8  # a table row at the normal size, in slide lines
SLIDE_LINE_CHARS = 150  # characters of LaTeX source that fill about one line of a slide
NUMBERED_SCALE = 1.06  # pictures with numbers in their cells: 7 units become 7.4 pt
SMALLER = (NUMBERED_SCALE, 1.0, 0.9, 0.8, 0.7)  # pictures without (charts, large maps): the largest that fits
REVEALED = ("equation", "derivative")  # blocks uncovered step by step


@dataclass(frozen=True)
class Page:
    """The body of a frame: its width in pt and its height in slide lines."""

    aspect: str
    width: float
    lines: float


PAGES = {"16:9": Page("16:9", 398.0, 11.0), "4:3": Page("4:3", 307.0, 12.0)}


@dataclass(frozen=True)
class Scaled:
    """A figure (or a run of its panels) drawn at ``scale`` of its size."""

    figure: object
    scale: float
    kind: str = "figure"

    def __getattr__(self, name):  # caption, panels, key: the figure's
        return getattr(self.figure, name)


@dataclass(frozen=True)
class Frame:
    title: str
    subtitle: str
    items: tuple  # (block, overlay it appears on): 1 from the start
    note: str
    overlays: int  # how many overlays the frame has


@dataclass(frozen=True)
class Part:
    """A level-1 section of the document: a \\section with an outline frame, then its frames."""

    title: str
    frames: tuple
    outline: bool


# ---------------------------------------------------------------- heights


def text_lines(text: str, page: Page) -> float:
    per_line = page.width / CAPTION_CHAR_PT
    return 0.3 + 0.8 * -(-len(text) // int(per_line))


def row_height(row, page: Page) -> float:
    """A table row in slide lines: text columns wrap when the row's text is wider than the frame."""
    chars = sum(len(str(cell.value)) if not cell.math else 6 for cell in row)
    width = chars * CAPTION_CHAR_PT + 14 * len(row)
    return TABLE_ROW_LINES * max(1, -(-int(width) // int(0.8 * page.width)))


def caption_lines(figure, page: Page) -> float:
    """A figure's caption and the space around the figure."""
    return 0.4 + text_lines(figure.caption, page)


def block_lines(block, page: Page, printer=None) -> float:
    """A rough height of a block in slide lines."""
    if block.kind == "matrix":
        return 1.0 + 0.8 * block.values.shape[0] + (0.8 if block.columns or block.shape else 0.0)
    if block.kind == "table":
        return 1.5 + sum(row_height(row, page) for row in block.rows)
    if block.kind == "figure":
        scale = getattr(block, "scale", NUMBERED_SCALE)
        return caption_lines(block, page) + sum(row_lines(r, scale) for r in figure_rows(block.panels, page, scale))
    if block.kind == "text":
        return text_lines(block.text, page)
    if block.kind == "heading":
        return 1.3
    if getattr(block, "one_line", False):
        return 2.0 if printer is not None and r"\frac" in printer(block.general or block.lhs) else 1.5
    if block.kind in REVEALED:
        if printer is None:
            return 3.2
        parts = [getattr(block, name, None) for name in ("general", "substituted", "raw", "simplified")]
        wraps = sum(len(printer(p)) // SLIDE_LINE_CHARS for p in parts if p is not None)
        return 3.2 + 1.1 * wraps
    return 1.5


def figure_rows(panels, page: Page, scale: float = 1.0) -> list[list]:
    """Panels as TeX sets them side by side: as many per row as fit the frame's width."""
    rows, width = [], page.width
    for panel in panels:
        w = drawing.layout(panel).width * scale
        if rows and width + PANEL_GAP_PT + w <= page.width:
            rows[-1].append(panel)
            width += PANEL_GAP_PT + w
        else:
            rows.append([panel])
            width = w
    return rows


def row_lines(row, scale: float = 1.0) -> float:
    return (max(drawing.layout(p).height for p in row) * scale + PANEL_TITLE_PT) / SLIDE_LINE_PT


# ---------------------------------------------------------------- cutting into frames


def numbered(panel) -> bool:
    return getattr(panel, "texts", None) is not None


def readable(panel, caption: float, page: Page):
    """A heatmap whose numbers cannot be 7 pt on a frame (a map too tall at NUMBERED_SCALE) loses them:
    it is drawn in colours only, smaller, as the larger maps are everywhere."""
    if numbered(panel) and caption + row_lines([panel], NUMBERED_SCALE) > page.lines:
        return dataclasses.replace(panel, texts=None)
    return panel


def panel_rows(panels, page: Page) -> list[list]:
    """Rows of panels as wide as fit at NUMBERED_SCALE; a row never mixes panels with numbers and
    colour-only ones (those may be drawn smaller)."""
    rows, width = [], 0.0
    for panel in panels:
        w = drawing.layout(panel).width * NUMBERED_SCALE
        if rows and numbered(rows[-1][-1]) == numbered(panel) and width + PANEL_GAP_PT + w <= page.width:
            rows[-1].append(panel)
            width += PANEL_GAP_PT + w
        else:
            rows.append([panel])
            width = w
    return rows


def row_scale(row, caption: float, page: Page) -> float:
    if any(numbered(p) for p in row):
        return NUMBERED_SCALE
    return next((k for k in SMALLER if caption + row_lines(row, k) <= page.lines), SMALLER[-1])


def figure_chunks(figure, page: Page) -> list:
    """A figure as runs of panel rows that each fit a frame (each repeating the caption), each run drawn
    at one scale: NUMBERED_SCALE where cells carry numbers (7.4 pt), else the largest that fits."""
    caption = caption_lines(figure, page)
    panels = [readable(p, caption, page) for p in figure.panels]
    chunks: list[tuple[float, list]] = []
    used = caption
    for row in panel_rows(panels, page):
        scale = row_scale(row, caption, page)
        lines = row_lines(row, scale)
        if chunks and chunks[-1][0] == scale and used + lines <= page.lines:
            chunks[-1][1].extend(row)
            used += lines
        else:
            chunks.append((scale, list(row)))
            used = caption + lines
    return [Scaled(dataclasses.replace(figure, panels=tuple(run)), scale) for scale, run in chunks]


def split_blocks(blocks, page: Page) -> list:
    """Tables too long for one frame, cut into runs of rows that each repeat the header; figures cut
    into chunks that fit (``figure_chunks``)."""
    out = []
    for block in blocks:
        if block.kind == "table" and block_lines(block, page) > page.lines:
            runs, used = [[]], 1.5
            for row in block.rows:
                if runs[-1] and used + row_height(row, page) > page.lines:
                    runs.append([])
                    used = 1.5
                runs[-1].append(row)
                used += row_height(row, page)
            out += [dataclasses.replace(block, rows=tuple(run)) for run in runs]
        elif block.kind == "figure":
            out += figure_chunks(block, page)
        else:
            out.append(block)
    return out


def frames(blocks, page: Page, printer=None) -> list[list]:
    """Blocks packed into frames of at most ``page.lines``, never splitting a block; a text that ends a
    full frame (a caption such as "Image x2 (label bar):") moves on with the block it introduces.
    ``printer`` (expression -> LaTeX) measures equations."""
    out, current, used = [], [], 0.0
    for block in split_blocks(blocks, page):
        lines = block_lines(block, page, printer)
        if current and used + lines > page.lines:
            carry = []  # a caption or a heading moves on with what it introduces
            while (
                current
                and current[-1].kind in ("text", "heading")
                and (len(current) > 1 or current[-1].kind == "heading")
            ):
                carry.insert(0, current.pop())
            if current:
                out.append(current)
            current, used = carry, sum(block_lines(b, page, printer) for b in carry)
        current.append(block)
        used += lines
    if current:
        out.append(current)
    return out


# ---------------------------------------------------------------- overlays


def stages(block) -> int:
    """Overlays a block takes: general form, substituted form, value (those it has); a derivative's raw
    form, then its simplified and closed forms."""
    if block.kind == "equation":
        return 1 + (block.general is not None) + (block.substituted is not None)
    if block.kind == "derivative":
        return 2
    return 1


def reveal(blocks) -> tuple[list[tuple], int]:
    """(block, first overlay) for each block, and the number of overlays. A run of derivations uncovers
    step by step in parallel (every general form, then every substituted form, then every value); what
    follows a run (its matrix, its picture, the next text) comes with the run's last step, and the next
    run starts there."""
    items, now, last, in_run = [], 1, 1, False
    for block in blocks:
        if block.kind in REVEALED:
            if not in_run:
                in_run, last = True, now
            items.append((block, now))
            last = max(last, now + stages(block) - 1)
        else:
            if in_run:
                in_run, now = False, last
            items.append((block, now))
    return items, max(last, now)


# ---------------------------------------------------------------- the deck


@dataclass(frozen=True)
class Heading:
    """Where a section starts inside a part's run of frames: the frame title, or a line in the frame."""

    section: object
    kind: str = "heading"

    @property
    def text(self) -> str:
        return self.section.title


TITLE_CHARS = 48  # a frame title naming several sections stops before this length


def part_sections(doc) -> list[list]:
    """The sections of each part: a level-1 section and the level-2 ones after it; the parts after the
    story (audit, verification) make one part."""
    parts: list[list] = []
    for section in doc.sections:
        after_story = section.key in NO_OUTLINE and parts and parts[-1][0].key in NO_OUTLINE
        if parts and (section.level != 1 or after_story):
            parts[-1].append(section)
        else:
            parts.append([section])
    return parts


def frame_title(opened: list, continued: bool) -> str:
    """The sections a frame shows, joined; when too long, the one carried over from the frame before
    goes first (it was named there), then the last ones."""
    names = [opened[0].title + (" (continued)" if continued else "")] + [s.title for s in opened[1:]]
    if continued and len(names) > 1 and len(" \N{MIDDLE DOT} ".join(names)) > TITLE_CHARS:
        names = names[1:]
    while len(names) > 1 and len(" \N{MIDDLE DOT} ".join(names)) > TITLE_CHARS:
        names.pop()
    return " \N{MIDDLE DOT} ".join(names)


def part_frames(sections, doc, page: Page, printer) -> tuple:
    """A part's sections packed into frames: a short section shares a frame with the next one."""
    blocks = []
    for section in sections:
        body = for_slides(section.blocks, doc.settings.detail, printer, page.width)
        if body:
            blocks += [Heading(section), *body]
    out, current = [], None
    for group in frames(blocks, page, printer):
        heads = [b.section for b in group if b.kind == "heading"]
        starts = group[0].kind == "heading"
        opened = heads if starts else [current, *heads]
        if starts:
            group = group[1:]  # its heading is the frame title
        items, overlays = reveal(group)
        notes = [frame_note(sec, group, doc, 0 if sec in heads else 1) for sec in opened[:2]]
        out.append(Frame(frame_title(opened, not starts), opened[0].context, tuple(items), " ".join(notes), overlays))
        current = heads[-1] if heads else current
    return tuple(out)


def deck(doc, page: Page, printer=None) -> list[Part]:
    """The document's sections as parts (one per level-1 section, a \\section each) of frames."""
    return [
        Part(sections[0].title, part_frames(sections, doc, page, printer), outline=sections[0].key not in NO_OUTLINE)
        for sections in part_sections(doc)
    ]


NO_OUTLINE = ("audit", "verification")  # parts after the story: a \section, no outline frame
OUTLINE_ROWS = 7  # an outline frame lists at most this many parts, around the current one


def outline(parts: list[Part], current: int) -> list[tuple[str, bool]]:
    """(title, is current) of the parts an outline frame lists: all, or a window around ``current``."""
    start = max(0, min(current - OUTLINE_ROWS // 2, len(parts) - OUTLINE_ROWS))
    return [(p.title, i == current) for i, p in enumerate(parts)][start : start + OUTLINE_ROWS]


def template_context(doc, printer=None) -> dict:
    """What templates/beamer/slides.tex.j2 needs besides the document."""
    page = PAGES[doc.settings.aspect]
    parts = deck(doc, page, printer)
    return {
        "aspect": page.aspect.replace(":", ""),
        "parts": parts,
        "outline": lambda i: outline(parts, i),
        "title_note": doc.description or doc.title,
        "outline_note": lambda part: f"Where we are in the story: next, {part.title}.",
    }
