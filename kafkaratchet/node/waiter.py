"""The deserializers' side of a node: open a record, waiting a bounded time for a key that is not here yet.

Any number of deserializer threads call :meth:`KeyWaiter.open`. A missing key is
*wanted* (the exchange loop then asks other nodes for it) and waited for on a
``Condition`` that the loop notifies when keys arrive. A key that did not come
within a full wait is not waited for again until a per-slot backoff has passed;
that failure map is shared by all deserializer threads and has its own lock.
Deserializers never raise on bad bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kafkaratchet.errors import DecryptionError, KafkaRatchetError, NotARecordError, UnsupportedVersionError
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.node.limits import Backoff
from kafkaratchet.node.message import KafkaCryptoMessage, Retrier, opened_message
from kafkaratchet.node.sealers import TopicRoots
from kafkaratchet.protocol.records import Role, is_sealed, key_id_of, open_sealed
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["KeyWaiter", "MAX_FAILED_SLOTS", "WAIT_BACKOFF"]

log = logging.getLogger(__name__)

MAX_FAILED_SLOTS = 1_000
WAIT_BACKOFF = Backoff(first=2.0, limit=60.0)


class KeyWaiter:
    """Opens records (:class:`~kafkaratchet.node.contract.RecordOpener`) for the deserializers.

    ``want(root, key_id)`` tells the exchange loop a key is missing; :meth:`notify` is the loop's
    signal that keys arrived; once ``stop`` is set nobody waits any more.
    """

    def __init__(self, ring: KeyRing, roots: TopicRoots, want: Callable[[str, bytes], None],
                 stop: threading.Event, limiter: RateLimiter, *, allow_plaintext: bool) -> None:
        self._ring = ring
        self._roots = roots
        self._want = want
        self._stop = stop
        self._limiter = limiter
        self._allow_plaintext = allow_plaintext
        self._key_arrived = threading.Condition()
        self._lock = threading.Lock()  # guards _failed, written by every deserializer thread
        # (root, key id) -> (no wait before, the backoff that set it); oldest first
        self._failed: dict[tuple[str, bytes], tuple[float, float]] = {}

    def failed_slots(self) -> int:
        """How many (root, key id) slots are backing off now (at most ``MAX_FAILED_SLOTS``)."""
        with self._lock:
            return len(self._failed)

    def try_open(self, topic: str, role: Role, data: bytes) -> bytes | None:
        """The cleartext if the key is known now (never waits); DecryptionError if it cannot be."""
        key = self._ring.get(self._roots(topic), key_id_of(data))
        return None if key is None else open_sealed(key, topic, role, data)

    def open(self, topic: str, role: Role, data: bytes, *, wait: float,
             retrier: Retrier | None) -> KafkaCryptoMessage:
        """The deserializer's core: a cleartext message, or a not-cleartext one that can be retried."""
        root = self._roots.known.get(topic)
        if root is not None:  # the hot path: a known topic and a key we hold
            key = self._ring.get(root, data[2:10])
            if key is not None:
                try:
                    return opened_message(data, open_sealed(key, topic, role, data), topic)
                except KafkaRatchetError:
                    pass  # not a record, another version, or tampered: the full path below decides and logs
        if not is_sealed(data):
            if self._allow_plaintext:
                return KafkaCryptoMessage(data, cleartext=data, topic=topic)
            return KafkaCryptoMessage(data, topic=topic)
        try:
            key_id = key_id_of(data)
        except (NotARecordError, UnsupportedVersionError) as exc:
            if self._limiter.allow(("record-format", topic)):
                log.warning("record on %s cannot be opened: %s", topic, exc)
            return KafkaCryptoMessage(data, topic=topic)
        root = self._roots(topic)
        key = self._ring.get(root, key_id)
        if key is None and wait > 0:
            key = self._wait_for_key(root, key_id, wait)
        elif key is None:
            self._want(root, key_id)
        if key is None:
            return KafkaCryptoMessage(data, topic=topic, retrier=retrier, decryptable=True)
        try:
            return opened_message(data, open_sealed(key, topic, role, data), topic)
        except DecryptionError:
            if self._limiter.allow(("record-auth", topic)):
                log.warning("a record on %s does not authenticate (tampered, or moved from another topic "
                            "or role); it stays encrypted", topic)
            return KafkaCryptoMessage(data, topic=topic)

    def notify(self) -> None:
        """Keys arrived (or the node stops): every waiting deserializer looks again."""
        with self._key_arrived:
            self._key_arrived.notify_all()

    def _wait_for_key(self, root: str, key_id: bytes, wait: float) -> bytes | None:
        slot = (root, key_id)
        with self._lock:
            failed = self._failed.get(slot)
        self._want(root, key_id)
        if failed is not None and time.monotonic() < failed[0]:
            # this key did not come within a full wait moments ago: do not stall every record on it, but
            # wait again after a backoff (doubling up to a minute), when a new request has gone out
            return None
        deadline = time.monotonic() + wait
        with self._key_arrived:
            while True:
                key = self._ring.get(root, key_id)
                remaining = deadline - time.monotonic()
                if key is not None or remaining <= 0 or self._stop.is_set():
                    break
                self._key_arrived.wait(remaining)
        if key is not None:
            with self._lock:
                self._failed.pop(slot, None)
            return key
        backoff = WAIT_BACKOFF.after(None if failed is None else failed[1])
        with self._lock:
            self._failed[slot] = (time.monotonic() + backoff, backoff)
            while len(self._failed) > MAX_FAILED_SLOTS:
                del self._failed[next(iter(self._failed))]
        if self._limiter.allow(("no-key", root)):
            log.warning("no key for a record on root %s after waiting %.1f s; it is returned "
                        "not decrypted and can be retried", root, wait)
        return None
