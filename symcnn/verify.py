"""Compare every symbolic value with its NumPy twin, and audit the scenario's claims."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .display import Displayable
from .errors import ScenarioError, VerificationError
from .scenario.model import Scenario, parse_path

TEXT_KEYS = {"iteration", "sample", "label", "after", "scenario", "classes", "kind", "name", "step"}


@dataclass(frozen=True)
class GroupResult:
    name: str  # e.g. steps.conv
    count: int
    max_diff: float
    mismatches: tuple[tuple[str, float, float], ...]  # (path, symbolic, numeric)


@dataclass(frozen=True)
class ClaimResult:
    at: str
    printed: float
    ours: float
    tol: float
    note: str

    @property
    def diff(self) -> float:
        return abs(self.ours - self.printed)

    @property
    def ok(self) -> bool:
        return self.diff <= self.tol


@dataclass(frozen=True)
class Report(Displayable):  # Jupyter shows the table (symcnn.jupyter.show)
    scenario: Scenario
    groups: tuple[GroupResult, ...]
    claims: tuple[ClaimResult, ...]
    missing: tuple[str, ...]  # values only one side has
    rtol: float
    atol: float
    derivation: object = None  # the Derivation compared, for documents (a StackDerivation for stacks)
    stack: object = None  # the StackDerivation: per-layer values and dL/dx of every scenario
    numeric: dict | None = None  # NumPy's values, as `symcnn values` prints them

    @property
    def compared(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def derivation_values(self) -> int:
        """Values compared under the legacy keys (a legacy document's equations; not the per-layer copies)."""
        return sum(g.count for g in self.groups if ".layers." not in g.name and not g.name.endswith("grad_input"))

    @property
    def max_diff(self) -> float:
        return max((g.max_diff for g in self.groups), default=0.0)

    @property
    def mismatches(self) -> list[tuple[str, float, float]]:
        return [m for g in self.groups for m in g.mismatches]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.missing and all(c.ok for c in self.claims)

    def table(self) -> str:
        sc = self.scenario
        lines = [f"symcnn check {sc.name}: {sc.title}", ""]
        lines.append(f"{'quantity':<28} {'values':>7}  {'max |sympy - numpy|':>20}  status")
        for g in self.groups:
            status = "ok" if not g.mismatches else f"{len(g.mismatches)} differ"
            lines.append(f"{g.name:<28} {g.count:>7}  {g.max_diff:>20.3g}  {status}")
        verdict = "all agree" if not self.mismatches else f"{len(self.mismatches)} differ"
        lines.append(
            f"{'total':<28} {self.compared:>7}  {self.max_diff:>20.3g}  "
            f"{verdict} (rtol {self.rtol:g}, atol {self.atol:g})"
        )
        for path, symbolic, numeric in self.mismatches[:10]:
            lines.append(f"  differs: {path}: sympy {symbolic!r} != numpy {numeric!r}")
        for path in self.missing[:10]:
            lines.append(f"  not derived: {path}")
        if self.claims:
            lines += ["", f"{'claim':<28} {'printed':>10} {'ours':>12} {'diff':>10} {'tol':>8}  status"]
            for c in self.claims:
                mark = "✓" if c.ok else "✗"
                lines.append(
                    f"{c.at:<28} {c.printed:>10.6g} {c.ours:>12.6g} {c.diff:>10.2g} {c.tol:>8.2g}  {mark} {c.note}"
                )
            held = sum(c.ok for c in self.claims)
            lines.append(f"{held} of {len(self.claims)} claims hold")
        return "\n".join(lines)


def numeric_leaves(data, path: str = ""):
    """(path, number) for every number of a `symcnn values` dict."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in TEXT_KEYS:
                yield from numeric_leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from numeric_leaves(value, f"{path}[{i}]")
    else:
        yield path, data


def lookup(data, path: str, where: str = "path"):
    node = data
    for part in parse_path(path, where):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise ScenarioError(where, f"no value at '{path}'") from None
    return node


GROUP = re.compile(r"\[\d+\]")


def group_name(path: str) -> str:
    return GROUP.sub("", path)


def audit_claims(sc: Scenario, values: dict) -> tuple[ClaimResult, ...]:
    results = []
    for i, claim in enumerate(sc.claims):
        ours = lookup(values, claim.at, f"claims[{i}].at")
        if not isinstance(ours, (int, float)):
            raise ScenarioError(f"claims[{i}].at", f"'{claim.at}' is not a single number")
        results.append(ClaimResult(claim.at, claim.value, float(ours), claim.tol, claim.note))
    return tuple(results)


def check(sc: Scenario, rtol: float = 1e-9, atol: float = 1e-12, thorough: bool = False) -> Report:
    """Derive with SymPy, compute with NumPy, compare every value, audit claims. ``thorough`` also builds
    every cell's own SymPy expression and confirms that it evaluates to the layer rule's value."""
    from .engine.exact import derive
    from .engine.legacy_layers import LegacyLayers
    from .engine.numeric import run
    from .engine.stack_cells import derive_stack

    numeric = run(sc).to_dict()
    claims = audit_claims(sc, numeric)  # bad claim paths fail before the slow part
    derivation = None if sc.is_stack else derive(sc)
    # the per-layer keys and dL/dx: a stack's own derivation; a legacy scenario's groups under their new paths
    stack = derive_stack(sc) if sc.is_stack else LegacyLayers(derivation)
    if thorough:  # every cell's own expression; the layer walker re-derives a legacy scenario cell by cell too
        every = (derivation.quantities(), derive_stack(sc).quantities()) if derivation else (stack.quantities(),)
        for quantities in every:
            for _ in quantities:
                pass  # each one raises VerificationError unless it agrees
    counts: dict[str, int] = defaultdict(int)
    diffs: dict[str, float] = defaultdict(float)
    bad: dict[str, list] = defaultdict(list)
    missing = []
    derived = set()

    def compare(path: str, ours: np.ndarray, name_of) -> None:
        name = group_name(path)
        theirs = np.asarray(lookup(numeric, path), dtype=np.float64).reshape(ours.shape)
        counts[name] += ours.size
        difference = np.abs(ours - theirs)
        diffs[name] = max(diffs[name], float(difference.max(initial=0.0)))
        for index in np.argwhere(~(difference <= atol + rtol * np.abs(ours))):
            index = tuple(int(i) for i in index)
            bad[name].append((name_of(index), float(ours[index]), float(theirs[index])))

    for record in derivation.records() if derivation else ():
        node = lookup(numeric, record.path)
        order = [k for k in node if k in record.groups] + [k for k in record.groups if k not in node]
        for key in order:  # the JSON's order
            group = record.groups[key]
            derived.add(f"{record.path}.{key}")
            ours = np.vectorize(float, otypes=[float])(group.values)
            if key not in node:
                missing += [
                    f"{derivation.deriver.path(record, key, i)} (no NumPy value)" for i in np.ndindex(ours.shape)
                ]
                continue
            compare(f"{record.path}.{key}", ours, lambda i, r=record, k=key: derivation.deriver.path(r, k, i))
    for path, group in stack.groups():  # none of them a legacy group's path
        derived.add(path.split(".layers[")[0] + ".layers" if ".layers[" in path else path)
        ours = np.vectorize(float, otypes=[float])(group.values)
        compare(path, ours, lambda i, p=path: p + "".join(f"[{n}]" for n in i))
    for record_path, node in records_of(numeric):
        for key, value in node.items():
            if key not in TEXT_KEYS and f"{record_path}.{key}" not in derived:
                missing += [path for path, _ in numeric_leaves(value, f"{record_path}.{key}")]
    groups = tuple(GroupResult(n, counts[n], diffs[n], tuple(bad[n])) for n in counts)
    exact_at = derivation.value_at if derivation else dict(stack.numbers()).__getitem__
    claims = tuple(ClaimResult(c.at, c.printed, float(exact_at(c.at)), c.tol, c.note) for c in claims)
    return Report(sc, groups, claims, tuple(missing), rtol, atol, derivation or stack, stack, numeric)


def checked(sc: Scenario, where: str = "") -> Report:
    """``check(sc)`` where SymPy and NumPy must agree on every value (as before writing a document): else a
    VerificationError naming the first value that differs, after ``where`` (e.g. the scenario's name)."""
    report = check(sc)
    if report.mismatches or report.missing:
        first = report.mismatches[0][0] if report.mismatches else report.missing[0]
        raise VerificationError(
            f"{where}{first}: SymPy and NumPy disagree (and {len(report.mismatches) + len(report.missing) - 1} more); "
            "`symcnn check` shows the table. A value exactly at a ReLU kink or a max-pool tie in exact "
            "arithmetic but not in floating point does this."
        )
    return report


def records_of(numeric: dict):
    """(path, dict) of every step, update and final record of a `symcnn values` dict."""
    for part in ("steps", "updates", "final"):
        for i, node in enumerate(numeric.get(part, [])):
            yield f"{part}[{i}]", node
