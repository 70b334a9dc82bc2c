"""SymPy against NumPy on random scenarios over every option (channels, stride, padding, every
activation and pooling, all update modes, filter updates), and every displayed equation re-evaluated."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings

import symcnn
import symcnn.verify
from symcnn.document.builder import build_document
from symcnn.document.model import Settings
from symcnn.rendering.formats import render_text

try:
    from .reference import reference_run
    from .test_properties import rounding_ambiguous, scenarios
except ImportError:  # run as a top-level module
    from tests.reference import reference_run
    from tests.test_properties import rounding_ambiguous, scenarios


def numbers(data):
    if isinstance(data, dict):
        for value in data.values():
            yield from numbers(value)
    elif isinstance(data, list):
        for value in data:
            yield from numbers(value)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios(max_hw=5, max_filters=2, max_classes=3, max_inputs=2, max_iterations=2))
def test_sympy_and_numpy_agree_and_every_shown_equation_holds(scenario: dict) -> None:
    assume(not rounding_ambiguous(scenario, reference_run(scenario, conv_magnitudes=True)))
    # products of numbers below ~1e-162 underflow to 0 in float64 (exact arithmetic keeps them),
    # which moves a ReLU kink: a limit of floating point, not of either engine
    assume(all(n == 0 or abs(n) > 1e-100 for n in numbers(scenario)))
    # float64 cancellation: a sum that is exactly 0 (or 1e-11) comes out of NumPy with an error of
    # about eps times the size of its terms, 1e-12 once values reach tens (two passes at learning rate
    # 1); the absolute tolerance scales with the run's largest value, the relative one stays 1e-9
    scale = max((abs(n) for n in numbers(symcnn.run(scenario).to_dict())), default=1.0)
    atol = 1e-12 * max(1.0, scale) ** 2
    # thorough: every cell's own SymPy expression (general form, chain rule) must give the layer
    # rule's bulk value, exactly where rational
    report = symcnn.verify.check(symcnn.load(scenario), atol=atol, thorough=True)
    assert report.ok, report.table()
    assert report.compared > 0 and not report.missing
    # building the document re-evaluates every substituted form shown and raises if one differs
    for detail in ("summary", "full"):
        document = build_document(report, Settings(detail=detail))
        assert "Verification" in render_text(document, "markdown")[f"{document.name}.md"]
