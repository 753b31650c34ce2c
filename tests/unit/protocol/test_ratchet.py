"""The ratchet: durable steps, forward secrecy on disk, no key derived twice differently."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kafkaratchet.errors import RatchetError
from kafkaratchet.files import secretfile
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.protocol.ratchet import KEY_SIZE, decode_seed, derive_data_key, encode_seed, step_secret


def _all_file_bytes(directory: Path) -> list[bytes]:
    return [p.read_bytes() for p in directory.rglob("*") if p.is_file()]


def test_seed_file_is_mode_0600(tmp_path: Path) -> None:
    ratchet = Ratchet.create(tmp_path / "n.seed")
    assert stat.S_IMODE(os.stat(ratchet.path).st_mode) == 0o600
    ratchet.step()
    assert stat.S_IMODE(os.stat(ratchet.path).st_mode) == 0o600


def test_step_leaves_no_trace_of_the_previous_secret(tmp_path: Path) -> None:
    ratchet = Ratchet.create(tmp_path / "n.seed")
    old_secret = decode_seed(ratchet.path.read_bytes())[1]
    ratchet.step()
    assert all(old_secret not in blob for blob in _all_file_bytes(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.seed"]


def test_keys_change_every_step_and_key_ids_do_not_repeat(tmp_path: Path) -> None:
    ratchet = Ratchet.create(tmp_path / "n.seed")
    seen = set()
    for _ in range(20):
        key = ratchet.key_for("orders")
        seen.add((key.key_id, key.key))
        ratchet.step()
    assert len(seen) == 20 and len({kid for kid, _ in seen}) == 20


def test_step_is_not_invertible_and_mixes_fresh_randomness() -> None:
    secret = os.urandom(KEY_SIZE)
    a, b = step_secret(secret, os.urandom(32)), step_secret(secret, os.urandom(32))
    assert a != b != secret


def test_key_ids_do_not_reveal_root_or_epoch() -> None:
    secret = os.urandom(KEY_SIZE)
    same_root = derive_data_key(secret, "a"), derive_data_key(step_secret(secret, os.urandom(32)), "a")
    assert same_root[0].key_id != same_root[1].key_id
    assert derive_data_key(secret, "a").key_id != derive_data_key(secret, "b").key_id
    assert derive_data_key(secret, "a").key_id not in secret


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace", "chmod"])
def test_failure_between_persisting_and_using_never_reuses_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    """Inject a crash at each point of the durable write: the in-memory epoch never moves ahead of
    the file, and reloading gives the epoch whose key was (or will be) used, never a new secret for an
    epoch whose key is already in use."""
    path = tmp_path / "n.seed"
    ratchet = Ratchet.create(path)
    used = {ratchet.epoch: ratchet.key_for("r").key}

    def boom(*_args: object, **_kwargs: object) -> None:
        raise OSError(5, "injected failure")

    target = {"write": "write", "fsync": "fsync", "replace": "replace", "chmod": "chmod"}[fail_at]
    monkeypatch.setattr(secretfile.os, target, boom)
    with pytest.raises(RatchetError):
        ratchet.step()
    monkeypatch.undo()
    # memory did not advance: the key in use is still the persisted one
    assert ratchet.epoch == 0 and ratchet.key_for("r").key == used[0]
    assert [p.name for p in tmp_path.iterdir()] == ["n.seed"], "a temp file was left behind"
    reloaded = Ratchet(path)
    assert reloaded.epoch == 0 and reloaded.key_for("r").key == used[0]
    # the next successful step gives a fresh epoch; a restart reproduces exactly that epoch's key
    epoch = ratchet.step()
    used[epoch] = ratchet.key_for("r").key
    again = Ratchet(path)
    assert again.epoch == epoch and again.key_for("r").key == used[epoch]
    assert len(set(used.values())) == len(used)


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    Ratchet.create(tmp_path / "n.seed")
    with pytest.raises(RatchetError):
        Ratchet.create(tmp_path / "n.seed")


def test_world_readable_seed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.seed"
    path.write_bytes(encode_seed(1, os.urandom(32)))
    path.chmod(0o644)
    with pytest.raises(RatchetError, match="readable by others"):
        Ratchet(path)


def test_missing_or_corrupt_seed_file(tmp_path: Path) -> None:
    with pytest.raises(RatchetError):
        Ratchet(tmp_path / "absent.seed")
    path = tmp_path / "bad.seed"
    secretfile.write_atomic(path, b"\x00" * 61)
    with pytest.raises(RatchetError):
        Ratchet(path)


def test_repr_hides_the_secret(tmp_path: Path) -> None:
    ratchet = Ratchet.create(tmp_path / "n.seed")
    key = ratchet.key_for("r")
    for text in (repr(ratchet), repr(key), str(key)):
        assert key.key.hex() not in text and decode_seed(ratchet.path.read_bytes())[1].hex() not in text
