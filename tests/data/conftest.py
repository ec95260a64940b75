"""Fixtures of the data tests."""

from __future__ import annotations

import pytest
from generated_supermarket import SMALL, Supermarket, read_supermarket

from omnix_recs.data.generate import generate_instacart


@pytest.fixture(scope="session")
def supermarket(tmp_path_factory: pytest.TempPathFactory) -> Supermarket:
    directory = tmp_path_factory.mktemp("supermarket")
    summary = generate_instacart(directory, **SMALL)
    return read_supermarket(directory, summary, SMALL["days"])
