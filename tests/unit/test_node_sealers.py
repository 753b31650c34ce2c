"""The node's per-topic sealers: built once per key, replaced when the ratchet steps."""

from __future__ import annotations

from pathlib import Path

from kafkaratchet.message import KafkaCryptoMessage
from kafkaratchet.sealing import Role, key_id_of

from .test_fuzz_support import make_world, start_stub_node

WORLD = make_world()


def test_a_ratchet_step_changes_the_key_of_every_topic_and_role(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    before = {(topic, role): key_id_of(crypto.seal(topic, role, b"x"))
              for topic in ("fz", "fz.a", "other") for role in Role}
    assert before[("fz", Role.VALUE)] == before[("fz.a", Role.KEY)] != before[("other", Role.VALUE)]
    crypto.ratchet()
    after = {(topic, role): key_id_of(crypto.seal(topic, role, b"x"))
             for topic in ("fz", "fz.a", "other") for role in Role}
    assert not set(before.values()) & set(after.values()), "a sealer outlived its key"
    assert after[("fz", Role.VALUE)] == after[("fz.a", Role.KEY)] != after[("other", Role.VALUE)]


def test_records_of_both_epochs_open_into_full_messages(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    old = crypto.seal("fz.a", Role.VALUE, b"old")
    crypto.ratchet()
    new = crypto.seal("fz.a", Role.VALUE, b"new")
    for record, text in ((old, b"old"), (new, b"new")):
        message = crypto.open("fz.a", Role.VALUE, record, 0.0, None)
        reference = KafkaCryptoMessage(record, cleartext=text, topic="fz.a")
        assert message.isCleartext() and message.getMessage() == text == bytes(message)
        assert message.toWire() == record and message.topic == "fz.a"
        assert message.isPossiblyDecryptable() is reference.isPossiblyDecryptable() is False
        assert repr(message) == repr(reference)
