"""The key ring: own keys archived sealed at rest, erased after their maximum age."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest

import kafkaratchet.files.keyring as keyring_module
from kafkaratchet.errors import ConfigError, KafkaRatchetError
from kafkaratchet.files.keyring import (
    MAX_ARCHIVE_AT_BOUND,
    MAX_ENTRY_SIZE,
    MAX_OWN_KEYS,
    MAX_OWN_KEYS_PER_ROOT,
    MAX_ROOT_BYTES,
    KeyRing,
)
from kafkaratchet.protocol.ratchet import DataKey

#: only this logger counts: clients other tests left running log warnings of their own
KEYRING_LOGGER = "kafkaratchet.files.keyring"


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


# --------------------------------------------------------------------------- the bound on own keys

def _step(ring: KeyRing, root: str, created: float) -> DataKey:
    """What a ratchet step does to the ring: the root's new key, archived as its newest (cheap: no ratchet)."""
    key = _key(root, created)
    ring.add_own(key)
    return key


def test_forced_steps_for_two_days_keep_the_archive_within_its_bound_and_it_still_loads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A step a second for two days (what denylist entries can force, node.py ``_bite``) on a root with a
    60-character name, persisted as it goes, and a quiet root stepping once a day. Without the bound the
    archive grew to 172,800 keys, 19 MB, past the 16 MiB read limit: the producer could not restart
    (this test failed with ConfigError "larger than"). Guards keyring.py ``add_own``: ``_trim_root``."""
    caplog.set_level(logging.WARNING, logger=KEYRING_LOGGER)
    path, secret = tmp_path / "n.keys", os.urandom(32)
    ring = KeyRing(path, secret)
    root = "orders-" + "x" * 53
    quiet = [_step(ring, "quiet", float(day * 86_400)) for day in range(2)]
    first = _step(ring, root, 0.0)
    steps = 2 * 86_400
    for second in range(1, steps):
        last = _step(ring, root, float(second))
        if second % 10_000 == 0:
            ring.persist()  # the node persists at every step; every 10,000th is enough to show the file's size
    ring.persist()
    restarted = KeyRing(path, secret)  # the producer restarts
    assert {(k.root, k.key_id) for k in restarted.own_keys()} == {(k.root, k.key_id) for k in ring.own_keys()}
    assert path.stat().st_size <= MAX_ARCHIVE_AT_BOUND
    kept = ring.own(root, [])
    assert len(kept) == MAX_OWN_KEYS_PER_ROOT
    assert min(k.created for k in kept) == steps - MAX_OWN_KEYS_PER_ROOT, "the oldest keys went first"
    assert ring.get(root, last.key_id) == last.key, "the sealing key is never erased"
    assert ring.get(root, first.key_id) is None
    assert all(ring.get("quiet", k.key_id) == k.key for k in quiet), "a root that did not step lost nothing"
    # never silently, never a flood: one WARNING at the first erasure, the rest summed up a minute later
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name == KEYRING_LOGGER]
    assert len(warnings) == 1 and "erased 1 producer key(s)" in warnings[0] and root in warnings[0]
    ring._log_drops(now=time.monotonic() + 61)
    summed = [r.getMessage() for r in caplog.records
                if r.levelno >= logging.WARNING and r.name == KEYRING_LOGGER][1:]
    assert len(summed) == 1 and f"erased {steps - MAX_OWN_KEYS_PER_ROOT - 1} producer key(s)" in summed[0]
    assert all(key.key.hex() not in line for line in summed + warnings for key in kept)


def test_the_total_bound_takes_from_the_roots_holding_the_most_keys(tmp_path: Path) -> None:
    """Forced steps on many roots at once: the total stays at MAX_OWN_KEYS, taken from the roots that step
    (each keeps its newest key), while a quiet root keeps its week of keys. Guards ``_trim_total``."""
    ring = KeyRing(tmp_path / "n.keys", os.urandom(32))
    quiet = [_step(ring, "quiet", float(day)) for day in range(7)]
    busy = [f"busy{i}" for i in range(6)]
    newest = {}
    for second in range(3_500):
        for root in busy:
            newest[root] = _step(ring, root, float(second))
    assert len(ring.own_keys()) == MAX_OWN_KEYS
    counts = [len(ring.own(root, [])) for root in busy]
    assert max(counts) - min(counts) <= 1, counts
    assert all(ring.get(root, key.key_id) == key.key for root, key in newest.items())
    assert all(ring.get("quiet", k.key_id) == k.key for k in quiet)


def test_an_archive_filled_to_the_bound_with_maximal_roots_persists_and_loads(tmp_path: Path) -> None:
    """The read limit is consistent with the bound: MAX_OWN_KEYS keys under roots of MAX_ROOT_BYTES bytes,
    with creation times that take 9 bytes, make an archive of at most MAX_ARCHIVE_AT_BOUND bytes, which
    is under a third of the read limit, and it loads."""
    assert MAX_ENTRY_SIZE == 305 and MAX_ARCHIVE_AT_BOUND == 4_997_170
    assert MAX_ARCHIVE_AT_BOUND * 3 < keyring_module._MAX_ARCHIVE
    path, secret = tmp_path / "n.keys", os.urandom(32)
    ring = KeyRing(path, secret)
    roots = [f"{i}" + "r" * (MAX_ROOT_BYTES - 1) for i in range(MAX_OWN_KEYS // MAX_OWN_KEYS_PER_ROOT)]
    assert all(len(root.encode()) == MAX_ROOT_BYTES for root in roots)
    for root in roots:
        for _ in range(MAX_OWN_KEYS_PER_ROOT):
            _step(ring, root, float(2**40))
    assert len(ring.own_keys()) == MAX_OWN_KEYS
    ring.persist()
    size = path.stat().st_size
    assert MAX_ARCHIVE_AT_BOUND - 2 <= size <= MAX_ARCHIVE_AT_BOUND  # an array16 header, not the worst array32
    assert len(KeyRing(path, secret).own_keys()) == MAX_OWN_KEYS


def test_roots_that_would_break_the_bound_are_refused(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "n.keys", os.urandom(32))
    ring.add_own(_key("r" * MAX_ROOT_BYTES, 0.0))
    ring.add_own(_key("é" * (MAX_ROOT_BYTES // 2), 0.0))  # 248 bytes
    for root in ("r" * (MAX_ROOT_BYTES + 1), "é" * (MAX_ROOT_BYTES // 2 + 1)):
        with pytest.raises(KafkaRatchetError, match="at most 249"):
            ring.add_own(_key(root, 0.0))
    for i in range(MAX_OWN_KEYS - 2):
        ring.add_own(_key(f"root{i}", 0.0))
    with pytest.raises(KafkaRatchetError, match="already seals for 16384 root topics"):
        ring.add_own(_key("one-too-many", 0.0))
    ring.add_own(_key("root0", 1.0))  # a root it has: its newest key stays, the older one goes
    assert len(ring.own_keys()) == MAX_OWN_KEYS and len(ring.own("root0", [])) == 1


def test_an_archive_past_the_bound_is_trimmed_when_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """An archive an older version wrote with more keys than the bound loads, trimmed (and says so)."""
    path, secret = tmp_path / "n.keys", os.urandom(32)
    monkeypatch.setattr(keyring_module, "MAX_OWN_KEYS_PER_ROOT", 10**6)
    old = KeyRing(path, secret)
    keys = [_step(old, "orders", float(i)) for i in range(MAX_OWN_KEYS_PER_ROOT + 100)]
    old.persist()
    monkeypatch.undo()
    caplog.set_level(logging.WARNING, logger=KEYRING_LOGGER)
    ring = KeyRing(path, secret)
    assert [k.key_id for k in sorted(ring.own_keys(), key=lambda k: k.created)] == [
        k.key_id for k in keys[100:]]
    assert any("erased 100 producer key(s)" in r.getMessage() for r in caplog.records)
