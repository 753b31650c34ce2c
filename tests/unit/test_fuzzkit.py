"""The fuzzing kit's own checks, and the threat model's map to the tests."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from kafkaratchet.errors import FormatError
from kafkaratchet.protocol import wire
from tests.unit._fuzzkit import hostile_bytes, outcome


def test_mutators_are_deterministic_and_change_things() -> None:
    seed = wire.pack([1, "fz", b"\x00" * 16, [1, 2, 3], {"a": None}])
    outs = {hostile_bytes(seed, random.Random(n)) for n in range(200)}
    assert len(outs) > 150
    assert all(hostile_bytes(seed, random.Random(n)) == hostile_bytes(seed, random.Random(n)) for n in range(20))


def test_outcome_lets_only_kafkaratchet_errors_through() -> None:

    def bad() -> None:
        raise FormatError("x")

    def worse() -> None:
        raise IndexError("x")

    assert isinstance(outcome(bad), FormatError)
    with pytest.raises(IndexError):
        outcome(worse)


def test_threat_model_points_only_at_tests_that_exist() -> None:
    """docs/THREAT-MODEL.md maps every claim to ``file::test``; a renamed or deleted test breaks the map."""
    tests = Path(__file__).resolve().parent.parent
    model = tests.parent / "docs" / "THREAT-MODEL.md"
    if not model.exists():
        pytest.skip("docs/THREAT-MODEL.md is not in the tree")
    references = set(re.findall(r"((?:unit|integration)/[\w/]+\.py)::(\w+)", model.read_text(encoding="utf-8")))
    assert len(references) >= 30
    missing = [f"{f}::{t}" for f, t in sorted(references)
               if not (tests / f).exists() or not re.search(rf"^def {t}\b", (tests / f).read_text(), re.M)]
    assert not missing, f"THREAT-MODEL.md names tests that do not exist: {missing}"
