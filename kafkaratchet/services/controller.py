"""KafkaCryptoController: one place that decides which subscribers may have keys.

Nodes whose chains only allow ``subscribe`` publish their key requests on
``R.subs``. A controller follows every ``R.subs`` (a pattern subscription, so new
roots are picked up while it runs), judges each request against its own trust
lists, re-signs the ones it allows with its ``controller`` chain and forwards them
to ``R.reqs``, where producers answer them as usual, encrypting to the
subscriber's ephemeral keys: the controller never sees a data key.

A request's offset is committed only after the broker acknowledged the forward,
so a crash loses no request; several controllers in one consumer group share the
partitions.

The ``kafkaratchet.audit`` logger gets one line for every decision about an
*identified* requester: a fresh request, not judged before, whose signature and
chain verify (forwarded, or refused for a reason such as ``topic-not-allowed``).
Anyone who can write to ``R.subs`` can write anything else, as many times as they
like: unparseable records, bad signatures, unknown roots, stale or replayed copies
of genuine requests. Those name nobody who could be verified, so they are counted
per subscription topic and reason and summed up in one line per topic per
``log_interval`` (60 s by default; also at close), e.g.
``topic=R.subs decision=refused-unverified records=9000 seconds=60
reasons=bad-signature:3000,unknown-root:6000``. ``refused`` counts every record
not forwarded, ``unverified`` the part of it that only the summary lines show.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from kafkaratchet.errors import (
    ChainError,
    ConfigError,
    FormatError,
    KafkaRatchetError,
    KeyExchangeError,
    SignatureError,
    UnsupportedVersionError,
)
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol.certs import Usage
from kafkaratchet.protocol.identity import fingerprint
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["KafkaCryptoController"]

log = logging.getLogger(__name__)
audit = logging.getLogger("kafkaratchet.audit")

#: fault injection for tests only: "kill-before-forward" makes the process SIGKILL itself after reading a
#: request and before forwarding it, to show that no request is lost
_FAULT_ENV = "KAFKARATCHET_FAULT"

#: decided requests remembered, (requester key, request id): a replay is not judged (nor forwarded) again
_MAX_DECIDED = 20_000
#: subscription topics with a count of their own in the summary lines; beyond, they share one
_MAX_TALLIED_TOPICS = 1024
_OTHER_TOPICS = "(other topics)"


def _reason(exc: KafkaRatchetError) -> str:
    """A label from a fixed set: never text the sender chose (a root name, a fingerprint)."""
    if isinstance(exc, ChainError):
        return exc.reason  # one of certs.REASON_*
    if isinstance(exc, UnsupportedVersionError):
        return "unsupported-version"
    if isinstance(exc, FormatError):
        return "unparseable"
    if isinstance(exc, SignatureError):
        return "bad-signature"
    return type(exc).__name__


class _UnverifiedTally:
    """Refusals that name nobody verified, counted per subscription topic and reason; :meth:`flush` writes one
    audit line per topic once its first count is ``interval`` old (or at once, with ``force``)."""

    def __init__(self, interval: float, max_topics: int = _MAX_TALLIED_TOPICS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._max_topics = max_topics
        self._clock = clock
        self._counts: dict[str, collections.Counter[str]] = {}
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, topic: str, reason: str) -> None:
        with self._lock:
            if topic not in self._counts and len(self._counts) >= self._max_topics:
                topic = _OTHER_TOPICS
            counts = self._counts.get(topic)
            if counts is None:
                counts = self._counts[topic] = collections.Counter()
                self._since[topic] = self._clock()
            counts[reason] += 1

    def pending(self) -> int:
        with self._lock:
            return sum(sum(c.values()) for c in self._counts.values())

    def flush(self, *, force: bool = False) -> int:
        """Write the due summary lines; returns how many were written."""
        now = self._clock()
        with self._lock:
            due = [t for t, since in self._since.items() if force or now - since >= self.interval]
            lines = [(t, self._counts.pop(t), now - self._since.pop(t)) for t in due]
        for topic, counts, seconds in lines:
            audit.info("topic=%s decision=refused-unverified records=%d seconds=%.0f reasons=%s", topic,
                       sum(counts.values()), seconds, ",".join(f"{r}:{n}" for r, n in sorted(counts.items())))
        return len(lines)


class KafkaCryptoController:
    """``KafkaCryptoController(nodeID, kp, kc, config=None)``; ``kc`` should have a ``group_id`` and
    ``enable_auto_commit=False`` (several controllers in one group share the work)."""

    def __init__(self, nodeID: str | None, kp: Any, kc: Any,  # noqa: N803 - kafkacrypto's name
                 config: KafkaCryptoStore | str | os.PathLike[str] | None = None) -> None:
        self.store = KafkaCryptoStore.open(nodeID, config)
        self.node_id = self.store.node_id
        self.settings = NodeSettings.from_section(self.store.load_section("crypto"))
        self.credentials = Credentials(self.store, clock_skew=self.settings.clock_skew)
        if self.credentials.any_chain(Usage.CONTROLLER) is None:
            raise ConfigError(f"node {self.node_id} has no chain with the controller usage")
        self._kp = kp
        self._kc = kc
        self._mgmt: Any = None
        self._trust_partitions: dict[str, list[int]] = {}
        # the trust topics are created when missing (and allowed), as a node creates them; looked up with a backoff
        self._creator = TopicCreator(self.store.get_kafka_config("consumer", extra="crypto"), self.settings,
                                     enabled=self.settings.create_topics)
        self._fault = os.environ.get(_FAULT_ENV, "")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.forwarded = 0
        self.refused = 0  # every record not forwarded
        self.unverified = 0  # of those, the ones that name nobody verified (summed up, not one line each)
        self._tally = _UnverifiedTally(self.settings.log_interval)
        self._decided: collections.OrderedDict[tuple[bytes, bytes], None] = collections.OrderedDict()
        self._limiter = RateLimiter(self.settings.log_interval)
        self._thread = threading.Thread(target=self._run, name=f"kafkaratchet-controller-{self.node_id}",
                                        daemon=True)
        self._thread.start()
        log.info("controller %s (%s) started", self.node_id, self.credentials.fingerprint)

    # ------------------------------------------------------------------ lifecycle
    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self._ready.wait(timeout)

    def assignment(self) -> set[Any]:
        """The ``R.subs`` partitions the group currently gives this controller."""
        return set(self._kc.assignment() or ())

    def close(self, timeout: float = 4.0) -> None:
        """Stop judging; the group rebalances the partitions to the other controllers."""
        self._stop.set()
        self._thread.join(timeout)
        for client in (self._mgmt,):
            if client is not None:
                client.close()
        self._tally.flush(force=True)
        self.credentials.close()
        log.info("controller %s stopped (%d forwarded, %d refused, %d of them unverified)", self.node_id,
                 self.forwarded, self.refused, self.unverified)

    def __enter__(self) -> KafkaCryptoController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaCryptoController(node_id={self.node_id!r}, fingerprint={self.credentials.fingerprint})"

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        suffix = re.escape(self.settings.subs_suffix)
        while not self._stop.is_set():
            try:
                if not self._ready.is_set():
                    if not self._follow_management():
                        self._stop.wait(0.2)  # a trust topic is missing: looked up again after its backoff
                        continue
                    self._kc.subscribe(pattern=f"^.+{suffix}$")
                    self._ready.set()
                self._poll_management()
                for tp, records in self._kc.poll(timeout_ms=200).items():
                    self._handle_batch(tp, records)
                self._tally.flush()
            except Exception as exc:  # the loop must survive broker weather; nothing is committed on failure
                log.warning("controller %s: %s: %s (continuing)", self.node_id, type(exc).__name__, exc)
                self._stop.wait(0.5)

    def _follow_management(self) -> bool:
        """Read the trust topics from the beginning, once all three exist (each created if it is missing and
        the controller may); False while one cannot be found yet."""
        from kafka import KafkaConsumer, TopicPartition

        if self._mgmt is None:
            self._mgmt = KafkaConsumer(**self.store.get_kafka_config("consumer", extra="crypto"))
        topics = (self.settings.chains_topic, self.settings.allowlist_topic, self.settings.denylist_topic)
        for topic in topics:
            if topic in self._trust_partitions or not self._creator.due(topic):
                continue
            partitions = self._mgmt.partitions_for_topic(topic)
            if not partitions and topic in self._creator.ensure([topic]):
                partitions = self._mgmt.partitions_for_topic(topic)  # just created: may take a lookup more
            if partitions:
                self._trust_partitions[topic] = sorted(partitions)
                self._creator.found(topic)
        if len(self._trust_partitions) < len(topics):
            return False
        self._mgmt.assign([TopicPartition(t, p) for t in topics for p in self._trust_partitions[t]])
        self._mgmt.seek_to_beginning()
        return True

    def _poll_management(self) -> None:
        trust: list[tuple[str, bytes]] = []
        for tp, records in self._mgmt.poll(timeout_ms=0).items():
            for record in records:
                if record.value is None:
                    continue
                if tp.topic != self.settings.chains_topic:
                    # folded once per poll (Credentials logs what it refuses, rate-limited)
                    trust.append(("allow" if tp.topic == self.settings.allowlist_topic else "deny", record.value))
                    continue
                try:
                    self.credentials.offer_chain(record.value)
                except KafkaRatchetError as exc:
                    # keyed by one of three topics and an error class: a flood costs a line per interval
                    if self._limiter.allow((tp.topic, type(exc).__name__)):
                        log.info("ignored a message on %s: %s", tp.topic, exc)
                except Exception as exc:  # a bug costs this record, not the ones behind it
                    if self._limiter.allow(("bug", type(exc).__name__)):
                        log.error("unexpected %s handling a message on %s (ignored): %s", type(exc).__name__,
                                  tp.topic, exc)
        if trust:
            self.credentials.apply_trust_records(trust)
        self.credentials.persist_trust()

    def _handle_batch(self, tp: Any, records: list[Any]) -> None:
        from kafka.structs import OffsetAndMetadata

        decided: list[tuple[bytes, bytes]] = []
        try:
            futures = [f for f in (self._judge(tp.topic, r.value, decided) for r in records) if f is not None]
            for future in futures:
                future.get(timeout=10)
        except Exception as exc:  # kafka-python's send errors: re-read this batch rather than lose it
            for key in decided:  # judged again, not taken for replays
                self._decided.pop(key, None)
            log.warning("forwarding failed (%s); requests will be judged again", exc)
            self._kc.seek(tp, records[0].offset)
            return
        self._kc.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)})

    def _judge(self, topic: str, value: bytes | None, decided: list[tuple[bytes, bytes]]) -> Any:
        """Forward an allowed request (returns the send future), or refuse it (returns None).

        A decision about an identified requester is an audit line of its own; any other refusal is counted
        in the summary of its topic (see the module docstring). The (requester, request id) of each
        decided request goes to ``decided`` and is not judged again unless the batch is read again.
        """
        root = topic[: -len(self.settings.subs_suffix)] if topic.endswith(self.settings.subs_suffix) else topic
        try:
            decision = self._decide(root, value, decided)
        except Exception as exc:  # a bug costs this record (refused), never the batch behind it
            if self._limiter.allow(("bug", type(exc).__name__)):
                log.error("unexpected %s judging a record on %s (refused): %s", type(exc).__name__, topic, exc)
            decision = "internal-error"
        if isinstance(decision, str):
            self.refused += 1
            self.unverified += 1
            self._tally.add(topic, decision)
            return None
        request, outcome = decision
        requester, request_id = fingerprint(request.signer), request.request_id.hex()[:8]
        if isinstance(outcome, KafkaRatchetError):
            self.refused += 1
            audit.info("requester=%s root=%s request=%s decision=refused reason=%s", requester, root, request_id,
                       str(outcome).replace("\n", " "))
            return None
        if self._fault == "kill-before-forward":
            os.kill(os.getpid(), signal.SIGKILL)
        self.forwarded += 1
        audit.info("requester=%s root=%s request=%s decision=forwarded", requester, root, request_id)
        return self._kp.send(root + self.settings.reqs_suffix, value=outcome.raw)

    def _decide(self, root: str, value: bytes | None, decided: list[tuple[bytes, bytes]]
                ) -> str | tuple[kx.KeyRequest, kx.ForwardedRequest | KafkaRatchetError]:
        """A refusal reason (a fixed label) for a record that identifies nobody; else the request and its
        forward, or the error that refuses it.

        Identified means: a request signed by the leaf of a chain that validates, fresh, and not decided
        before. A signature alone proves nothing (anyone can make a key and sign), an old or already
        decided request can be replayed by anyone who read it: none of those is a decision.
        """
        if value is None:
            return "empty"
        try:
            message = kx.parse(value)
        except KafkaRatchetError as exc:
            return _reason(exc)
        if not isinstance(message, kx.KeyRequest):
            return "not-a-request"
        if message.root != root:
            return "wrong-root"
        try:
            message.check_signature(kx.Kind.REQUEST)
            self.credentials.trust.validate(message.chain)
        except KafkaRatchetError as exc:
            return _reason(exc)
        key = (message.signer, message.request_id)
        if key in self._decided:
            return "replayed"
        try:
            kx.verify_subscription(message, self.credentials.trust, max_age=self.settings.request_max_age)
        except ChainError as exc:  # the requester's rights (usage, topic, a denial for this topic)
            self._remember(key, decided)
            return message, exc
        except KafkaRatchetError:
            return "stale-or-future"
        self._remember(key, decided)
        mine = self.credentials.chain_for(Usage.CONTROLLER, root)
        if mine is None:
            return message, KeyExchangeError("this controller has no valid chain with controller usage for the root")
        try:
            return message, kx.forward_request(self.credentials.identity, mine[0], message)
        except KafkaRatchetError as exc:
            return message, exc

    def _remember(self, key: tuple[bytes, bytes], decided: list[tuple[bytes, bytes]]) -> None:
        self._decided[key] = None
        decided.append(key)
        while len(self._decided) > _MAX_DECIDED:
            self._decided.popitem(last=False)
