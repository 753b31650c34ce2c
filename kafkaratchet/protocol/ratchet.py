"""The producer's ratchet: one 32-byte secret per epoch, stepped with fresh randomness.

``next = BLAKE2b-256(key=secret, msg=32 fresh random bytes, person="kr-ratchet-step")``.
The old secret cannot be computed from the new one (forward secrecy), and
because every step mixes in new randomness, a thief holding today's seed file
loses track at the next step (post-compromise security).

Pure: the seed file and the current epoch are :mod:`kafkaratchet.files.seed`'s,
which writes a new epoch durably before it becomes current. Data keys and key ids are keyed hashes of the secret and the
root topic; the key id reveals nothing about the producer or the epoch.

Seed file (61 bytes): ``"KRSD" | version 0x01 | epoch u64 BE | secret (32) |
check (16)`` where check is BLAKE2b-128 over the preceding 45 bytes,
personalised ``"kr-seed-check"``; it catches a torn or corrupted file.
"""

from __future__ import annotations

import hmac
import logging
import struct
from dataclasses import dataclass, field

import nacl.bindings as sodium

from kafkaratchet.errors import RatchetError
from kafkaratchet.protocol.records import KEY_ID_SIZE, KEY_SIZE

__all__ = ["DataKey", "derive_data_key", "step_secret", "encode_seed", "decode_seed",
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
