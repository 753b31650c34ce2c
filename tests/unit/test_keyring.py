"""The key ring: own keys archived sealed at rest, erased after their maximum age."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kafkaratchet.errors import ConfigError
from kafkaratchet.keyring import KeyRing
from kafkaratchet.ratchet import DataKey


def _key(root: str, created: float) -> DataKey:
    return DataKey(key_id=os.urandom(8), key=os.urandom(32), root=root, created=created)


def test_archive_is_sealed_0600_and_round_trips(tmp_path: Path) -> None:
    secret = os.urandom(32)
    ring = KeyRing(tmp_path / "n.keys", secret)
    keys = [_key("a", 1000.0), _key("b", 2000.0)]
    for key in keys:
        ring.add_own(key)
    ring.persist()
    data = (tmp_path / "n.keys").read_bytes()
    assert stat.S_IMODE(os.stat(tmp_path / "n.keys").st_mode) == 0o600
    assert all(key.key not in data and key.key_id not in data for key in keys), "archive is not sealed"
    again = KeyRing(tmp_path / "n.keys", secret)
    assert {(k.root, k.key_id, k.key, k.created) for k in again.own_keys()} == {
        (k.root, k.key_id, k.key, k.created) for k in keys}
    with pytest.raises(ConfigError, match="does not open"):
        KeyRing(tmp_path / "n.keys", os.urandom(32))


def test_keys_past_max_age_are_erased_from_memory_and_disk(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "n.keys", os.urandom(32))
    old, young, current = _key("a", 100.0), _key("a", 900.0), _key("a", 50.0)
    for key in (old, young, current):
        ring.add_own(key)
    ring.persist()
    assert ring.expire(500, now=1000.0, keep=[current.key_id]) == 1
    assert ring.get("a", old.key_id) is None
    assert ring.get("a", young.key_id) == young.key and ring.get("a", current.key_id) == current.key
    assert old.key not in (tmp_path / "n.keys").read_bytes()


def test_received_keys_and_lookup(tmp_path: Path) -> None:
    ring = KeyRing()
    kid, key = os.urandom(8), os.urandom(32)
    assert ring.get("r", kid) is None
    assert ring.add_received("r", kid, key) and not ring.add_received("r", kid, key)
    assert ring.get("r", kid) == key and ring.get("other", kid) is None
    assert key.hex() not in repr(ring)
