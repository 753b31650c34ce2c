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

How the hot path is kept cheap (every Kafka key and value goes through it, and
inside a Kafka client each Python-level step costs several times what it costs
in a tight loop, so the steps are few):

* libsodium is called directly, once per record, without PyNaCl's Python-level
  argument checks (the sizes that matter for memory safety are checked here).
* The GIL. Inside a Kafka client every release of the GIL hands it to the
  client's network thread, and getting it back costs far more than the
  cryptography (the producer then also sends smaller batches). So a record
  below :data:`GIL_RELEASE_THRESHOLD` bytes is sealed and opened *holding* the
  GIL, through ``ctypes.PyDLL`` on the libsodium that PyNaCl ships (a PyDLL call
  keeps the GIL); a larger record goes through PyNaCl's cffi module, which
  releases the GIL, so several threads seal large records in parallel.
* The 16 random bytes of each record come from the OS CSPRNG (``getrandom``,
  which keeps the GIL), fetched 4 KiB at a time rather than with one system
  call per record. Each 16-byte piece is handed out once (``deque.popleft`` is
  atomic) and a forked child discards the parent's unused pieces, so no two
  records share them.
* What is fixed per key, topic and role (the header prefix and the associated
  data) is built once, by a :class:`Sealer` the node keeps while the key is current.
* Output is written by libsodium into a reusable scratch buffer (a pool, one
  buffer per concurrent call) and copied once into the returned ``bytes``:
  no buffer is allocated or zeroed per record, and immutable objects are never
  written to.
"""

from __future__ import annotations

import collections
import ctypes
import enum
import os
from typing import Any

import nacl.bindings  # noqa: F401  # initialises libsodium (sodium_init) before any call below
from nacl._sodium import ffi as _ffi
from nacl._sodium import lib as _lib

from .errors import CryptoError, DecryptionError, NotARecordError, UnsupportedVersionError

__all__ = ["Role", "Sealer", "seal", "open_sealed", "key_id_of", "is_sealed", "MAGIC", "VERSION", "OVERHEAD",
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

#: records (plaintext bytes) at least this long are processed with the GIL released
GIL_RELEASE_THRESHOLD = 8192


class Role(bytes, enum.Enum):
    """Which half of a Kafka record a sealed blob belongs to."""

    KEY = b"K"
    VALUE = b"V"


# ------------------------------------------------------------------------------ random nonce parts
_RANDOM_BLOCK = 4096
_randoms: collections.deque[bytes] = collections.deque()
_next_random = _randoms.popleft


def _getrandom_works() -> bool:
    try:
        return len(os.getrandom(RANDOM_SIZE)) == RANDOM_SIZE
    except (AttributeError, OSError):  # not Linux, or a kernel without the system call
        return False


# os.getrandom keeps the GIL during its system call; os.urandom releases it
_os_random = os.getrandom if _getrandom_works() else os.urandom


def _fetch(size: int) -> bytes:
    data = _os_random(size)
    while len(data) < size:  # getrandom may return short reads above 256 bytes when a signal arrives
        data += _os_random(size - len(data))
    return data


def _refill() -> bytes:
    """One piece now, and the rest of a fresh block for the records after it (``seal`` pops them)."""
    block = _fetch(_RANDOM_BLOCK)
    _randoms.extend([block[i:i + RANDOM_SIZE] for i in range(RANDOM_SIZE, _RANDOM_BLOCK, RANDOM_SIZE)])
    return block[:RANDOM_SIZE]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_randoms.clear)


# ------------------------------------------------------------------------------ libsodium bindings
_NULL = _ffi.NULL
_cffi_encrypt = _lib.crypto_aead_xchacha20poly1305_ietf_encrypt
_cffi_decrypt = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt
_memmove = _ffi.memmove
_alloc = _ffi.new_allocator(should_clear_after_alloc=False)


def _gil_holding_aead() -> tuple[Any, Any]:
    """libsodium's two AEAD calls through ``ctypes.PyDLL`` (which keeps the GIL), or (None, None)."""
    try:
        from nacl import _sodium

        dll = ctypes.PyDLL(_sodium.__file__)
        encrypt = dll.crypto_aead_xchacha20poly1305_ietf_encrypt
        decrypt = dll.crypto_aead_xchacha20poly1305_ietf_decrypt
    except (OSError, AttributeError, ImportError):  # no loadable library file, or symbols not exported
        return None, None
    addr, data, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong
    # (c, clen_p, m, mlen, ad, adlen, nsec, npub, k) and (m, mlen_p, nsec, c, clen, ad, adlen, npub, k)
    encrypt.argtypes = [addr, addr, data, size, data, size, addr, data, data]
    decrypt.argtypes = [addr, addr, addr, data, size, data, size, data, data]
    encrypt.restype = decrypt.restype = ctypes.c_int
    return encrypt, decrypt


_small_encrypt, _small_decrypt = _gil_holding_aead()


# ------------------------------------------------------------------------------ output buffers
#: records (plaintext bytes) below this size are written into pooled buffers, larger ones into fresh ones
POOLED_LIMIT = 64 * 1024
_SCRATCH_SIZE = POOLED_LIMIT + TAG_SIZE
_POOL_LIMIT = 64


class _Scratch:
    """A reusable buffer libsodium writes into; the result is copied out of it once."""

    __slots__ = ("address", "cdata", "view", "_buffer")

    def __init__(self) -> None:
        self._buffer = ctypes.create_string_buffer(_SCRATCH_SIZE)
        self.address = ctypes.addressof(self._buffer)  # for the GIL-holding ctypes calls
        self.cdata = _ffi.from_buffer("unsigned char[]", self._buffer)  # for the cffi calls
        self.view = memoryview(self._buffer).cast("B")


# A scratch buffer is taken with list.pop and given back with list.append (both atomic under the
# GIL), so each is used by one call at a time, whatever the threads; the pool only ever holds as
# many buffers as calls once ran at the same time (at most _POOL_LIMIT are kept).
_pool: list[_Scratch] = []
_take = _pool.pop
_give = _pool.append


def _scratch() -> _Scratch:
    try:
        return _take()
    except IndexError:
        return _Scratch()


def _release(scratch: _Scratch) -> None:
    if len(_pool) < _POOL_LIMIT:
        _give(scratch)


# ------------------------------------------------------------------------------ the format
class Sealer:
    """Seals records for one data key, topic and role: what is fixed per record is built once.

    The node keeps one per topic and role while a key is current, so sealing a record costs
    one random piece, one header, one libsodium call and one copy.
    """

    __slots__ = ("_prefix", "_aad", "_aad_size", "_key")

    def __init__(self, key_id: bytes, key: bytes, topic: str, role: Role) -> None:
        if type(key) is not bytes or type(key_id) is not bytes or len(key) != KEY_SIZE or \
                len(key_id) != KEY_ID_SIZE:
            raise CryptoError("a data key is 32 bytes and its id 8 bytes")
        if role is not _VALUE and role is not _KEY:
            raise CryptoError(f"role must be a Role, not {role!r}")
        self._prefix = _PREFIX + key_id
        self._aad = self._prefix + role + topic.encode()
        self._aad_size = len(self._aad)
        self._key = key

    def seal(self, plaintext: bytes) -> bytes:
        if type(plaintext) is not bytes:
            plaintext = bytes(plaintext)
        try:
            header = self._prefix + _next_random()
        except IndexError:
            header = self._prefix + _refill()
        size = len(plaintext)
        if size >= POOLED_LIMIT:
            return _seal_unpooled(header, self._aad, self._key, plaintext, size)
        scratch = _scratch()
        if size < _SMALL_LIMIT:
            failed = _small_encrypt(scratch.address, None, plaintext, size,  # type: ignore[misc]
                                    self._aad, self._aad_size, None, header[2:], self._key)
        else:  # releases the GIL: other threads seal meanwhile
            failed = _cffi_encrypt(scratch.cdata, _NULL, plaintext, size, self._aad, self._aad_size, _NULL,
                                   header[2:], self._key)
        if failed:
            _release(scratch)
            raise CryptoError("encryption failed")
        sealed = header + scratch.view[:size + TAG_SIZE]
        _release(scratch)
        return sealed

    def __repr__(self) -> str:
        return "Sealer(<key withheld>)"


def seal(key_id: bytes, key: bytes, topic: str, role: Role, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` for ``topic`` and ``role`` under a data key (one record; see :class:`Sealer`)."""
    return Sealer(key_id, key, topic, role).seal(plaintext)


def _seal_unpooled(header: bytes, aad: bytes, key: bytes, plaintext: bytes, size: int) -> bytes:
    """Records larger than a scratch buffer: libsodium writes behind the header in a fresh cffi buffer."""
    out = _alloc("unsigned char[]", HEADER_SIZE + size + TAG_SIZE)
    _memmove(out, header, HEADER_SIZE)
    if _cffi_encrypt(out + HEADER_SIZE, _NULL, plaintext, size, aad, len(aad), _NULL, header[2:], key):
        raise CryptoError("encryption failed")
    return _ffi.buffer(out)[:]


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
    size = len(record)
    if size < OVERHEAD or record[0] != MAGIC:
        raise NotARecordError("not a kafkaratchet record")
    if record[1] != VERSION:
        raise UnsupportedVersionError(f"record format version {record[1]} is not supported")
    if len(key) != KEY_SIZE or type(key) is not bytes or (role is not _VALUE and role is not _KEY):
        raise DecryptionError(_NO_AUTH)
    if type(record) is not bytes:
        record = bytes(record)
    aad = record[:10] + role + topic.encode()
    plain_size = size - OVERHEAD
    if plain_size >= POOLED_LIMIT:
        return _open_unpooled(key, aad, record, size, plain_size)
    scratch = _scratch()
    if plain_size < _SMALL_LIMIT:
        failed = _small_decrypt(scratch.address, None, None, record[HEADER_SIZE:],  # type: ignore[misc]
                                size - HEADER_SIZE, aad, len(aad), record[2:HEADER_SIZE], key)
    else:  # releases the GIL; the ciphertext is read in place
        source = _ffi.from_buffer("unsigned char[]", record)
        failed = _cffi_decrypt(scratch.cdata, _NULL, _NULL, source + HEADER_SIZE, size - HEADER_SIZE, aad,
                               len(aad), source + 2, key)
    if failed:
        _release(scratch)
        raise DecryptionError(_NO_AUTH)
    opened = scratch.view[:plain_size].tobytes()
    _release(scratch)
    return opened


def _open_unpooled(key: bytes, aad: bytes, record: bytes, size: int, plain_size: int) -> bytes:
    """Records larger than a scratch buffer: the ciphertext is read in place, the plaintext copied out once."""
    source = _ffi.from_buffer("unsigned char[]", record)
    out = _alloc("unsigned char[]", plain_size)
    if _cffi_decrypt(out, _NULL, _NULL, source + HEADER_SIZE, size - HEADER_SIZE, aad, len(aad), source + 2, key):
        raise DecryptionError(_NO_AUTH)
    return _ffi.buffer(out, plain_size)[:]


_NO_AUTH = "record does not authenticate under this key, topic and role"
_KEY, _VALUE = Role.KEY, Role.VALUE


def _self_test() -> bool:
    """Both paths give PyNaCl's bytes and open each other's records (else: GIL-releasing path only)."""
    import nacl.bindings as sodium

    key, key_id = bytes(range(32)), bytes(range(8))
    for size in (0, 1, 100, GIL_RELEASE_THRESHOLD + 1, POOLED_LIMIT):
        message = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        record = seal(key_id, key, "self.test", Role.VALUE, message)
        aad = record[:10] + b"V" + b"self.test"
        expected = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, record[2:26], key)
        if record[HEADER_SIZE:] != expected or open_sealed(key, "self.test", Role.VALUE, record) != message:
            return False
    return True


_SMALL_LIMIT = 0
if _small_encrypt is not None:
    _SMALL_LIMIT = GIL_RELEASE_THRESHOLD
    if not _self_test():  # pragma: no cover - a libsodium that does not behave like PyNaCl's
        _SMALL_LIMIT = 0
