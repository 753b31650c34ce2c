"""The AEAD engine behind sealed records: XChaCha20-Poly1305, and how cheaply it is called.

:mod:`kafkaratchet.protocol.records` owns the record format; this module owns how one
record's AEAD call is made, which is where the per-record time goes (see
docs/performance.md). Two engines exist today, both calling the libsodium that
PyNaCl ships, and both give byte-for-byte the same output:

* ``"fast"``: below :data:`GIL_RELEASE_THRESHOLD` bytes libsodium is called through
  ``ctypes.PyDLL``, which keeps the GIL (inside a Kafka client every release of the
  GIL hands it to the client's network thread, and getting it back costs more than
  the cryptography). Larger records go through PyNaCl's cffi module, which releases
  the GIL so threads seal large records in parallel. Output is written into pooled
  scratch buffers (:class:`ScratchPool`) and copied out once; records of
  :data:`POOLED_LIMIT` bytes or more get a fresh buffer.
* ``"plain"``: ``nacl.bindings`` (PyNaCl's checked API), no ctypes. Slower for
  small records, but nothing beyond PyNaCl's own public API.

``KAFKARATCHET_ENGINE=fast|plain`` selects one; by default ``fast``. The fast
engine is built, and checked against ``nacl.bindings`` by a self-test, on first
use, never at import: if it cannot be loaded or the self-test fails, ``plain``
is used and one warning is logged. Tests and benchmarks switch engines at
run time with :func:`use_engine`.

An engine is anything with a ``name`` and the two calls of :class:`Engine`, so a
compiled engine can be added later as one more entry in :data:`_FACTORIES`.

The random half of every nonce comes from :class:`NonceSource` (one per process,
:data:`NONCES`), whatever the engine.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import nacl.bindings as _sodium  # initialises libsodium (sodium_init) before any call below

from kafkaratchet.errors import CryptoError

__all__ = ["Engine", "NonceSource", "ScratchPool", "NONCES", "ENGINES", "ENV_VAR", "engine", "use_engine",
           "selected", "GIL_RELEASE_THRESHOLD", "POOLED_LIMIT", "TAG_SIZE", "KEY_SIZE", "NONCE_SIZE"]

log = logging.getLogger(__name__)

KEY_SIZE: int = _sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
NONCE_SIZE: int = _sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_SIZE: int = _sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES

#: records (plaintext bytes) at least this long are processed with the GIL released (fast engine)
GIL_RELEASE_THRESHOLD = 8192
#: records (plaintext bytes) below this size are written into pooled buffers, larger ones into fresh ones
POOLED_LIMIT = 64 * 1024

ENV_VAR = "KAFKARATCHET_ENGINE"
#: the engines that exist, the default first
ENGINES = ("fast", "plain")


class Engine(Protocol):
    """One AEAD implementation. The caller (:mod:`kafkaratchet.protocol.records`) has already checked the
    types and sizes: ``key`` is 32 bytes, ``nonce`` 24 bytes, every argument is ``bytes``, and
    ``data[start:]`` holds at least a tag.
    """

    name: str

    def encrypt(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, prefix: bytes) -> bytes:
        """``prefix`` followed by the ciphertext and tag (one allocation: the prefix is the record header)."""
        ...

    def decrypt(self, key: bytes, nonce: bytes, aad: bytes, data: bytes, start: int) -> bytes | None:
        """The plaintext of the ciphertext and tag in ``data[start:]``, or None if it does not authenticate."""
        ...


# ------------------------------------------------------------------------------ nonce randomness
class NonceSource:
    """16-byte random pieces from the OS CSPRNG, fetched a block at a time, each handed out once.

    ``os.getrandom`` keeps the GIL (``os.urandom`` releases it on every call), and a block serves 256 records.
    Uniqueness rests on two things: :attr:`take` is ``deque.popleft`` (atomic under the GIL, so no two threads
    get the same piece), and a forked child drops the pieces it inherited (``os.register_at_fork``), so parent
    and child never hand out the same piece.

    Hot-path use: ``try: piece = source.take() except IndexError: piece = source.refill()``.
    """

    PIECE = 16
    BLOCK = 4096

    def __init__(self) -> None:
        self._pieces: collections.deque[bytes] = collections.deque()
        #: the next piece; raises IndexError when the pool is empty (then call :meth:`refill`)
        self.take: Callable[[], bytes] = self._pieces.popleft
        self._os_random: Callable[[int], bytes] = os.getrandom if _getrandom_works() else os.urandom
        if hasattr(os, "register_at_fork"):
            pieces = weakref.ref(self._pieces)
            os.register_at_fork(after_in_child=lambda: _clear(pieces))

    def _fetch(self, size: int) -> bytes:
        data = self._os_random(size)
        while len(data) < size:  # getrandom may return short reads above 256 bytes when a signal arrives
            data += self._os_random(size - len(data))
        return data

    def refill(self) -> bytes:
        """One piece now, and the rest of a fresh block for the calls after it."""
        block, step = self._fetch(self.BLOCK), self.PIECE
        self._pieces.extend([block[i:i + step] for i in range(step, self.BLOCK, step)])
        return block[:step]

    def piece(self) -> bytes:
        """One piece (the convenient form of the hot-path idiom above)."""
        try:
            return self.take()
        except IndexError:
            return self.refill()

    def __len__(self) -> int:
        return len(self._pieces)


def _clear(pieces: weakref.ref[collections.deque[bytes]]) -> None:
    pool = pieces()
    if pool is not None:
        pool.clear()


def _getrandom_works() -> bool:
    try:
        return len(os.getrandom(NonceSource.PIECE)) == NonceSource.PIECE
    except (AttributeError, OSError):  # not Linux, or a kernel without the system call
        return False


#: the process's nonce source, used by every Sealer
NONCES = NonceSource()


# ------------------------------------------------------------------------------ output buffers
class ScratchPool:
    """Reusable output buffers, one per concurrent call.

    A buffer is taken with ``list.pop`` and given back with ``list.append`` (both atomic under the GIL), so each
    is used by one call at a time, whatever the threads; the pool only ever holds as many buffers as calls once
    ran at the same time (at most ``limit`` are kept). Hot-path use: ``free.pop()`` (IndexError: :meth:`new`),
    and ``if len(free) < limit: free.append(buffer)``.
    """

    def __init__(self, new: Callable[[], Any], limit: int = 64) -> None:
        self.new = new
        self.limit = limit
        self.free: list[Any] = []

    def take(self) -> Any:
        try:
            return self.free.pop()
        except IndexError:
            return self.new()

    def give(self, buffer: Any) -> None:
        if len(self.free) < self.limit:
            self.free.append(buffer)


# ------------------------------------------------------------------------------ the engines
class PlainEngine:
    """PyNaCl's checked ``nacl.bindings`` calls: no ctypes, no pools (releases the GIL on every call)."""

    name = "plain"

    def __init__(self) -> None:
        import nacl.exceptions

        encrypt = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt
        decrypt = _sodium.crypto_aead_xchacha20poly1305_ietf_decrypt
        failure = nacl.exceptions.CryptoError

        def seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, prefix: bytes) -> bytes:
            return prefix + encrypt(plaintext, aad, nonce, key)

        def open_(key: bytes, nonce: bytes, aad: bytes, data: bytes, start: int) -> bytes | None:
            try:
                return decrypt(data[start:], aad, nonce, key)
            except failure:
                return None

        self.encrypt = seal
        self.decrypt = open_


class FastEngine:
    """GIL-holding ctypes below :data:`GIL_RELEASE_THRESHOLD`, GIL-releasing cffi above, pooled output buffers.

    Raises CryptoError when libsodium cannot be loaded through ctypes. Build it through :func:`engine`, which
    also runs the self-test.
    """

    name = "fast"

    def __init__(self) -> None:
        import ctypes

        from nacl._sodium import ffi, lib  # PyNaCl's cffi module, untyped

        try:
            from nacl import _sodium as module

            dll = ctypes.PyDLL(module.__file__)  # a PyDLL call keeps the GIL
            small_encrypt = dll.crypto_aead_xchacha20poly1305_ietf_encrypt
            small_decrypt = dll.crypto_aead_xchacha20poly1305_ietf_decrypt
        except (OSError, AttributeError, ImportError) as e:  # no loadable library file, or symbols not exported
            raise CryptoError(f"libsodium cannot be loaded through ctypes: {e}") from None
        addr, data, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong
        # (c, clen_p, m, mlen, ad, adlen, nsec, npub, k) and (m, mlen_p, nsec, c, clen, ad, adlen, npub, k)
        small_encrypt.argtypes = [addr, addr, data, size, data, size, addr, data, data]
        small_decrypt.argtypes = [addr, addr, addr, data, size, data, size, data, data]
        small_encrypt.restype = small_decrypt.restype = ctypes.c_int

        null = ffi.NULL
        cffi_encrypt = lib.crypto_aead_xchacha20poly1305_ietf_encrypt
        cffi_decrypt = lib.crypto_aead_xchacha20poly1305_ietf_decrypt
        from_buffer, memmove, cbuffer = ffi.from_buffer, ffi.memmove, ffi.buffer
        alloc = ffi.new_allocator(should_clear_after_alloc=False)
        scratch_size = POOLED_LIMIT + TAG_SIZE

        class Scratch:
            """A reusable buffer libsodium writes into; the result is copied out of it once."""

            __slots__ = ("address", "cdata", "view", "_buffer")

            def __init__(self) -> None:
                self._buffer = ctypes.create_string_buffer(scratch_size)
                self.address = ctypes.addressof(self._buffer)  # for the GIL-holding ctypes calls
                self.cdata = from_buffer("unsigned char[]", self._buffer)  # for the cffi calls
                self.view = memoryview(self._buffer).cast("B")

        self.scratch = pool = ScratchPool(Scratch)
        free, new, keep = pool.free, Scratch, pool.limit
        take, give = free.pop, free.append

        # The calls below 8 KiB are the hot path: they read few closure cells (each is copied per call) and the
        # size limits as module constants; the GIL-releasing paths for larger records are separate functions.
        def seal_large(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, prefix: bytes) -> bytes:
            size = len(plaintext)
            if size >= POOLED_LIMIT:  # libsodium writes behind the prefix in a fresh cffi buffer
                start = len(prefix)
                out = alloc("unsigned char[]", start + size + TAG_SIZE)
                memmove(out, prefix, start)
                if cffi_encrypt(out + start, null, plaintext, size, aad, len(aad), null, nonce, key):
                    raise CryptoError("encryption failed")
                return cbuffer(out)[:]  # type: ignore[no-any-return]
            scratch = pool.take()
            if cffi_encrypt(scratch.cdata, null, plaintext, size, aad, len(aad), null, nonce, key):  # GIL released
                raise CryptoError("encryption failed")  # the buffer is dropped, not returned to the pool
            sealed: bytes = prefix + scratch.view[:size + TAG_SIZE]
            pool.give(scratch)
            return sealed

        def seal(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, prefix: bytes) -> bytes:
            size = len(plaintext)
            if size >= GIL_RELEASE_THRESHOLD:
                return seal_large(key, nonce, aad, plaintext, prefix)
            try:
                scratch = take()
            except IndexError:
                scratch = new()
            if small_encrypt(scratch.address, None, plaintext, size, aad, len(aad), None, nonce, key):
                raise CryptoError("encryption failed")
            sealed: bytes = prefix + scratch.view[:size + TAG_SIZE]
            if len(free) < keep:
                give(scratch)
            return sealed

        def open_large(key: bytes, nonce: bytes, aad: bytes, data: bytes, start: int) -> bytes | None:
            sealed_size = len(data) - start
            size = sealed_size - TAG_SIZE
            source = from_buffer("unsigned char[]", data) + start  # the ciphertext is read in place
            if size >= POOLED_LIMIT:  # the plaintext is copied out once
                out = alloc("unsigned char[]", size)
                if cffi_decrypt(out, null, null, source, sealed_size, aad, len(aad), nonce, key):
                    return None
                return cbuffer(out, size)[:]  # type: ignore[no-any-return]
            scratch = pool.take()
            failed = cffi_decrypt(scratch.cdata, null, null, source, sealed_size, aad, len(aad), nonce, key)
            opened = None if failed else scratch.view[:size].tobytes()
            pool.give(scratch)
            return opened

        def open_(key: bytes, nonce: bytes, aad: bytes, data: bytes, start: int) -> bytes | None:
            sealed_size = len(data) - start
            if sealed_size >= GIL_RELEASE_THRESHOLD + TAG_SIZE:
                return open_large(key, nonce, aad, data, start)
            try:
                scratch = take()
            except IndexError:
                scratch = new()
            failed = small_decrypt(scratch.address, None, None, data[start:], sealed_size, aad, len(aad), nonce, key)
            opened = None if failed else scratch.view[:sealed_size - TAG_SIZE].tobytes()
            if len(free) < keep:
                give(scratch)
            return opened

        self.encrypt = seal
        self.decrypt = open_


_FACTORIES: dict[str, Callable[[], Engine]] = {"fast": FastEngine, "plain": PlainEngine}
assert tuple(_FACTORIES) == ENGINES


def self_test(candidate: Engine) -> bool:
    """The engine gives ``nacl.bindings``' bytes and opens them, on every size path, and refuses a forgery."""
    key, aad = bytes(range(32)), b"\xc1\x01self.test"
    for size in (0, 1, 100, GIL_RELEASE_THRESHOLD - 1, GIL_RELEASE_THRESHOLD + 1, POOLED_LIMIT - 1, POOLED_LIMIT):
        message = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        nonce = bytes([size % 251]) * NONCE_SIZE
        expected = _sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, nonce, key)
        record = candidate.encrypt(key, nonce, aad, message, b"head")
        if record != b"head" + expected or candidate.decrypt(key, nonce, aad, record, 4) != message:
            return False
        if candidate.decrypt(key, nonce, aad + b"!", record, 4) is not None:
            return False
    return True


# ------------------------------------------------------------------------------ selection
_built: dict[str, Engine] = {}
_building = threading.RLock()  # concurrent first calls choose, build and self-test an engine once


def engine(name: str | None = None) -> Engine:
    """The engine called ``name`` (built and self-tested once), or the selected one when ``name`` is None.

    CryptoError if the named engine does not exist, cannot be loaded here, or fails its self-test.
    """
    global selected
    if name is None:
        if isinstance(selected, _Unselected):
            with _building:
                if isinstance(selected, _Unselected):
                    selected = _choose()
        return selected
    built = _built.get(name)
    if built is not None:
        return built
    factory = _FACTORIES.get(name)
    if factory is None:
        raise CryptoError(f"unknown AEAD engine {name!r} (known: {', '.join(ENGINES)})")
    with _building:
        built = _built.get(name)
        if built is None:
            built = factory()
            if name != "plain" and not self_test(built):
                raise CryptoError(f"the {name} AEAD engine fails its self-test against nacl.bindings")
            _built[name] = built
    return built


def _choose() -> Engine:
    wanted = os.environ.get(ENV_VAR, "").strip().lower() or ENGINES[0]
    if wanted not in _FACTORIES:
        log.warning("%s=%r is not one of %s; using %s", ENV_VAR, wanted, "|".join(ENGINES), ENGINES[0])
        wanted = ENGINES[0]
    try:
        return engine(wanted)
    except CryptoError as e:
        log.warning("AEAD engine %r unavailable (%s); using the plain PyNaCl engine", wanted, e)
        return engine("plain")


@contextlib.contextmanager
def use_engine(name: str) -> Iterator[Engine]:
    """For tests and benchmarks: make ``name`` the selected engine inside the block, then restore the previous one.

    Sealers keep the engine they were built with; ``open_sealed`` uses the one selected at the time of the call.
    Not meant for production code, which selects with ``KAFKARATCHET_ENGINE``.
    """
    global selected
    chosen = engine(name)
    previous, selected = selected, chosen
    try:
        yield chosen
    finally:
        selected = previous


class _Unselected:
    """Stands in for the engine until the first call, which chooses (and self-tests) it."""

    name = "unselected"

    def encrypt(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, prefix: bytes) -> bytes:
        return engine().encrypt(key, nonce, aad, plaintext, prefix)

    def decrypt(self, key: bytes, nonce: bytes, aad: bytes, data: bytes, start: int) -> bytes | None:
        return engine().decrypt(key, nonce, aad, data, start)


#: the engine in use; read it as ``_aead.selected`` at each call (it is replaced, never changed in place)
selected: Engine = _Unselected()
