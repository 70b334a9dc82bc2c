from __future__ import annotations

import copy

import pytest

from symcnn.sources import read_source


@pytest.fixture
def four_images() -> dict:
    """The built-in four-images scenario as plain data, safe to modify."""
    return copy.deepcopy(read_source("four-images")[0])


@pytest.fixture
def zebra_cat() -> dict:
    return copy.deepcopy(read_source("zebra-cat")[0])
