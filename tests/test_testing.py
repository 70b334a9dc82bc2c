"""symcnn.testing.assert_matches and symcnn.check: both must be able to fail."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import symcnn
from symcnn import cli
from symcnn.engine import numeric
from symcnn.testing import assert_matches


def test_own_numbers_that_agree_pass():
    values = symcnn.run("four-images").to_dict()
    assert_matches(values, "four-images")
    assert_matches({"steps[0].probs": [0.786, 0.214]}, "four-images", atol=5e-4)
    assert_matches({"final": symcnn.run("zebra-cat").to_dict()["final"]}, "zebra-cat")


def test_first_difference_is_named_with_its_path():
    values = symcnn.run("four-images").to_dict()
    values["steps"][2]["grad_dense_weights"][1][4] = 0.1
    with pytest.raises(AssertionError, match=r"^steps\[2\]\.grad_dense_weights\[1\]\[4\]: 0\.1 != "):
        assert_matches(values, "four-images")


@pytest.mark.parametrize(
    "values,message",
    [
        ({"steps[0].probs": [0.786]}, r"steps\[0\]\.probs: shape \(1,\) != \(2,\)"),
        ({"steps[0].nope": 1.0}, r"steps\[0\]\.nope: symcnn has no such value"),
        ({"steps[0].probs": [0.786, 0.214]}, r"steps\[0\]\.probs\[0\]: 0\.786 != 0\.78583"),
        ({"steps": [{}]}, r"steps: expected a list of 4 records"),
        ({"steps[1].sample": "img9"}, r"steps\[1\]\.sample: 'img9' != 'img2'"),
        ({"steps[0].loss": float("nan")}, r"steps\[0\]\.loss: nan != "),
    ],
)
def test_mismatches_of_every_kind_fail(values, message):
    with pytest.raises(AssertionError, match=message):
        assert_matches(values, "four-images")


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    probs = torch.tensor(symcnn.run("four-images").steps[0].probs, dtype=torch.float64)
    assert_matches({"steps[0].probs": probs}, "four-images")
    with pytest.raises(AssertionError):
        assert_matches({"steps[0].probs": probs + 1e-3}, "four-images")


def test_check_catches_a_wrong_numeric_value(monkeypatch, capsys):
    original = numeric.run

    def wrong(sc):
        trace = original(sc)
        trace.steps[1].grad_dense_weights[0, 3] += 1e-6
        return trace

    monkeypatch.setattr(numeric, "run", wrong)
    report = symcnn.check("four-images")
    assert not report.ok
    # the legacy key and the dense layer's entry are the same numbers: both are reported
    assert [m[0] for m in report.mismatches] == [
        "steps[1].grad_dense_weights[0][3]",
        "steps[1].layers[2].grad_weights[0][3]",
    ]
    assert cli.main(["check", "four-images"]) == 1
    assert "steps[1].grad_dense_weights[0][3]" in capsys.readouterr().out


def test_check_reports_a_failed_claim(four_images, tmp_path):
    four_images["claims"] = [{"at": "steps[0].probs[0]", "value": 0.8, "tol": 0.001}]
    report = symcnn.check(four_images)
    assert not report.ok and not report.mismatches
    claim = report.claims[0]
    assert not claim.ok and np.isclose(claim.diff, 0.8 - 0.7858349830425586)


# ---------------------------------------------------------------- the README's conv_backward example


def readme_conv_backward_example() -> str:
    text = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = text.index("### Check your own `conv_backward`")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_readme_conv_backward_example_passes_with_a_correct_backward():
    exec(compile(readme_conv_backward_example(), "README.md", "exec"), {})


def test_readme_conv_backward_example_catches_a_wrongly_flipped_dx():
    code = readme_conv_backward_example()
    wrong = code.replace("dxp[window] += dout[k, i, j] * w[k]", "dxp[window] += dout[k, i, j] * w[k][:, ::-1, ::-1]")
    assert wrong != code
    with pytest.raises(AssertionError, match=r"steps\[0\]\.layers\[2\]\.grad_output\[0\]\[1\]\[0\]: 0\.0311"):
        exec(compile(wrong, "README.md", "exec"), {})


def test_readme_conv_backward_example_catches_a_wrong_dw():
    code = readme_conv_backward_example().replace("dw[k] += dout[k, i, j] * xp[window]", "dw[k] += xp[window]")
    with pytest.raises(AssertionError, match=r"steps\[0\]\.layers\[3\]\.grad_weights"):
        exec(compile(code, "README.md", "exec"), {})
