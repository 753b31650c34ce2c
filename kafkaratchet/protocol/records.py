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

This module is the format only: layout, associated data, the checks on
untrusted bytes, and a reference :func:`reference_seal` / :func:`reference_open`
written with nothing but ``nacl.bindings``. How the one AEAD call per record is
made cheaply (the GIL-holding libsodium binding, pooled buffers, the engine
switch ``KAFKARATCHET_ENGINE``) lives in :mod:`kafkaratchet._aead`; a
:class:`Sealer` builds what is fixed per key, topic and role once and takes the
random half of each nonce from :data:`kafkaratchet._aead.NONCES`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import nacl.bindings as _sodium

from kafkaratchet import _aead
from kafkaratchet._aead import GIL_RELEASE_THRESHOLD as GIL_RELEASE_THRESHOLD
from kafkaratchet._aead import NONCES as _NONCES
from kafkaratchet._aead import POOLED_LIMIT as POOLED_LIMIT
from kafkaratchet._aead import TAG_SIZE
from kafkaratchet.errors import CryptoError, DecryptionError, NotARecordError, UnsupportedVersionError

__all__ = ["Role", "Sealer", "seal", "open_sealed", "key_id_of", "is_sealed", "reference_seal", "reference_open",
           "MAGIC", "VERSION", "OVERHEAD", "HEADER_SIZE", "KEY_SIZE", "KEY_ID_SIZE", "RANDOM_SIZE", "TAG_SIZE"]

MAGIC = 0xC1
VERSION = 1
_PREFIX = bytes((MAGIC, VERSION))
#: a data key (XChaCha20-Poly1305); the one definition, imported by ratchet and keyexchange
KEY_SIZE: int = _aead.KEY_SIZE
#: a data key's id, also the first third of every record's nonce
KEY_ID_SIZE = 8
RANDOM_SIZE = 16
HEADER_SIZE = 2 + KEY_ID_SIZE + RANDOM_SIZE
OVERHEAD = HEADER_SIZE + TAG_SIZE
assert KEY_ID_SIZE + RANDOM_SIZE == _aead.NONCE_SIZE and RANDOM_SIZE == _NONCES.PIECE

_NO_AUTH = "record does not authenticate under this key, topic and role"


class Role(bytes, enum.Enum):
    """Which half of a Kafka record a sealed blob belongs to."""

    KEY = b"K"
    VALUE = b"V"


_KEY, _VALUE = Role.KEY, Role.VALUE


def _aad(head: bytes, role: Role, topic: str) -> bytes:
    """The associated data: ``record[0:10] | role | topic (UTF-8)``."""
    return head + role + topic.encode()


class Sealer:
    """Seals records for one data key, topic and role: what is fixed per record is built once.

    The node keeps one per topic and role while a key is current, so sealing a record costs
    one random piece, one header, one engine call and one copy. A Sealer keeps the engine
    selected when it was built (see :mod:`kafkaratchet._aead`); the first Sealer chooses it.
    """

    __slots__ = ("seal", "engine")

    #: ``seal(plaintext) -> record``: a closure over the key, header prefix and associated data (one call
    #: frame fewer per record than a method reading them from the instance)
    seal: Callable[[bytes], bytes]

    def __init__(self, key_id: bytes, key: bytes, topic: str, role: Role) -> None:
        if type(key) is not bytes or type(key_id) is not bytes or len(key) != KEY_SIZE or \
                len(key_id) != KEY_ID_SIZE:
            raise CryptoError("a data key is 32 bytes and its id 8 bytes")
        if role is not _VALUE and role is not _KEY:
            raise CryptoError(f"role must be a Role, not {role!r}")
        prefix = _PREFIX + key_id
        aad = _aad(prefix, role, topic)
        self.engine = _aead.engine()
        encrypt, take, refill = self.engine.encrypt, _NONCES.take, _NONCES.refill

        def seal(plaintext: bytes) -> bytes:
            if type(plaintext) is not bytes:
                plaintext = bytes(plaintext)
            try:
                piece = take()
            except IndexError:
                piece = refill()
            return encrypt(key, key_id + piece, aad, plaintext, prefix + piece)

        self.seal = seal

    def __repr__(self) -> str:
        return "Sealer(<key withheld>)"


def seal(key_id: bytes, key: bytes, topic: str, role: Role, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` for ``topic`` and ``role`` under a data key (one record; see :class:`Sealer`)."""
    return Sealer(key_id, key, topic, role).seal(plaintext)


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


def _checked(key: bytes, role: Role, record: bytes) -> bytes:
    """The record as ``bytes`` once the framing, key and role are acceptable; the defined error otherwise."""
    if len(record) < OVERHEAD or record[0] != MAGIC:
        raise NotARecordError("not a kafkaratchet record")
    if record[1] != VERSION:
        raise UnsupportedVersionError(f"record format version {record[1]} is not supported")
    if len(key) != KEY_SIZE or type(key) is not bytes or (role is not _VALUE and role is not _KEY):
        raise DecryptionError(_NO_AUTH)
    return record if type(record) is bytes else bytes(record)


def open_sealed(key: bytes, topic: str, role: Role, record: bytes) -> bytes:
    """Authenticate and decrypt; DecryptionError on any mismatch or tampering."""
    if len(record) < OVERHEAD or record[0] != MAGIC or record[1] != VERSION or type(record) is not bytes or \
            len(key) != KEY_SIZE or type(key) is not bytes or (role is not _VALUE and role is not _KEY):
        record = _checked(key, role, record)  # raises the defined error, or gives bytes
    opened = _aead.selected.decrypt(key, record[2:HEADER_SIZE], record[:10] + role + topic.encode(), record,
                                    HEADER_SIZE)
    if opened is None:
        raise DecryptionError(_NO_AUTH)
    return opened


# ------------------------------------------------------------------------------ the reference
def reference_seal(key_id: bytes, key: bytes, topic: str, role: Role, plaintext: bytes, random: bytes) -> bytes:
    """The record format in its plainest form, with ``nacl.bindings`` and the 16 random bytes given.

    For vectors, other implementations and tests; :class:`Sealer` must give the same bytes.
    """
    if len(key) != KEY_SIZE or len(key_id) != KEY_ID_SIZE or len(random) != RANDOM_SIZE or \
            (role is not _VALUE and role is not _KEY):
        raise CryptoError("a data key is 32 bytes, its id 8 bytes and the random part 16 bytes")
    header = _PREFIX + key_id + random
    aad = _aad(header[:10], role, topic)
    return header + _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(bytes(plaintext), aad, header[2:], key)


def reference_open(key: bytes, topic: str, role: Role, record: bytes) -> bytes:
    """What :func:`open_sealed` returns, computed with ``nacl.bindings`` only."""
    import nacl.exceptions

    record = _checked(key, role, record)
    try:
        return _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            record[HEADER_SIZE:], _aad(record[:10], role, topic), record[2:HEADER_SIZE], key)
    except nacl.exceptions.CryptoError:
        raise DecryptionError(_NO_AUTH) from None
