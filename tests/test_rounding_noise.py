"""Decimal inputs whose exact value sits on a ReLU kink or a max-pool tie behave as exact maths says."""

from __future__ import annotations

import numpy as np

import symcnn

KINK = {
    "name": "kink",
    "classes": ["a", "b"],
    "inputs": [
        {"name": "x", "label": "a", "pixels": [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [0.6, 0.1, 0.3]]},
        {"name": "t", "label": "b", "pixels": [[0.6, 0.7, 0.5], [0.7, 0.7, 0.8], [0.0, 0.0, 0.0]]},
    ],
    "conv": {"filters": [{"name": "F", "weights": [[1, 1], [-1, 0]]}, {"name": "G", "weights": [[1, 1], [1, 1]]}]},
    "pool": {"kind": "max", "size": [1, 2]},
    "dense": {"weights": [[0.5, -0.5, 0.25, 0.1], [-0.5, 0.5, -0.25, 0.2]], "biases": [0, 0]},
    "training": {"learning_rate": 0.5, "update": "batch_sum", "update_filters": True},
}


def test_float_noise_at_a_relu_kink_is_an_exact_zero():
    assert 0.1 + 0.2 - 0.3 != 0  # the float sum misses the kink ...
    step = symcnn.run(KINK).steps[0]
    assert step.conv[0, 0, 0] == 0.0  # ... the engine does not
    assert step.grad_conv[0, 0, 0] == 0.0  # ReLU'(0) = 0


def test_float_noise_in_a_max_pool_tie_picks_the_first_cell():
    step = symcnn.run(KINK).steps[1]
    # G's top row sums 0.6 + 0.7 + 0.7 + 0.7 and 0.7 + 0.5 + 0.7 + 0.8: equal exactly, not in floats
    assert step.activated[1, 0, 0] < step.activated[1, 0, 1]
    assert step.winners[1, 0, 0] == 0  # the first maximum wins, as the exact values tie
    assert step.grad_activated[1, 0, 1] == 0.0 and step.grad_activated[1, 0, 0] != 0.0


def test_symbolic_and_numeric_agree_on_such_a_scenario():
    report = symcnn.check(KINK)
    assert report.ok, report.table()


def test_genuinely_small_values_are_kept():
    data = {**KINK, "inputs": [{"name": "x", "label": "a", "pixels": [[1e-3, 0, 0], [0, 0, 0], [0, 0, 0]]}]}
    step = symcnn.run(data).steps[0]
    np.testing.assert_allclose(step.conv[0, 0, 0], 1e-3, rtol=1e-15)
