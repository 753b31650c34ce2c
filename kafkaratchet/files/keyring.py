"""The data keys a node can open records with.

Two kinds live here: keys received from producers (memory only: a restarted
consumer asks again), and the node's own producer keys of past epochs, kept so
late consumers can still be answered. The own archive is written to
``<node>.keys``, sealed under a key derived from the node's identity, and keys
older than the maximum age are erased from memory and disk (crypto-shredding).

Archive file: ``"KRKA" | 0x01 | nonce (24) | XChaCha20-Poly1305(msgpack [[root, key id,
key, created], ...])`` with the first five bytes as associated data.

The own keys are bounded: at most :data:`MAX_OWN_KEYS_PER_ROOT` (4,096) per root
and :data:`MAX_OWN_KEYS` (16,384) in all, and a root is at most
:data:`MAX_ROOT_BYTES` (249) bytes of UTF-8, Kafka's limit on a topic name. A
ratchet step adds one key per root that seals again, and denylist entries can
force a step a second (node.py ``_bite``), so without a bound a week of that
would archive 600,000 keys per root, past what the archive may be read back
(``_MAX_ARCHIVE``, 16 MiB): the producer could not restart. An entry is at most
305 bytes, so an archive at the bound is at most 4,997,170 bytes (4.8 MiB, 30% of
the read limit), whatever the root names. When a new key would pass a bound, the
oldest keys (first archived) of that root, or of the root holding the most keys
when the total is passed, are erased before ``key_max_age`` (from memory at once,
from disk at the archive's next write, which every step makes): never a root's
newest key (the one it seals with), and never silently (a WARNING with counts
per root, at most once a minute; erasures in between are summed into the next
line). Consumers that fall more than that many steps behind cannot get those
keys any more. A root beyond the 16,384th, or longer than 249 bytes, is refused
(KafkaRatchetError) rather than break the bound.
"""

from __future__ import annotations

import collections
import heapq
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import nacl.bindings as sodium
import nacl.exceptions

from kafkaratchet.errors import ConfigError, FormatError, KafkaRatchetError
from kafkaratchet.files.secretfile import read_secret, write_atomic
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.ratchet import KEY_ID_SIZE, KEY_SIZE, DataKey

__all__ = [
    "KeyRing", "MAX_ARCHIVE_AT_BOUND", "MAX_ENTRY_SIZE", "MAX_OWN_KEYS", "MAX_OWN_KEYS_PER_ROOT", "MAX_ROOT_BYTES",
]

log = logging.getLogger(__name__)

_ARCHIVE_HEADER = b"KRKA\x01"
_NONCE = 24
_TAG = 16

#: own keys kept per root: 68 minutes of forced steps at one a second; a step every 5 minutes for 7 days
MAX_OWN_KEYS_PER_ROOT = 4096
#: own keys kept in all: about 2,000 roots at the default one step a day for 7 days
MAX_OWN_KEYS = 16_384
#: a root's length in UTF-8 bytes: Kafka topic names have at most 249 characters, all of them ASCII
MAX_ROOT_BYTES = 249
#: one archive entry at its largest: fixarray, str8 root, bin8 key id, bin8 key, uint64 created
MAX_ENTRY_SIZE = 1 + (2 + MAX_ROOT_BYTES) + (2 + KEY_ID_SIZE) + (2 + KEY_SIZE) + 9
#: the largest archive the bounds allow: header, nonce, array32 of the entries, tag (4,997,170 bytes)
MAX_ARCHIVE_AT_BOUND = len(_ARCHIVE_HEADER) + _NONCE + 5 + MAX_OWN_KEYS * MAX_ENTRY_SIZE + _TAG
#: the read limit of the archive file: more than three times an archive at the bound
_MAX_ARCHIVE = 16 << 20
#: seconds between WARNING lines about keys erased early to stay within the bounds
_DROP_LOG_INTERVAL = 60.0


class KeyRing:
    """Thread-safe map of (root, key id) to key; lookups are lock-free dict reads."""

    def __init__(self, archive_path: Path | None = None, archive_key: bytes | None = None) -> None:
        self._received: dict[tuple[str, bytes], bytes] = {}
        self._own: dict[tuple[str, bytes], DataKey] = {}
        # per root, its own key ids in the order they were archived: oldest first, the newest (sealing) last
        self._by_root: dict[str, collections.OrderedDict[bytes, None]] = {}
        self._dropped: collections.Counter[str] = collections.Counter()  # erased early, not yet logged
        self._last_drop_log = float("-inf")
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._archive_path = archive_path
        self._archive_key = archive_key
        if archive_path is not None and archive_path.exists():
            loaded = self._load_archive()
            with self._lock:
                for key in loaded:
                    if len(key.root.encode("utf-8")) > MAX_ROOT_BYTES or (
                            key.root not in self._by_root and len(self._by_root) >= MAX_OWN_KEYS):
                        self._dropped[key.root] += 1  # no consumer could ask for it / past the bound
                        continue
                    self._insert(key)
                for root in list(self._by_root):
                    self._trim_root(root)
                self._trim_total()
            self._log_drops()

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
        """Archive ``key`` as its root's newest own key; older keys past a bound are erased (logged).

        KafkaRatchetError for a root longer than :data:`MAX_ROOT_BYTES` or beyond the
        :data:`MAX_OWN_KEYS`-th root: each root keeps at least its newest key, so more roots
        than that cannot fit the bound.
        """
        if len(key.root.encode("utf-8")) > MAX_ROOT_BYTES:
            raise KafkaRatchetError(f"a root topic of {len(key.root.encode('utf-8'))} bytes: Kafka topic names "
                                    f"have at most {MAX_ROOT_BYTES}")
        with self._lock:
            if key.root not in self._by_root and len(self._by_root) >= MAX_OWN_KEYS:
                raise KafkaRatchetError(f"this producer already seals for {MAX_OWN_KEYS} root topics, as many as "
                                        "its key archive holds")
            self._insert(key)
            dropped = self._trim_root(key.root) + self._trim_total()
        if dropped:
            self._log_drops()

    def _insert(self, key: DataKey) -> None:
        self._own[(key.root, key.key_id)] = key
        ids = self._by_root.setdefault(key.root, collections.OrderedDict())
        ids[key.key_id] = None
        ids.move_to_end(key.key_id)  # added again (a restart re-adds the sealing key): the newest again

    def _discard(self, root: str, key_id: bytes) -> None:
        del self._own[(root, key_id)]
        ids = self._by_root[root]
        del ids[key_id]
        if not ids:
            del self._by_root[root]

    def _drop_oldest(self, root: str) -> bool:
        """Erase the oldest key of ``root``, never its newest; False if it holds only that one."""
        ids = self._by_root[root]
        if len(ids) < 2:
            return False
        key_id, _ = ids.popitem(last=False)
        del self._own[(root, key_id)]
        self._dropped[root] += 1
        return True

    def _trim_root(self, root: str) -> int:
        dropped = 0
        while len(self._by_root.get(root, ())) > MAX_OWN_KEYS_PER_ROOT and self._drop_oldest(root):
            dropped += 1
        return dropped

    def _trim_total(self) -> int:
        """Past the total bound, erase from the roots holding the most keys: the roots that step often pay."""
        excess = len(self._own) - MAX_OWN_KEYS
        if excess <= 0:
            return 0
        heap = [(-len(ids), root) for root, ids in self._by_root.items() if len(ids) > 1]
        heapq.heapify(heap)
        dropped = 0
        while dropped < excess and heap:
            _, root = heapq.heappop(heap)
            if self._drop_oldest(root):
                dropped += 1
            if len(self._by_root.get(root, ())) > 1:
                heapq.heappush(heap, (-len(self._by_root[root]), root))
        return dropped

    def _log_drops(self, *, now: float | None = None) -> None:
        """Report the keys erased early: at once after a quiet minute, then at most once a minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self._dropped or now - self._last_drop_log < _DROP_LOG_INTERVAL:
                return
            dropped, self._dropped = self._dropped, collections.Counter()
            self._last_drop_log = now
        worst = ", ".join(f"{root}: {count}" for root, count in dropped.most_common(5))
        more = f" and {len(dropped) - 5} more root(s)" if len(dropped) > 5 else ""
        log.warning("erased %d producer key(s) before their maximum age to keep the key archive within its bound "
                    "(%d keys per root, %d in all; a root's newest key is always kept) (%s%s); consumers that "
                    "far behind can no longer get them", sum(dropped.values()), MAX_OWN_KEYS_PER_ROOT,
                    MAX_OWN_KEYS, worst, more)

    def expire(self, max_age: float, *, now: float | None = None, keep: Iterable[bytes] = ()) -> int:
        """Erase own keys created more than ``max_age`` seconds ago (except those in ``keep``)."""
        cutoff = (time.time() if now is None else now) - max_age
        keep_ids = set(keep)
        with self._lock:
            old = [slot for slot, key in self._own.items() if key.created < cutoff and key.key_id not in keep_ids]
            for root, key_id in old:
                self._discard(root, key_id)
        self._log_drops()  # called every second by the node: erasures summed up for a minute get reported
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
