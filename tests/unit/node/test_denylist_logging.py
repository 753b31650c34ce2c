"""A node replays every denylist entry at start: only its own denial is worth a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kafkaratchet.protocol.trust import KIND_DENY, make_trust_update
from tests.unit._fuzzkit import NOW, ident, make_world, start_stub_node

WORLD = make_world()


def test_another_key_s_denial_is_info_and_our_own_is_a_warning(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    other = make_trust_update("deny", WORLD.admin, WORLD.admin_chain, ident(61).public_key, issued_at=NOW - 100)
    own = make_trust_update("deny", WORLD.admin, WORLD.admin_chain, crypto.public_key, issued_at=NOW - 100)
    with caplog.at_level(logging.INFO, logger="kafkaratchet"):
        assert crypto.credentials.apply_trust_update(KIND_DENY, other.encode()) is not None
        assert crypto.credentials.apply_trust_update(KIND_DENY, own.encode()) is not None
    denials = [(r.levelno, r.getMessage()) for r in caplog.records if "denylisted" in r.getMessage()]
    assert denials == [
        (logging.INFO, f"key {ident(61).fingerprint} is denylisted for every topic"),
        (logging.WARNING, f"this node's own key {crypto.fingerprint} is denylisted for every topic: "
                          "others will refuse it"),
    ]
