"""KafkaCrypto: a node's keys, its serializers, and the management thread that trades keys.

Sealing never touches the network: the producer's key for a root comes from its
ratchet. Opening may need a key from another node; the deserializer then asks the
management thread, which publishes a signed request on ``R.reqs`` (or ``R.subs``)
after its read position on ``R.keys`` is pinned, so no answer can be missed, and
waits on an event that the answer sets. The same thread answers other nodes'
requests for keys this node produced, follows the ``chains``, ``allowlist`` and
``denylist`` topics from the beginning, steps the ratchet on its interval, and
erases keys past their maximum age. It owns the key-exchange consumer outright
(kafka-python's consumer is not thread-safe) and survives any input.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import keyexchange as kx
from .certs import REASON_TOPIC_NOT_ALLOWED, REASON_USAGE_NOT_ALLOWED, Usage
from .credentials import Credentials
from .errors import (
    ChainError,
    DecryptionError,
    FormatError,
    KafkaRatchetError,
    NotARecordError,
    UnsupportedVersionError,
)
from .identity import derive_subkey, fingerprint
from .kem import KemPrivateKey
from .keyring import KeyRing
from .message import KafkaCryptoMessage, opened_message
from .protocol.trust import scope_matches
from .ratchet import DataKey, Ratchet
from .sealing import Role, Sealer, is_sealed, key_id_of, open_sealed
from .secretfile import remove_stale_temps
from .settings import NodeSettings
from .store import KafkaCryptoStore

__all__ = ["KafkaCrypto"]

log = logging.getLogger(__name__)

_POLL_MS = 50
_VALUE = Role.VALUE
_MAX_SEEN_REQUESTS = 20_000
#: refusals raised only after the request's signature and the requester's chain verified (ValidatedChain.require):
#: the sender is identified, so it may have a log line of its own; any other refusal names a signer the
#: sender chose, and all of them share one rate limit per root
_IDENTIFIED_REFUSALS = frozenset({REASON_USAGE_NOT_ALLOWED, REASON_TOPIC_NOT_ALLOWED})
_MAX_PENDING = 1_000
_MAX_RETRY = 30.0
_WANT_TTL = 300.0
_FIRST_WAIT_BACKOFF = 2.0
_MAX_WAIT_BACKOFF = 60.0


class _RateLimiter:
    """Says whether a message keyed ``key`` may be logged now (once per interval per key)."""

    def __init__(self, interval: float, max_keys: int = 4096) -> None:
        self.interval = interval
        self._last: collections.OrderedDict[Any, float] = collections.OrderedDict()
        self._max = max_keys
        self._lock = threading.Lock()

    def allow(self, key: Any) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > self._max:
                self._last.popitem(last=False)
        return True


@dataclass
class _Want:
    """Key ids of one root some deserializer is waiting for."""

    key_ids: dict[bytes, float] = field(default_factory=dict)  # key id -> when it was last wanted
    last_wanted: float = 0.0
    next_request: float = 0.0
    retry: float = 1.0


@dataclass
class _Pending:
    root: str
    key_ids: frozenset[bytes]
    kems: dict[Any, KemPrivateKey]
    sent: float


class KafkaCrypto:
    """kafkacrypto's node object: ``KafkaCrypto(nodeID, kp, kc, config=None, cryptokey=None, seed=None)``.

    ``kp`` and ``kc`` are a kafka-python producer and consumer dedicated to the key
    exchange (the consumer needs no group). ``config`` is a :class:`KafkaCryptoStore` or the
    path of the node's ``.config`` (default ``<nodeID>.config``); ``cryptokey`` and ``seed``
    override the paths of the secret files.
    """

    def __init__(self, nodeID: str | None, kp: Any, kc: Any, config: KafkaCryptoStore | str | os.PathLike[str] |  # noqa: N803
                 None = None, cryptokey: str | os.PathLike[str] | None = None,
                 seed: str | os.PathLike[str] | None = None) -> None:
        store = KafkaCryptoStore.open(nodeID, config)
        self.store = store
        self.node_id = store.node_id
        self.settings = NodeSettings.from_section(store.load_section("crypto"))
        self._kems = self.settings.kem_types()

        self.credentials = Credentials(store, cryptokey=cryptokey, clock_skew=self.settings.clock_skew)
        self._identity = self.credentials.identity
        self._trust = self.credentials.trust
        seed_path = Path(seed) if seed else store.secret_path("ratchet", ".seed")
        archive_path = store.secret_path("keyarchive", ".keys")
        for path in (store.path, seed_path, archive_path):
            # a write killed before its rename may have left an old seed or an erased key in a temp file
            remove_stale_temps(path.parent, [path.name])
        self._ratchet = Ratchet(seed_path) if seed_path.exists() else Ratchet.create(seed_path)
        self._ring = KeyRing(archive_path, derive_subkey(self._identity, b"kr-key-archive"))

        self._kp = kp
        self._kc = kc
        self._seal_keys: dict[str, DataKey] = {}
        # per topic, for the current keys; replaced (never cleared in place) when the keys step
        self._value_sealers: dict[str, Sealer] = {}
        self._key_sealers: dict[str, Sealer] = {}
        self._root_of: dict[str, str] = {}
        self._ratchet_lock = threading.RLock()
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._key_arrived = threading.Condition()
        self._wait_failed: dict[tuple[str, bytes], tuple[float, float]] = {}
        self._limiter = _RateLimiter(self.settings.log_interval)
        self._stop = threading.Event()
        self._ready = threading.Event()

        # owned by the management thread only
        self._assigned: set[Any] = set()
        self._following: dict[str, str] = {}
        self._unresolved: dict[str, str] = {}
        self._produce_roots: set[str] = set()
        self._wants: dict[str, _Want] = {}
        self._pending: collections.OrderedDict[bytes, _Pending] = collections.OrderedDict()
        # (requester's key, request id) of requests judged: an id is only unique per requester
        self._seen: collections.OrderedDict[tuple[bytes, bytes], float] = collections.OrderedDict()
        self._last_maintenance = 0.0
        self._trust_batch: list[tuple[str, bytes]] = []
        self._bite_roots: set[str] = set()  # produced roots whose keys a denial wants replaced
        self._last_bite = 0.0

        self._thread = threading.Thread(target=self._run, name=f"kafkaratchet-{self.node_id}", daemon=True)
        self._thread.start()
        log.info("node %s (%s) started with %d chain(s), %d root(s) of trust", self.node_id,
                 self._identity.fingerprint, len(self.credentials.chains), len(self._trust.roots))

    # ------------------------------------------------------------------ public API (kafkacrypto's)
    def getKeySerializer(self) -> Any:  # noqa: N802
        from .serdes import CryptoSerializer

        return CryptoSerializer(self, Role.KEY)

    def getValueSerializer(self) -> Any:  # noqa: N802
        from .serdes import CryptoSerializer

        return CryptoSerializer(self, Role.VALUE)

    def getKeyDeserializer(self, max_key_wait_intervals: int | None = None,  # noqa: N802
                           key_wait_interval: float | None = None) -> Any:
        from .serdes import CryptoDeserializer

        return CryptoDeserializer(self, Role.KEY, self._wait_bound(max_key_wait_intervals, key_wait_interval))

    def getValueDeserializer(self, max_key_wait_intervals: int | None = None,  # noqa: N802
                             key_wait_interval: float | None = None) -> Any:
        from .serdes import CryptoDeserializer

        return CryptoDeserializer(self, Role.VALUE, self._wait_bound(max_key_wait_intervals, key_wait_interval))

    def ratchet(self) -> int:
        """Step the ratchet now: new keys and key ids for every root. Returns the new epoch."""
        return self._step(None)

    def _step(self, roots: set[str] | None) -> int:
        """Step the seed; ``roots`` (None: all) get new keys, every other root keeps sealing with its
        current key until the interval steps it (a denial scoped to one topic replaces only its keys)."""
        with self._ratchet_lock:
            self._ring.persist()  # the retiring epoch's keys are archived before its secret is gone
            epoch = self._ratchet.step()
            kept = {} if roots is None else {r: k for r, k in self._seal_keys.items() if r not in roots}
            self._seal_keys = kept
            # after the keys: a sealer built meanwhile from the old keys lands in the discarded dicts
            if kept:
                self._value_sealers = {t: s for t, s in self._value_sealers.items() if self._root(t) in kept}
                self._key_sealers = {t: s for t, s in self._key_sealers.items() if self._root(t) in kept}
            else:
                self._value_sealers, self._key_sealers = {}, {}
        return epoch

    def close(self) -> None:
        """Stop the management thread and persist the key archive. ``kp`` and ``kc`` stay open."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._ring.persist()
        except OSError as exc:
            log.error("could not persist the key archive on close: %s", exc.strerror)
        self.credentials.close()
        log.info("node %s closed", self.node_id)

    def __enter__(self) -> KafkaCrypto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaCrypto(node_id={self.node_id!r}, fingerprint={self._identity.fingerprint})"

    @property
    def fingerprint(self) -> str:
        return self._identity.fingerprint

    @property
    def public_key(self) -> bytes:
        return self._identity.public_key

    @property
    def epoch(self) -> int:
        """The producer ratchet's current epoch (it only ever grows)."""
        return self._ratchet.epoch

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until the management topics are being followed (tests, demos, daemons)."""
        return self._ready.wait(timeout)

    # ------------------------------------------------------------------ sealing and opening
    def _root(self, topic: str) -> str:
        root = self._root_of.get(topic)
        if root is None:
            root = self.settings.root(topic)
            if len(self._root_of) < 100_000:
                self._root_of[topic] = root
        return root

    def seal(self, topic: str, role: Role, data: bytes) -> bytes:
        sealers = self._value_sealers if role is _VALUE else self._key_sealers
        sealer = sealers.get(topic)
        if sealer is None:
            sealer = self._new_sealer(sealers, topic, role)
        return sealer.seal(data)

    def _new_sealer(self, sealers: dict[str, Sealer], topic: str, role: Role) -> Sealer:
        root = self._root(topic)
        key = self._seal_keys.get(root)
        if key is None:
            key = self._first_seal(root)
        sealer = Sealer(key.key_id, key.key, topic, role)
        if len(sealers) < 100_000:
            sealers[topic] = sealer
        return sealer

    def _first_seal(self, root: str) -> DataKey:
        with self._ratchet_lock:
            key = self._ratchet.key_for(root)
            self._ring.add_own(key)
            self._seal_keys = {**self._seal_keys, root: key}
        self._commands.put(("produce", root))
        return key

    def try_open(self, topic: str, role: Role, data: bytes) -> bytes | None:
        """The cleartext if the key is known now (never waits); DecryptionError if it cannot be."""
        key = self._ring.get(self._root(topic), key_id_of(data))
        return None if key is None else open_sealed(key, topic, role, data)

    def open(self, topic: str, role: Role, data: bytes, wait: float, retrier: Any) -> KafkaCryptoMessage:
        """The deserializer's core: a cleartext message, or a not-cleartext one that can be retried."""
        root = self._root_of.get(topic)
        if root is not None:  # the hot path: a known topic and a key we hold
            key = self._ring.get(root, data[2:10])
            if key is not None:
                try:
                    return opened_message(data, open_sealed(key, topic, role, data), topic)
                except KafkaRatchetError:
                    pass  # not a record, another version, or tampered: the full path below decides and logs
        if not is_sealed(data):
            if self.settings.allow_plaintext:
                return KafkaCryptoMessage(data, cleartext=data, topic=topic)
            return KafkaCryptoMessage(data, topic=topic)
        try:
            key_id = key_id_of(data)
        except (NotARecordError, UnsupportedVersionError) as exc:
            if self._limiter.allow(("record-format", topic)):
                log.warning("record on %s cannot be opened: %s", topic, exc)
            return KafkaCryptoMessage(data, topic=topic)
        root = self._root(topic)
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

    def _wait_bound(self, intervals: int | None, interval: float | None) -> float:
        count = self.settings.max_key_wait_intervals if intervals is None else intervals
        step = self.settings.key_wait_interval if interval is None else interval
        return max(0.0, count * step)

    def _wait_for_key(self, root: str, key_id: bytes, wait: float) -> bytes | None:
        slot = (root, key_id)
        failed = self._wait_failed.get(slot)
        if failed is not None and time.monotonic() < failed[0]:
            # this key did not come within a full wait moments ago: do not stall every record on it, but
            # wait again after a backoff (doubling up to a minute), when a new request has gone out
            self._want(root, key_id)
            return None
        self._want(root, key_id)
        deadline = time.monotonic() + wait
        with self._key_arrived:
            while True:
                key = self._ring.get(root, key_id)
                remaining = deadline - time.monotonic()
                if key is not None or remaining <= 0 or self._stop.is_set():
                    break
                self._key_arrived.wait(remaining)
        if key is None:
            backoff = min(failed[1] * 2, _MAX_WAIT_BACKOFF) if failed is not None else _FIRST_WAIT_BACKOFF
            self._wait_failed[slot] = (time.monotonic() + backoff, backoff)
            if len(self._wait_failed) > _MAX_PENDING:
                self._wait_failed.pop(next(iter(self._wait_failed)))
            if self._limiter.allow(("no-key", root)):
                log.warning("no key for a record on root %s after waiting %.1f s; it is returned "
                            "not decrypted and can be retried", root, wait)
        else:
            self._wait_failed.pop(slot, None)
        return key

    def _want(self, root: str, key_id: bytes) -> None:
        self._commands.put(("want", (root, key_id)))

    # ------------------------------------------------------------------ the management thread
    def _run(self) -> None:
        self._follow_management_topics()
        for root in sorted({key.root for key in self._ring.own_keys()}):
            # a restarted producer answers for what it sealed before, even before it seals again
            with self._ratchet_lock:
                self._ring.add_own(self._ratchet.key_for(root))
            self._handle_command("produce", root)
        while not self._stop.is_set():
            try:
                self._drain_commands()
                self._send_due_requests()
                if self._assigned:
                    batches = self._kc.poll(timeout_ms=_POLL_MS)
                    for tp, records in batches.items():
                        for record in records:
                            self._dispatch(tp.topic, record.value)
                    if self._trust_batch:
                        self._apply_trust_batch()
                    if self._bite_roots:
                        self._bite()
                else:
                    self._idle(_POLL_MS / 1000)
                self._maintain()
            except Exception as exc:  # the management thread must never die; Kafka errors are weather
                if self._limiter.allow(("loop", type(exc).__name__)):
                    log.warning("management thread of %s: %s: %s (continuing)", self.node_id,
                                type(exc).__name__, exc)
                self._stop.wait(0.2)

    def _idle(self, seconds: float) -> None:
        try:
            command = self._commands.get(timeout=seconds)
        except queue.Empty:
            return
        self._handle_command(*command)

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._handle_command(*command)

    def _handle_command(self, kind: str, arg: Any) -> None:
        if kind == "produce":
            root = arg
            if root not in self._produce_roots:
                self._produce_roots.add(root)
                self._ring.persist()  # so a restart knows this root before it seals again
                unanswerable = self.credentials.chain_for(Usage.PRODUCE, root) is None
                if unanswerable and self._limiter.allow(("no-produce", root)):
                    log.warning("node %s seals records for root %s but has no chain allowing it to hand out "
                                "their keys; consumers will not be able to open them", self.node_id, root)
                self._follow(root + self.settings.reqs_suffix,
                             ("time", time.time() - self.settings.request_max_age - self.settings.clock_skew))
                # answers go to R.keys: have it exist before the first consumer asks (broker auto-creation
                # would otherwise sit on that consumer's critical path, about 130 ms on Tansu)
                self._partitions(root + self.settings.keys_suffix)
        elif kind == "want":
            root, key_id = arg
            if self._ring.get(root, key_id) is not None:
                self._notify()
                return
            want = self._wants.setdefault(root, _Want(retry=self.settings.request_retry))
            now = time.monotonic()
            if key_id not in want.key_ids:
                want.next_request = min(want.next_request, now) if want.next_request else now
            want.key_ids[key_id] = now
            want.last_wanted = now

    def _follow_management_topics(self) -> None:
        self._follow((self.settings.chains_topic, self.settings.allowlist_topic, self.settings.denylist_topic),
                     "beginning")
        from .trusttopics import start_trust_topic_check

        # once the topics exist, on its own thread: warn when the broker deletes trust entries
        start_trust_topic_check(self.store.get_kafka_config("consumer", extra="crypto"), [
            self.settings.chains_topic, self.settings.allowlist_topic, self.settings.denylist_topic])
        if not self._unresolved:
            self._ready.set()

    def _partitions(self, topic: str) -> list[Any]:
        from kafka import TopicPartition

        partitions = self._kc.partitions_for_topic(topic)
        if not partitions:
            try:
                self._kp.partitions_for(topic)  # a producer's metadata request creates the topic
            except Exception as exc:  # kafka-python raises its own errors (timeouts, auth)
                if self._limiter.allow(("create", topic)):
                    log.warning("cannot create or find topic %s: %s", topic, exc)
                return []
            partitions = self._kc.partitions_for_topic(topic)
        return [TopicPartition(topic, p) for p in sorted(partitions or ())]

    def _follow(self, topics: str | tuple[str, ...], start: Any) -> bool:
        """Assign every partition of ``topics`` and pin the read positions before returning.

        ``start`` is "beginning", "end", or ("time", seconds since the epoch). Pinning before a request
        is sent is what guarantees its answer cannot be skipped.
        """
        names = (topics,) if isinstance(topics, str) else topics
        tps: list[Any] = []
        for topic in names:
            if topic in self._following:
                continue
            found = self._partitions(topic)
            if found:
                tps += found
            else:
                self._unresolved[topic] = start
        if not tps:
            return all(topic in self._following for topic in names)
        self._assigned.update(tps)
        self._kc.assign(sorted(self._assigned, key=lambda tp: (tp.topic, tp.partition)))
        if start == "beginning":
            offsets = self._kc.beginning_offsets(tps)
        else:
            offsets = self._kc.end_offsets(tps)
            if isinstance(start, tuple):
                found_at = self._kc.offsets_for_times({tp: int(start[1] * 1000) for tp in tps})
                offsets = {tp: (found_at[tp].offset if found_at.get(tp) is not None else offsets[tp])
                           for tp in tps}
        for tp in tps:
            self._kc.seek(tp, offsets[tp])
        for topic in {tp.topic for tp in tps}:
            self._following[topic] = start if isinstance(start, str) else "time"
            self._unresolved.pop(topic, None)
            log.debug("following %s from %s", topic, start if isinstance(start, str) else "recent requests")
        return all(topic in self._following for topic in names)

    def _send_due_requests(self) -> None:
        now = time.monotonic()
        for root, want in list(self._wants.items()):
            want.key_ids = {k: t for k, t in want.key_ids.items()
                            if self._ring.get(root, k) is None and now - t <= _WANT_TTL}
            if not want.key_ids or now - want.last_wanted > _WANT_TTL:
                del self._wants[root]
                continue
            if now >= want.next_request:
                if self._request(root, want.key_ids):
                    want.next_request = now + want.retry
                    want.retry = min(want.retry * 2, _MAX_RETRY)
                else:
                    want.next_request = now + _MAX_RETRY

    def _request(self, root: str, wanted: dict[bytes, float]) -> bool:
        # the most recently wanted ids first: bogus ids written into a data topic cannot crowd out a real one
        key_ids = sorted(wanted, key=wanted.__getitem__, reverse=True)[:kx.MAX_KEY_IDS]
        found = self.credentials.chain_for(Usage.CONSUME, root)
        direct = found is not None
        if found is None:
            found = self.credentials.chain_for(Usage.SUBSCRIBE, root)
        if found is None:
            # ask anyway with the chain we have: the producer is the judge, and its refusal is logged there
            if self._limiter.allow(("no-consume", root)):
                log.warning("node %s has no chain allowing it to ask for keys of root %s; "
                            "producers will refuse it", self.node_id, root)
            fallback = self.credentials.any_chain(Usage.CONSUME)
            direct = fallback is not None
            if fallback is None:
                fallback = self.credentials.any_chain(Usage.SUBSCRIBE)
            if fallback is None:
                return False
            chain = fallback
        else:
            chain = found[0]
        if not self._follow(root + self.settings.keys_suffix, "end"):
            return False  # cannot pin where answers will appear yet: try again later
        kems = [KemPrivateKey(kem) for kem in self._kems]
        request = kx.make_request(self._identity, chain, root, key_ids, kems)
        self._pending[request.request_id] = _Pending(root, frozenset(key_ids), {k.kem: k for k in kems},
                                                     time.monotonic())
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
        topic = root + (self.settings.reqs_suffix if direct else self.settings.subs_suffix)
        self._kp.send(topic, value=request.raw)
        log.debug("asked for %d key(s) of root %s on %s", len(key_ids), root, topic)
        return True

    def _dispatch(self, topic: str, value: bytes | None) -> None:
        if value is None:
            return
        try:
            if topic in (self.settings.allowlist_topic, self.settings.denylist_topic):
                # folded once per poll batch (a node replaying the topics at start folds thousands at once)
                self._trust_batch.append(("allow" if topic == self.settings.allowlist_topic else "deny", value))
            elif topic == self.settings.chains_topic:
                self._on_chain(value)
            elif topic.endswith(self.settings.reqs_suffix):
                self._on_request(topic, value)
            elif topic.endswith(self.settings.keys_suffix):
                self._on_answer(topic, value)
        except KafkaRatchetError as exc:
            if self._limiter.allow(("bad-input", topic, type(exc).__name__)):
                log.info("ignored a message on %s: %s", topic, exc)
        except Exception as exc:  # a bug must cost this one record, not the valid ones behind it
            if self._limiter.allow(("bug", topic, type(exc).__name__)):
                log.error("unexpected %s handling a message on %s (ignored): %s", type(exc).__name__, topic, exc)

    def _on_request(self, topic: str, value: bytes) -> None:
        message = kx.parse(value)
        if isinstance(message, kx.KeyAnswer):
            raise FormatError("an answer on a request topic")
        root = message.root
        if topic != root + self.settings.reqs_suffix or root not in self._produce_roots:
            return
        inner = message.inner if isinstance(message, kx.ForwardedRequest) else message
        # A request id is unique only per requester: it is remembered with the requester's key, so another
        # requester (even an authorised one, who reads the genuine request on R.reqs) reusing the id in a
        # request of its own cannot get the genuine one dropped as already answered. Only a verified
        # request is remembered, so an entry for (key, id) means that key really sent that id.
        if (inner.signer, message.request_id) in self._seen:
            return  # answered (or judged) already: duplicates and replays get nothing
        keys = self._ring.own(root, inner.key_ids)
        if not keys:
            return  # someone else's keys
        try:
            requester = kx.verify_request(message, self._trust, max_age=self.settings.request_max_age)
        except KafkaRatchetError as exc:
            # The rate-limit key is never something the sender chooses (a forged request names any signer it
            # likes): the signer of the message itself when its signature and chain verified (only then can
            # the refusal be about its rights), as many as the trust lists hold; else the root, one for all.
            # (A forward's inner signer is not verified when the forwarder's own rights are what failed.)
            identified = isinstance(exc, ChainError) and exc.reason in _IDENTIFIED_REFUSALS
            if self._limiter.allow(("refused", message.signer, root) if identified else ("refused-unverified", root)):
                who = fingerprint(inner.signer)
                if message is not inner:
                    who += f" (forwarded by {fingerprint(message.signer)})"
                further = "" if identified else (f" (further requests for this root that do not verify are not "
                                                 f"logged for {self._limiter.interval:.0f} s)")
                log.warning("refused key request from %s for root %s: %s%s", who, root, exc, further)
            return
        self._remember(requester.subject, message.request_id)
        mine = self.credentials.chain_for(Usage.PRODUCE, root)
        if mine is None:
            if self._limiter.allow(("no-produce", root)):
                log.warning("cannot answer key request for root %s: no chain with produce usage", root)
            return
        wrapped = [kx.WrappedKey(k.key_id, k.key, int(k.created)) for k in keys]
        answer = kx.make_answer(self._identity, mine[0], message, wrapped)
        self._kp.send(root + self.settings.keys_suffix, value=answer.raw)
        log.debug("answered %s with %d key(s) for root %s", fingerprint(requester.subject), len(keys), root)

    def _remember(self, requester: bytes, request_id: bytes) -> None:
        self._seen[(requester, request_id)] = time.monotonic()
        while len(self._seen) > _MAX_SEEN_REQUESTS:
            self._seen.popitem(last=False)

    def _on_answer(self, topic: str, value: bytes) -> None:
        message = kx.parse(value)
        if not isinstance(message, kx.KeyAnswer):
            raise FormatError("a request on a key topic")
        pending = self._pending.get(message.request_id)
        if pending is None or message.root != pending.root or topic != pending.root + self.settings.keys_suffix:
            return  # not an answer to a request of ours that is still open
        if message.requester != self._identity.public_key:
            raise FormatError("answer names another requester")
        kx.verify_answer(message, self._trust)
        installed = 0
        for wrapped in kx.open_answer(message, pending.kems):
            if wrapped.key_id in pending.key_ids and self._ring.add_received(pending.root, wrapped.key_id,
                                                                             wrapped.key):
                installed += 1
        missing = {k for k in pending.key_ids if self._ring.get(pending.root, k) is None}
        if not missing:
            del self._pending[message.request_id]
        if installed:
            log.debug("installed %d key(s) for root %s from %s", installed, pending.root,
                      fingerprint(message.signer))
            self._notify()

    def _notify(self) -> None:
        with self._key_arrived:
            self._key_arrived.notify_all()

    def _apply_trust_batch(self) -> None:
        batch, self._trust_batch = self._trust_batch, []
        change = self.credentials.apply_trust_records(batch)
        for _key, scope in change.denial_scopes():
            self._bite_roots.update(r for r in self._produce_roots if scope_matches(scope, r))
        if change.roots_changed:  # a root narrowed itself: whoever it no longer covers must lose the keys too
            self._bite_roots.update(self._produce_roots)

    def _bite(self) -> None:
        """Revocation that bites: new keys and key ids for the produced roots a denial covers, which the
        denied keys' chains can no longer obtain. Denials read in one batch (a node replaying the denylist
        at start) cost one step, and steps are at least a second apart."""
        if time.monotonic() - self._last_bite < 1.0:
            return
        roots, self._bite_roots = self._bite_roots, set()
        log.warning("stepping the ratchet for root(s) %s after denylist entries", ", ".join(sorted(roots)))
        self._last_bite = time.monotonic()
        self._step(roots)

    def _on_chain(self, value: bytes) -> None:
        self.credentials.offer_chain(value)

    def _maintain(self) -> None:
        now = time.monotonic()
        if now - self._last_maintenance < 1.0:
            return
        self._last_maintenance = now
        for topic, start in list(self._unresolved.items()):
            self._follow(topic, start)
        if not self._ready.is_set() and not self._unresolved:
            self._ready.set()
        if self._bite_roots:
            self._bite()
        self.credentials.persist_trust()
        cutoff = now - _WANT_TTL
        for request_id, pending in list(self._pending.items()):
            if pending.sent < cutoff:
                del self._pending[request_id]
        if self._produce_roots and self._seal_keys:
            # the oldest key still sealing decides: a root a scoped denial did not step keeps its key, and
            # must not keep it past the interval because another root's key is newer
            if time.time() - min(k.created for k in self._seal_keys.values()) >= self.settings.ratchet_interval:
                log.info("ratchet interval reached: stepping")
                self.ratchet()
        with self._ratchet_lock:
            current = [k.key_id for k in self._seal_keys.values()]
            self._ring.expire(self.settings.key_max_age, keep=current)
