from __future__ import annotations

import copy
import os

import pytest

from symcnn.scenario.sources import read_source


@pytest.fixture
def four_images() -> dict:
    """The built-in four-images scenario as plain data, safe to modify."""
    return copy.deepcopy(read_source("four-images")[0])


@pytest.fixture
def zebra_cat() -> dict:
    return copy.deepcopy(read_source("zebra-cat")[0])


# CI runs the same hypothesis examples every time (a failure is then reproducible from the log);
# locally each run explores new ones.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
