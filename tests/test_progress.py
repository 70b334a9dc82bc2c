"""The progress bar shows on a terminal only: never in pipes, files or CI."""

from __future__ import annotations

import io
import subprocess
import sys

from symcnn import progress as progress_module


def test_quiet_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress_module.progress(3, "deriving")
    bar.update()
    bar.close()
    assert sys.stderr.getvalue() == ""


def test_quiet_in_ci_even_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.setenv("CI", "true")
    assert isinstance(progress_module.progress(3, "deriving"), progress_module._Quiet)
    monkeypatch.delenv("CI")
    bar = progress_module.progress(3, "deriving")
    assert not isinstance(bar, progress_module._Quiet)  # a real bar on a terminal outside CI
    bar.close()


def test_check_in_a_pipe_writes_nothing_to_stderr():
    result = subprocess.run(
        [sys.executable, "-m", "symcnn", "check", "zebra-cat"], capture_output=True, text=True, check=True
    )
    assert result.stderr == ""


def test_quiet_inside_work_that_shows_its_own_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.delenv("CI", raising=False)
    with progress_module.quiet():
        assert isinstance(progress_module.progress(3, "deriving"), progress_module._Quiet)
    bar = progress_module.progress(3, "variants", unit="variant")
    assert not isinstance(bar, progress_module._Quiet)
    bar.close()
