"""The sealed-record wire format: one XChaCha20-Poly1305 call per Kafka key or value.

    offset  size  field
    0       1     magic 0xC1 (a byte msgpack never uses and UTF-8 never starts with)
    1       1     version 0x01
    2       8     key id  \\ together: the 24-byte XChaCha20 nonce
    10      16    random  /
    26      n+16  ciphertext and Poly1305 tag

The associated data is ``record[0:10] | role (0x4B key, 0x56 value) | topic (UTF-8)``,
so a record cannot be opened under another topic, as the other half of a Kafka
record, under another format version, or under another key id. 42 bytes of
overhead per record; the key id doubles as the nonce prefix, leaving 128 random
bits per nonce under a key (collision chance below 2^-64 for 2^32 records).
"""

from __future__ import annotations

import enum
import os

import nacl.bindings as sodium
import nacl.exceptions

from .errors import DecryptionError, NotARecordError, UnsupportedVersionError

__all__ = ["Role", "seal", "open_sealed", "key_id_of", "is_sealed", "MAGIC", "VERSION", "OVERHEAD",
           "HEADER_SIZE"]

MAGIC = 0xC1
VERSION = 1
_PREFIX = bytes((MAGIC, VERSION))
KEY_ID_SIZE = 8
RANDOM_SIZE = 16
HEADER_SIZE = 2 + KEY_ID_SIZE + RANDOM_SIZE
TAG_SIZE = 16
OVERHEAD = HEADER_SIZE + TAG_SIZE
KEY_SIZE = 32


class Role(bytes, enum.Enum):
    """Which half of a Kafka record a sealed blob belongs to."""

    KEY = b"K"
    VALUE = b"V"


def seal(key_id: bytes, key: bytes, topic: str, role: Role, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` for ``topic`` and ``role`` under a data key."""
    header = _PREFIX + key_id + os.urandom(RANDOM_SIZE)
    aad = header[:10] + role.value + topic.encode("utf-8")
    return header + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, header[2:], key)


def is_sealed(data: bytes) -> bool:
    """True when ``data`` is framed as a kafkaratchet record of any version."""
    return len(data) >= 2 and data[0] == MAGIC


def key_id_of(record: bytes) -> bytes:
    """The key id a record needs; NotARecordError / UnsupportedVersionError otherwise."""
    if len(record) < OVERHEAD or record[0] != MAGIC:
        raise NotARecordError("not a kafkaratchet record")
    if record[1] != VERSION:
        raise UnsupportedVersionError(f"record format version {record[1]} is not supported")
    return bytes(record[2:10])


def open_sealed(key: bytes, topic: str, role: Role, record: bytes) -> bytes:
    """Authenticate and decrypt; DecryptionError on any mismatch or tampering."""
    key_id_of(record)
    aad = bytes(record[:10]) + role.value + topic.encode("utf-8")
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            bytes(record[HEADER_SIZE:]), aad, bytes(record[2:HEADER_SIZE]), key
        )
    except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise DecryptionError("record does not authenticate under this key, topic and role") from None
