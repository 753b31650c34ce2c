"""The serializers' side of a node: one ``Sealer`` per topic and role, from the producer ratchet's keys.

Any number of producer threads call :meth:`Sealers.seal`; it takes no lock on the
hot path. The maps it reads are replaced, never changed in place, under
``Sealers``' own lock, which also serialises every use of the ratchet and of the
node's own keys in the ring. A sealer built from old keys while the keys step
lands in a discarded map, so no sealer outlives its key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.protocol.ratchet import DataKey
from kafkaratchet.protocol.records import Role, Sealer

__all__ = ["TopicRoots", "Sealers"]

_VALUE = Role.VALUE
_MAX_CACHED = 100_000


class TopicRoots:
    """A topic's root (``settings.root``), cached for up to 100k topics; safe from any thread."""

    __slots__ = ("known", "_root")

    def __init__(self, root: Callable[[str], str]) -> None:
        self.known: dict[str, str] = {}  # read without a call on the deserializers' hot path
        self._root = root

    def __call__(self, topic: str) -> str:
        root = self.known.get(topic)
        if root is None:
            root = self._root(topic)
            if len(self.known) < _MAX_CACHED:
                self.known[topic] = root
        return root


class Sealers:
    """Seals records (:class:`~kafkaratchet.node.contract.RecordSealer`) and steps the keys they use.

    ``on_new_root(root)`` is called, outside the lock, the first time this node seals for a root
    since it started: the exchange loop then answers requests for that root's keys.
    """

    def __init__(self, ratchet: Ratchet, ring: KeyRing, roots: TopicRoots,
                 on_new_root: Callable[[str], None]) -> None:
        self._ratchet = ratchet
        self._ring = ring
        self._roots = roots
        self._on_new_root = on_new_root
        self._lock = threading.RLock()
        self._keys: dict[str, DataKey] = {}  # root -> the key sealing now
        self._value_sealers: dict[str, Sealer] = {}
        self._key_sealers: dict[str, Sealer] = {}

    @property
    def epoch(self) -> int:
        """The producer ratchet's current epoch (it only ever grows)."""
        return self._ratchet.epoch

    def current_keys(self) -> list[DataKey]:
        """The keys sealing now, one per root sealed for since the last full step."""
        return list(self._keys.values())

    def seal(self, topic: str, role: Role, data: bytes) -> bytes:
        sealers = self._value_sealers if role is _VALUE else self._key_sealers
        sealer = sealers.get(topic)
        if sealer is None:
            sealer = self._new_sealer(sealers, topic, role)
        return sealer.seal(data)

    def _new_sealer(self, sealers: dict[str, Sealer], topic: str, role: Role) -> Sealer:
        root = self._roots(topic)
        key = self._keys.get(root)
        if key is None:
            key = self._first_seal(root)
        sealer = Sealer(key.key_id, key.key, topic, role)
        if len(sealers) < _MAX_CACHED:
            sealers[topic] = sealer
        return sealer

    def _first_seal(self, root: str) -> DataKey:
        with self._lock:
            key = self._ratchet.key_for(root)
            self._ring.add_own(key)
            self._keys = {**self._keys, root: key}
        self._on_new_root(root)
        return key

    def adopt(self, roots: Iterable[str]) -> None:
        """Put the current keys of ``roots`` (sealed for before a restart) in the ring, to answer for them."""
        for root in roots:
            with self._lock:
                self._ring.add_own(self._ratchet.key_for(root))

    def step(self, roots: set[str] | None) -> int:
        """Step the seed; ``roots`` (None: all) get new keys, every other root keeps sealing with its
        current key until the interval steps it (a denial scoped to one topic replaces only its keys).
        Returns the new epoch."""
        with self._lock:
            self._ring.persist()  # the retiring epoch's keys are archived before its secret is gone
            epoch = self._ratchet.step()
            kept = {} if roots is None else {r: k for r, k in self._keys.items() if r not in roots}
            self._keys = kept
            # after the keys: a sealer built meanwhile from the old keys lands in the discarded maps
            if kept:
                self._value_sealers = {t: s for t, s in self._value_sealers.items() if self._roots(t) in kept}
                self._key_sealers = {t: s for t, s in self._key_sealers.items() if self._roots(t) in kept}
            else:
                self._value_sealers, self._key_sealers = {}, {}
        return epoch

    def expire(self, max_age: float) -> None:
        """Erase received and own keys past ``max_age``, except the ones sealing now."""
        with self._lock:
            self._ring.expire(max_age, keep=[k.key_id for k in self._keys.values()])
