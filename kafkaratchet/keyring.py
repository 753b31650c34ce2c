"""The data keys a node can open records with.

Two kinds live here: keys received from producers (memory only: a restarted
consumer asks again), and the node's own producer keys of past epochs, kept so
late consumers can still be answered. The own archive is written to
``<node>.keys``, sealed under a key derived from the node's identity, and keys
older than the maximum age are erased from memory and disk (crypto-shredding).

Archive file: ``"KRKA" | 0x01 | nonce (24) | XChaCha20-Poly1305(msgpack [[root, key id,
key, created], ...])`` with the first five bytes as associated data.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import nacl.bindings as sodium
import nacl.exceptions

from . import wire
from .errors import ConfigError, FormatError
from .ratchet import KEY_ID_SIZE, KEY_SIZE, DataKey
from .secretfile import read_secret, write_atomic

__all__ = ["KeyRing"]

log = logging.getLogger(__name__)

_ARCHIVE_HEADER = b"KRKA\x01"
_NONCE = 24
_MAX_ARCHIVE = 16 << 20


class KeyRing:
    """Thread-safe map of (root, key id) to key; lookups are lock-free dict reads."""

    def __init__(self, archive_path: Path | None = None, archive_key: bytes | None = None) -> None:
        self._received: dict[tuple[str, bytes], bytes] = {}
        self._own: dict[tuple[str, bytes], DataKey] = {}
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._archive_path = archive_path
        self._archive_key = archive_key
        if archive_path is not None and archive_path.exists():
            for key in self._load_archive():
                self._own[(key.root, key.key_id)] = key

    # -- lookups -------------------------------------------------------------------------------
    def get(self, root: str, key_id: bytes) -> bytes | None:
        found = self._received.get((root, key_id))
        if found is not None:
            return found
        own = self._own.get((root, key_id))
        return own.key if own is not None else None

    def own(self, root: str, key_ids: Iterable[bytes]) -> list[DataKey]:
        """Own keys for ``root`` among ``key_ids`` (all of this root's when ``key_ids`` is empty)."""
        wanted = set(key_ids)
        return [k for (r, kid), k in list(self._own.items()) if r == root and (not wanted or kid in wanted)]

    def own_keys(self) -> list[DataKey]:
        return list(self._own.values())

    def received_count(self) -> int:
        return len(self._received)

    # -- updates -------------------------------------------------------------------------------
    def add_received(self, root: str, key_id: bytes, key: bytes) -> bool:
        if len(key_id) != KEY_ID_SIZE or len(key) != KEY_SIZE:
            raise FormatError("received key has the wrong size")
        with self._lock:
            new = (root, key_id) not in self._received
            self._received[(root, key_id)] = key
        return new

    def add_own(self, key: DataKey) -> None:
        with self._lock:
            self._own[(key.root, key.key_id)] = key

    def expire(self, max_age: float, *, now: float | None = None, keep: Iterable[bytes] = ()) -> int:
        """Erase own keys created more than ``max_age`` seconds ago (except those in ``keep``)."""
        cutoff = (time.time() if now is None else now) - max_age
        keep_ids = set(keep)
        with self._lock:
            old = [slot for slot, key in self._own.items() if key.created < cutoff and key.key_id not in keep_ids]
            for slot in old:
                del self._own[slot]
        if old:
            log.info("erased %d producer key(s) older than %.0f s", len(old), max_age)
            self.persist()
        return len(old)

    # -- the sealed archive --------------------------------------------------------------------
    def persist(self) -> None:
        """Write the own keys to the sealed archive, atomically (no-op without an archive)."""
        if self._archive_path is None or self._archive_key is None:
            return
        with self._persist_lock:  # serialised, so the last rename always carries the newest snapshot
            with self._lock:
                entries = [[k.root, k.key_id, k.key, int(k.created)] for k in self._own.values()]
            nonce = os.urandom(_NONCE)
            sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
                wire.pack(entries), _ARCHIVE_HEADER, nonce, self._archive_key)
            write_atomic(self._archive_path, _ARCHIVE_HEADER + nonce + sealed)

    def _load_archive(self) -> list[DataKey]:
        assert self._archive_path is not None
        if self._archive_key is None:
            raise ConfigError("a key archive exists but no key to open it")
        data = read_secret(self._archive_path, max_size=_MAX_ARCHIVE)
        if not data.startswith(_ARCHIVE_HEADER) or len(data) < len(_ARCHIVE_HEADER) + _NONCE + 16:
            raise ConfigError(f"{self._archive_path} is not a kafkaratchet key archive")
        nonce = data[len(_ARCHIVE_HEADER):len(_ARCHIVE_HEADER) + _NONCE]
        try:
            plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                data[len(_ARCHIVE_HEADER) + _NONCE:], _ARCHIVE_HEADER, nonce, self._archive_key)
        except nacl.exceptions.CryptoError:
            raise ConfigError(f"{self._archive_path} does not open under this node's identity") from None
        keys = []
        try:
            for item in wire.expect_list(wire.unpack(plain, max_size=_MAX_ARCHIVE), "archive"):
                root, kid, key, created = wire.expect_list(item, "archive entry", size=4)
                keys.append(DataKey(key_id=wire.expect_bytes(kid, "key id", size=KEY_ID_SIZE),
                                    key=wire.expect_bytes(key, "key", size=KEY_SIZE),
                                    root=wire.expect(root, str, "root"),
                                    created=float(wire.expect_int(created, "created", lo=0))))
        except FormatError as exc:
            raise ConfigError(f"{self._archive_path} is corrupt: {exc}") from None
        return keys

    def __repr__(self) -> str:
        return f"KeyRing(own={len(self._own)}, received={len(self._received)})"
