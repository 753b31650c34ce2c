"""The producer's ratchet: one 32-byte secret per epoch, stepped with fresh randomness.

``next = BLAKE2b-256(key=secret, msg=32 fresh random bytes, person="kr-ratchet-step")``.
The old secret cannot be computed from the new one (forward secrecy), and
because every step mixes in new randomness, a thief holding today's seed file
loses track at the next step (post-compromise security).

The new epoch is written durably to the seed file *before* it becomes current in
memory, so no key of an epoch exists that a crash could make the node derive
again differently. Data keys and key ids are keyed hashes of the secret and the
root topic; the key id reveals nothing about the producer or the epoch.

Seed file (61 bytes): ``"KRSD" | version 0x01 | epoch u64 BE | secret (32) |
check (16)`` where check is BLAKE2b-128 over the preceding 45 bytes,
personalised ``"kr-seed-check"``; it catches a torn or corrupted file.
"""

from __future__ import annotations

import hmac
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.bindings as sodium
import nacl.utils

from .errors import ConfigError, RatchetError
from .sealing import KEY_ID_SIZE, KEY_SIZE
from .secretfile import read_secret, write_atomic

__all__ = ["Ratchet", "DataKey", "derive_data_key", "step_secret", "encode_seed", "decode_seed",
           "KEY_ID_SIZE", "KEY_SIZE", "SEED_FILE_SIZE"]

log = logging.getLogger(__name__)

_MAGIC = b"KRSD"
_VERSION = 1
_HEADER = struct.Struct(">4sBQ")
SEED_FILE_SIZE = _HEADER.size + KEY_SIZE + 16
_STEP_PERSON = b"kr-ratchet-step\x00"
_KEY_PERSON = b"kr-data-key\x00\x00\x00\x00\x00"
_KEY_ID_PERSON = b"kr-key-id\x00\x00\x00\x00\x00\x00\x00"
_CHECK_PERSON = b"kr-seed-check\x00\x00\x00"
_MAX_EPOCH = (1 << 64) - 1


def _blake2b(message: bytes, key: bytes, size: int, person: bytes) -> bytes:
    return sodium.crypto_generichash_blake2b_salt_personal(message, digest_size=size, key=key, person=person)


def step_secret(secret: bytes, fresh: bytes) -> bytes:
    """The next epoch's secret from the current one and 32 fresh random bytes."""
    if len(secret) != KEY_SIZE or len(fresh) != KEY_SIZE:
        raise RatchetError("ratchet secret and fresh input must be 32 bytes each")
    return _blake2b(fresh, secret, KEY_SIZE, _STEP_PERSON)


@dataclass(frozen=True)
class DataKey:
    """A data key of one producer epoch for one root topic. Its repr hides the key."""

    key_id: bytes
    key: bytes = field(repr=False)
    root: str
    created: float = 0.0

    def __repr__(self) -> str:
        return f"DataKey(root={self.root!r}, key_id={self.key_id.hex()})"


def derive_data_key(secret: bytes, root: str, created: float = 0.0) -> DataKey:
    """Key and unlinkable key id for ``root``: two independent keyed hashes of the secret."""
    name = root.encode("utf-8")
    return DataKey(
        key_id=_blake2b(name, secret, KEY_ID_SIZE, _KEY_ID_PERSON),
        key=_blake2b(name, secret, KEY_SIZE, _KEY_PERSON),
        root=root,
        created=created,
    )


def encode_seed(epoch: int, secret: bytes) -> bytes:
    if not 0 <= epoch <= _MAX_EPOCH or len(secret) != KEY_SIZE:
        raise RatchetError("invalid epoch or secret")
    body = _HEADER.pack(_MAGIC, _VERSION, epoch) + secret
    return body + _blake2b(body, b"", 16, _CHECK_PERSON)


def decode_seed(data: bytes) -> tuple[int, bytes]:
    """(epoch, secret) from seed-file bytes; RatchetError on anything else."""
    if len(data) != SEED_FILE_SIZE:
        raise RatchetError(f"seed file must be {SEED_FILE_SIZE} bytes, found {len(data)}")
    magic, version, epoch = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise RatchetError("not a kafkaratchet seed file")
    if version != _VERSION:
        raise RatchetError(f"unsupported seed file version {version}")
    body, check = data[:-16], data[-16:]
    if not hmac.compare_digest(check, _blake2b(body, b"", 16, _CHECK_PERSON)):
        raise RatchetError("seed file checksum mismatch (corrupt or torn write)")
    return epoch, bytes(data[_HEADER.size : _HEADER.size + KEY_SIZE])


class Ratchet:
    """The seed file and the current epoch; thread-safe.

    ``key_for(root)`` is the hot path for sealing: keys are cached per epoch.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._epoch, self._secret = decode_seed(self._read())
        self._keys: dict[str, DataKey] = {}
        self._since = self._mtime()

    def _read(self) -> bytes:
        try:
            return read_secret(self.path, max_size=SEED_FILE_SIZE)
        except ConfigError as exc:
            raise RatchetError(str(exc)) from None

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    @property
    def epoch_started(self) -> float:
        """When the current epoch began (the seed file's modification time)."""
        return self._since

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, exist_ok: bool = False) -> Ratchet:
        """A new seed file with a random secret at epoch 0 (refuses to overwrite one)."""
        target = Path(path)
        if target.exists():
            if exist_ok:
                return cls(target)
            raise RatchetError(f"seed file {target} already exists")
        write_atomic(target, encode_seed(0, nacl.utils.random(KEY_SIZE)))
        log.info("created ratchet seed file %s", target)
        return cls(target)

    @property
    def epoch(self) -> int:
        return self._epoch

    def key_for(self, root: str) -> DataKey:
        key = self._keys.get(root)
        if key is None:
            with self._lock:
                key = self._keys.get(root)
                if key is None:
                    key = derive_data_key(self._secret, root, self._since)
                    self._keys[root] = key
        return key

    def step(self) -> int:
        """Advance one epoch. The file is durable before the new keys can be derived."""
        with self._lock:
            if self._epoch >= _MAX_EPOCH:
                raise RatchetError("ratchet epoch space exhausted")
            secret = step_secret(self._secret, nacl.utils.random(KEY_SIZE))
            epoch = self._epoch + 1
            try:
                write_atomic(self.path, encode_seed(epoch, secret))
            except OSError as exc:
                raise RatchetError(f"cannot persist ratchet step to {self.path}: {exc.strerror}") from None
            self._epoch, self._secret = epoch, secret
            self._keys = {}
            self._since = self._mtime()
        log.info("ratchet stepped to epoch %d", epoch)
        return epoch

    def __repr__(self) -> str:
        return f"Ratchet(path={str(self.path)!r}, epoch={self._epoch})"
