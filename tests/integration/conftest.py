"""Fixtures for integration tests: a fresh root of trust per test, nodes closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .nodes import Cluster


@pytest.fixture
def cluster(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(kafka_bootstrap, tmp_path)
    try:
        yield c
    finally:
        c.close()
