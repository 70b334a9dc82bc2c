"""A progress bar on stderr for long runs: only on a terminal, only after a second, never in CI."""

from __future__ import annotations

import os
import sys


class _Quiet:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(total: int, description: str, unit: str = "pass"):
    """A bar with ``update()`` and ``close()``; a silent stand-in in pipes, files and CI."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return _Quiet()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, delay=1.0, leave=False, file=sys.stderr)
