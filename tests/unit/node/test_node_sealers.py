"""The node's per-topic sealers: built once per key, replaced when the ratchet steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkaratchet import _aead
from kafkaratchet.node.message import KafkaCryptoMessage
from kafkaratchet.protocol.records import Role, key_id_of
from tests.unit._fuzzkit import make_world, start_stub_node

WORLD = make_world()

pytestmark = pytest.mark.usefixtures("aead_engine")  # every test here runs once per AEAD engine


def test_the_node_s_sealers_use_the_parametrised_engine(tmp_path: Path, aead_engine: str) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    crypto.sealers.seal("fz", Role.VALUE, b"x")
    engines = {sealer.engine.name for sealer in _node_sealers(crypto)}
    assert engines == {aead_engine} == {_aead.selected.name}


def _node_sealers(crypto: object) -> list[object]:
    """Every Sealer reachable from the node's attributes (wherever the node keeps them)."""
    from kafkaratchet.protocol.records import Sealer

    found: list[object] = []
    seen: set[int] = set()
    stack: list[object] = [crypto]
    while stack:
        item = stack.pop()
        if id(item) in seen or len(seen) > 10_000:
            continue
        seen.add(id(item))
        if isinstance(item, Sealer):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("kafkaratchet"):
            stack.extend(vars(item).values())
    return found


def test_a_ratchet_step_changes_the_key_of_every_topic_and_role(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    before = {(topic, role): key_id_of(crypto.sealers.seal(topic, role, b"x"))
              for topic in ("fz", "fz.a", "other") for role in Role}
    assert before[("fz", Role.VALUE)] == before[("fz.a", Role.KEY)] != before[("other", Role.VALUE)]
    crypto.ratchet()
    after = {(topic, role): key_id_of(crypto.sealers.seal(topic, role, b"x"))
             for topic in ("fz", "fz.a", "other") for role in Role}
    assert not set(before.values()) & set(after.values()), "a sealer outlived its key"
    assert after[("fz", Role.VALUE)] == after[("fz.a", Role.KEY)] != after[("other", Role.VALUE)]


def test_records_of_both_epochs_open_into_full_messages(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    old = crypto.sealers.seal("fz.a", Role.VALUE, b"old")
    crypto.ratchet()
    new = crypto.sealers.seal("fz.a", Role.VALUE, b"new")
    for record, text in ((old, b"old"), (new, b"new")):
        message = crypto.waiter.open("fz.a", Role.VALUE, record, wait=0.0, retrier=None)
        reference = KafkaCryptoMessage(record, cleartext=text, topic="fz.a")
        assert message.isCleartext() and message.getMessage() == text == bytes(message)
        assert message.toWire() == record and message.topic == "fz.a"
        assert message.isPossiblyDecryptable() is reference.isPossiblyDecryptable() is False
        assert repr(message) == repr(reference)
