"""The controller's audit summary of refusals that identify nobody: bounded lines, nothing the sender chose."""

from __future__ import annotations

import logging

import pytest

from kafkaratchet.errors import (
    ChainError,
    FormatError,
    KeyExchangeError,
    SignatureError,
    UnsupportedVersionError,
)
from kafkaratchet.protocol.certs import REASON_UNKNOWN_ROOT
from kafkaratchet.services.controller import _OTHER_TOPICS, _reason, _UnverifiedTally


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kafkaratchet.audit"]


def test_one_line_per_topic_per_interval_counting_every_refusal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kafkaratchet.audit")
    now = [1000.0]
    tally = _UnverifiedTally(60.0, clock=lambda: now[0])
    for i in range(10_000):
        tally.add("a.subs", "bad-signature" if i % 4 else "unknown-root")
    tally.add("b.subs", "unparseable")
    now[0] += 59.0
    assert tally.flush() == 0 and _lines(caplog) == [], "nothing is due before the interval"
    tally.add("b.subs", "unparseable")
    now[0] += 1.0
    assert tally.flush() == 2
    assert sorted(_lines(caplog)) == [
        "topic=a.subs decision=refused-unverified records=10000 seconds=60 reasons=bad-signature:7500,"
        "unknown-root:2500",
        "topic=b.subs decision=refused-unverified records=2 seconds=60 reasons=unparseable:2"]
    assert tally.pending() == 0 and tally.flush(force=True) == 0
    tally.add("a.subs", "replayed")
    now[0] += 1.0
    assert tally.flush(force=True) == 1, "close writes what is pending"
    assert _lines(caplog)[-1] == "topic=a.subs decision=refused-unverified records=1 seconds=1 reasons=replayed:1"


def test_topics_past_the_limit_share_one_count(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone who may create topics can make R.subs topics: their number in the tally is bounded."""
    caplog.set_level(logging.INFO, logger="kafkaratchet.audit")
    tally = _UnverifiedTally(60.0, max_topics=3)
    for i in range(1000):
        tally.add(f"t{i}.subs", "unparseable")
    assert tally.flush(force=True) == 4
    assert any(line.startswith(f"topic={_OTHER_TOPICS} ") and "records=997 " in line for line in _lines(caplog))


def test_reasons_are_fixed_labels_never_text_from_the_record() -> None:
    sender_chosen = "'evil\nroot=forged decision=forwarded'"
    assert _reason(ChainError(REASON_UNKNOWN_ROOT, sender_chosen)) == REASON_UNKNOWN_ROOT
    assert _reason(FormatError(sender_chosen)) == "unparseable"
    assert _reason(UnsupportedVersionError(sender_chosen)) == "unsupported-version"
    assert _reason(SignatureError(sender_chosen)) == "bad-signature"
    assert _reason(KeyExchangeError(sender_chosen)) == "KeyExchangeError"
