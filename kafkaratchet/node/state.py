"""Everything the exchange loop remembers between two records: one object, owned by the loop alone.

Only :class:`~kafkaratchet.node.exchange.ExchangeLoop` holds an ``ExchangeState``,
and only its thread (or a test calling its handlers in the loop's place) reads or
writes one; nothing here takes a lock. Every collection is bounded.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from kafkaratchet.protocol.kem import KemPrivateKey

__all__ = ["ExchangeState", "Want", "Pending", "MAX_PENDING", "MAX_SEEN_REQUESTS", "WANT_TTL"]

MAX_PENDING = 1_000  # requests of ours awaiting an answer, oldest dropped first
MAX_SEEN_REQUESTS = 20_000  # other nodes' requests judged, least recently judged dropped first
WANT_TTL = 300.0  # seconds a wanted key id, an open request, is kept


@dataclass
class Want:
    """Key ids of one root some deserializer is waiting for."""

    key_ids: dict[bytes, float] = field(default_factory=dict)  # key id -> when it was last wanted
    last_wanted: float = 0.0
    next_request: float = 0.0
    retry: float = 1.0


@dataclass
class Pending:
    """A request of ours: what it asked for, and the KEM private keys its answer is wrapped to."""

    root: str
    key_ids: frozenset[bytes]
    kems: dict[Any, KemPrivateKey]
    sent: float


@dataclass
class ExchangeState:
    """The exchange loop's state: subscriptions, requests in flight both ways, trust and revocation work."""

    assigned: set[Any] = field(default_factory=set)  # TopicPartitions assigned to the key-exchange consumer
    following: dict[str, str] = field(default_factory=dict)  # topic -> "beginning", "end" or "time"
    unresolved: dict[str, Any] = field(default_factory=dict)  # topic -> start, for topics not found yet
    produce_roots: set[str] = field(default_factory=set)  # roots this node seals for, and answers for
    wants: dict[str, Want] = field(default_factory=dict)
    pending: collections.OrderedDict[bytes, Pending] = field(default_factory=collections.OrderedDict)
    # (requester's key, request id) of requests judged: an id is only unique per requester
    seen: collections.OrderedDict[tuple[bytes, bytes], float] = field(default_factory=collections.OrderedDict)
    trust_batch: list[tuple[str, bytes]] = field(default_factory=list)  # (kind, record) read, not yet folded
    bite_roots: set[str] = field(default_factory=set)  # produced roots whose keys a denial wants replaced
    last_bite: float = 0.0
    last_maintenance: float = 0.0
    last_activity: float = 0.0  # start, the last command, new subscription or record read (busy: fetch eagerly)

    def add_pending(self, request_id: bytes, pending: Pending) -> None:
        self.pending[request_id] = pending
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)

    def remember(self, requester: bytes, request_id: bytes, now: float) -> None:
        """A request of ``requester`` was judged: a replay or duplicate of it gets nothing."""
        self.seen[(requester, request_id)] = now
        while len(self.seen) > MAX_SEEN_REQUESTS:
            self.seen.popitem(last=False)
