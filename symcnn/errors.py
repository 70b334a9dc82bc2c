"""One exception hierarchy; the CLI maps each kind to an exit code in one place."""

from __future__ import annotations


class SymcnnError(Exception):
    """Base of every error symcnn raises on purpose."""

    exit_code = 2


class ScenarioError(SymcnnError):
    """Bad input: the message starts with the key path, e.g. ``inputs[1].pixels: ...``."""

    exit_code = 2

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}" if where else what)
        self.where = where
        self.what = what

    def __reduce__(self):  # crosses process boundaries (exercise batches) with both parts
        return type(self), (self.where, self.what)


class VerificationError(SymcnnError):
    """A symbolic value and its numeric twin disagree, or a claim fails."""

    exit_code = 1


class RenderError(SymcnnError):
    """A document could not be written or compiled."""

    exit_code = 1


class PartialFailure(RenderError):
    """Some outputs were written, others failed: ``written`` (paths) and ``failures`` (one message each,
    starting with what failed, e.g. ``pdf: ...``)."""

    def __init__(self, written: list, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.written = list(written)
        self.failures = list(failures)

    def __reduce__(self):
        return type(self), (self.written, self.failures)


class UsageError(SymcnnError):
    """A request that needs confirming or changing, e.g. a huge --detail full document."""

    exit_code = 2
