"""The package's imports point one way: read with ast over symcnn/, imports inside functions included.

Tiers, lowest first; a module may import its own tier and the tiers below it, never above:

    leaves     errors, escape, progress, display, version, system, scenario.checks
    layers     symcnn/layers/: one module per layer kind and their registry
    scenario   model, sources, digits (scenario.model parses each layer through symcnn.layers)
    engine     numeric, exact, algebra, notation
    verify     SymPy against NumPy, the claims
    document   model, numbers, builder, pictures, layout
    rendering  templates, printers, one module per format
    exercises  batch, variants, questions, sheets, grading
    top        jupyter, testing, doctor, cli, __init__, __main__

Narrower than its tier: a layer module sees only the errors and the scenario checks; the document model
sees only the engine's algebra (the vocabulary of quantities), not an engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symcnn"

TIERS = {
    "leaves": (
        "symcnn.errors",
        "symcnn.escape",
        "symcnn.progress",
        "symcnn.display",
        "symcnn.version",
        "symcnn.system",
        "symcnn.scenario.checks",
    ),
    "layers": ("symcnn.layers",),
    "scenario": ("symcnn.scenario",),
    "engine": ("symcnn.engine",),
    "verify": ("symcnn.verify",),
    "document": ("symcnn.document",),
    "rendering": ("symcnn.rendering",),
    "exercises": ("symcnn.exercises",),
    "top": ("symcnn.jupyter", "symcnn.testing", "symcnn.doctor", "symcnn.cli", "symcnn.__main__", "symcnn"),
}
ORDER = list(TIERS)
LEAVES = TIERS["leaves"]
NARROWER = {  # module (or package) -> the only modules (or packages) it may import
    "symcnn.layers": ("symcnn.errors", "symcnn.scenario.checks", "symcnn.layers"),
    "symcnn.document.model": (*LEAVES, "symcnn.engine.algebra"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known) -> set[str]:
    """The symcnn modules ``name`` imports anywhere in its file (in functions and under TYPE_CHECKING too):
    ``from .x import y`` counts as importing module ``x.y`` where that is a module, else ``x``; and as
    importing the package ``x`` (its __init__) too, so ``from .. import escape`` in a subpackage reaches up
    to ``symcnn/__init__`` (write ``import symcnn.escape as escape`` or ``from ..escape import ...``), as
    /work/shared/tools/layout_report.py counts it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def tier(name: str) -> str:
    """The tier of the longest prefix that names ``name`` (scenario.checks is a leaf, scenario.model not);
    "symcnn" names the package's __init__ alone, so that a new top-level module must be placed here."""
    places = [
        (len(p), t)
        for t, prefixes in TIERS.items()
        for p in prefixes
        if name == p or (p != "symcnn" and within(name, p))
    ]
    best = max(places, default=None)
    assert best is not None, f"{name} is in no tier: place it in TIERS in {__file__}"
    return best[1]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for name, targets in sorted(edges.items()):
        narrow = next((allowed for m, allowed in NARROWER.items() if within(name, m)), None)
        for target in sorted(targets):
            if narrow is not None and not any(within(target, a) for a in narrow):
                out.append(f"{name} -> {target}: {name} may import only {', '.join(narrow)}")
            elif ORDER.index(tier(target)) > ORDER.index(tier(name)):
                out.append(f"{name} ({tier(name)}) -> {target} ({tier(target)}): an import up the tiers")
    return out


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_imports_point_down_the_tiers():
    assert violations(graph()) == []


def test_every_module_has_a_tier():
    for name in modules():
        tier(name)
    with pytest.raises(AssertionError, match="symcnn.newcomer is in no tier"):
        tier("symcnn.newcomer")


# the checker itself: each rule can fail


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "edge, complaint",
    [
        (("symcnn.engine.exact", "symcnn.jupyter"), "up the tiers"),
        (("symcnn.rendering.formats", "symcnn"), "up the tiers"),
        (("symcnn.document.pictures", "symcnn.rendering.latex"), "up the tiers"),
        (("symcnn.document.model", "symcnn.engine.exact"), "may import only"),
        (("symcnn.layers.conv", "symcnn.engine.numeric"), "may import only"),
        (("symcnn.layers.conv", "symcnn.escape"), "may import only"),
        (("symcnn.scenario.checks", "symcnn.scenario.model"), "up the tiers"),
        (("symcnn.rendering.drawing", "symcnn"), "up the tiers"),
    ],
)
def test_a_wrong_import_is_named(edge, complaint):
    source, target = edge
    (problem,) = violations({source: {target}})
    assert problem.startswith(f"{source} ") and complaint in problem


@pytest.mark.parametrize(
    "edge",
    [
        ("symcnn.scenario.model", "symcnn.layers.conv"),
        ("symcnn.layers.conv", "symcnn.scenario.checks"),
        ("symcnn.layers", "symcnn.layers.pool"),
        ("symcnn.document.model", "symcnn.engine.algebra"),
        ("symcnn.document.builder", "symcnn.engine.exact"),
        ("symcnn.rendering.html", "symcnn.rendering.templates"),
        ("symcnn", "symcnn.jupyter"),
    ],
)
def test_a_right_import_passes(edge):
    source, target = edge
    assert violations({source: {target}}) == []


def test_imports_inside_functions_count(tmp_path, monkeypatch):
    package = tmp_path / "symcnn"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "jupyter.py").write_text("")
    (package / "engine" / "__init__.py").write_text("")
    (package / "engine" / "exact.py").write_text("def shown():\n    from ..jupyter import show\n")
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert graph()["symcnn.engine.exact"] == {"symcnn.jupyter"}


def test_from_the_parent_package_counts_the_package(tmp_path, monkeypatch):
    package = tmp_path / "symcnn"
    (package / "rendering").mkdir(parents=True)
    for name in ("__init__.py", "escape.py", "rendering/__init__.py"):
        (package / name).write_text("")
    (package / "rendering" / "drawing.py").write_text("from .. import escape\n")
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert graph()["symcnn.rendering.drawing"] == {"symcnn", "symcnn.escape"}
