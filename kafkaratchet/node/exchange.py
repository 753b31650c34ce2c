"""The exchange loop: the node's one background thread, and the only holder of its :class:`ExchangeState`.

It owns the key-exchange consumer outright (kafka-python's consumer is not
thread-safe) and survives any input. Other threads reach it only through
:class:`Commands` (a queue): the sealers say "I seal for this root now", the key
waiter says "this key is missing". Every record read is handed to a handler
(:meth:`ExchangeLoop.dispatch`), each of which a test can call directly, on a loop
that was never started, with no broker.

An idle node costs next to nothing: the loop never blocks inside ``poll`` (which
kafka-python cannot interrupt) but polls without waiting and then waits on an
event that a command, a completed fetch or a metadata update sets
(:mod:`.kafkawakeup`), or until a request retry or maintenance is due; and once
nothing has happened for ``ACTIVE_WINDOW`` seconds the broker may hold its
fetches for ``IDLE_FETCH_WAIT_MS``. Lookups go to a client of their own
(:mod:`.lookups`), so they never queue behind those long fetches.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.contract import ExchangeConsumer, ExchangeProducer
from kafkaratchet.node.kafkawakeup import FetchHooks, fetch_hooks
from kafkaratchet.node.keytrade import KeyAnswers, KeyRequests
from kafkaratchet.node.lookups import AdminLookups, admin_lookups
from kafkaratchet.node.sealers import Sealers
from kafkaratchet.node.state import WANT_TTL, ExchangeState
from kafkaratchet.node.subscriptions import Subscriptions
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.node.waiter import KeyWaiter
from kafkaratchet.protocol.certs import Usage
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import TrustStore, scope_matches
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["Commands", "ExchangeLoop"]

log = logging.getLogger(__name__)

#: a consumer without fetch hooks (a stand-in, another kafka-python) is polled with this timeout, as always
_POLL_MS = 50
#: maintain() runs at most, and about, once a second
_MAINTENANCE_S = 1.0
#: how long the broker may hold a fetch that finds no record while the node idles; the loop does not
#: wait for it (a command or a record ends its wait at once), but a partition assigned meanwhile is
#: fetched only when that fetch returns, so this bounds the first key exchange for a new root after a
#: long idle (a fetch that comes back empty costs kafka-python 2 to 3 ms of CPU: some 4 ms a second in all
#: with partitions led by 3 brokers, against about 60 ms at the usual 100 ms)
IDLE_FETCH_WAIT_MS = 2_000
#: the node counts as busy this long after it starts, a command (a key wanted, a root sealed for), a new
#: subscription or records read: its fetches then wait only the key-exchange consumer's own
#: ``fetch_max_wait_ms``, so that partitions assigned then (a fresh node's first key requests) are soon
#: fetched, and on a broker that answers a waiting fetch late even when a record came (Tansu) the next
#: requests are seen soon too
ACTIVE_WINDOW = 5.0
#: partitions are assigned but no fetch is in flight (no leader or connection yet): poll again after this
_NO_FETCH_RETRY_S = 0.1
#: a completed fetch that poll() did not drain wakes the loop at once; twice in a row, it waits this long
_REPOLL_S = 0.005


def _admin_source(store: KafkaCryptoStore, kp: Any) -> dict[str, Any]:
    """The Kafka settings to create topics with: the node's own, else those its key-exchange producer
    was built with (a kafkacrypto-style caller may build its clients from settings of its own)."""
    config = store.get_kafka_config("consumer", extra="crypto")
    if not config.get("bootstrap_servers"):
        built = getattr(kp, "config", None)
        if isinstance(built, dict):
            config = {k: v for k, v in built.items() if not k.endswith("serializer")}
    return config


class Commands:
    """What other threads ask of the exchange loop; safe from any thread, never blocks.

    Every command also sets the loop's wake event, so a loop waiting for records (or for its next
    deadline) handles it at once; a fetch that completes sets it too (:mod:`.kafkawakeup`).
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self.get = self._queue.get
        self.get_nowait = self._queue.get_nowait
        self.empty = self._queue.empty

    def produce(self, root: str) -> None:
        """This node seals for ``root`` now: answer requests for its keys."""
        self._queue.put(("produce", root))
        self._wake.set()

    def want(self, root: str, key_id: bytes) -> None:
        """A deserializer is missing this key: ask other nodes for it."""
        self._queue.put(("want", (root, key_id)))
        self._wake.set()

    def wake(self) -> None:
        """End the loop's current wait (a fetch completed, or the node stops)."""
        self._wake.set()

    def rearm(self) -> None:
        """The loop looks at everything now: only what happens after this call ends its next wait."""
        self._wake.clear()

    def wait(self, timeout: float) -> bool:
        """The loop waits at most ``timeout`` s for a command or a wake; True if one came."""
        return self._wake.wait(timeout)


class ExchangeLoop:
    """Follows the management topics, asks for and hands out keys, applies trust updates, steps the ratchet.

    Only this object holds :attr:`state`; only its thread (or a test calling a handler in its place)
    runs a method below other than :meth:`start` and :meth:`stop`.
    """

    def __init__(self, node_id: str, store: KafkaCryptoStore, settings: NodeSettings, identity: SigningIdentity,
                 credentials: Credentials, trust: TrustStore, ring: KeyRing, sealers: Sealers, waiter: KeyWaiter,
                 kp: ExchangeProducer, kc: ExchangeConsumer, commands: Commands, limiter: RateLimiter,
                 stop: threading.Event) -> None:
        self.node_id = node_id
        self._store = store
        self._settings = settings
        self._credentials = credentials
        self._ring = ring
        self._sealers = sealers
        self.kp, self.kc = kp, kc  # the key-exchange clients, used by this loop's thread only
        self.commands = commands
        self.limiter = limiter
        self._stop = stop
        self.ready = threading.Event()
        self.state = ExchangeState()
        self.subscriptions = Subscriptions(kc, kp, limiter, TopicCreator(
            _admin_source(store, kp), settings, enabled=settings.create_topics))
        self.requests = KeyRequests(node_id, settings, identity, credentials, trust, ring, kp, self.subscriptions,
                                    limiter, waiter.notify)
        self.answers = KeyAnswers(settings, identity, credentials, trust, ring, kp, limiter)
        self.thread = threading.Thread(target=self.run, name=f"kafkaratchet-{node_id}", daemon=True)
        self._hooks: FetchHooks | None = None  # set when the thread starts, if kc is kafka-python's own
        self._lookups: AdminLookups | None = None  # the lookup client of a running loop, if one was built
        self._early_wakes = 0

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop and wait (at most ``timeout`` s) for its thread; a loop never started just stops."""
        self._stop.set()
        self.commands.wake()
        if self.thread.ident is not None:
            self.thread.join(timeout=timeout)

    def run(self) -> None:
        self.state.last_activity = time.monotonic()
        self._hooks = fetch_hooks(self.kc)
        if self._hooks is not None:
            self._hooks.listen(self.commands.wake)
        self._open_lookups()
        try:
            started = False
            while not self._stop.is_set():
                try:
                    if not started:  # retried like any step: a broker down at start must not end the thread
                        self.start_up()
                        started = True
                    self.step()
                except Exception as exc:  # the management thread must never die; Kafka errors are weather
                    if self.limiter.allow(("loop", type(exc).__name__)):
                        log.warning("management thread of %s: %s: %s (continuing)", self.node_id,
                                    type(exc).__name__, exc)
                    self._stop.wait(0.2)
        finally:
            self._close_lookups()
            if self._hooks is not None:
                self._hooks.close()

    def start_up(self) -> None:
        """Follow the trust topics, and answer for the roots this node sealed for before a restart."""
        self.follow_management_topics()
        for root in sorted({key.root for key in self._ring.own_keys()}):
            # a restarted producer answers for what it sealed before, even before it seals again
            self._sealers.adopt([root])
            self.handle("produce", root)

    def step(self) -> None:
        """One turn of the loop: commands, due requests, the records read, maintenance, then a wait.

        The wait ends at once when a command comes or a fetch completes (:class:`Commands`, :mod:`.kafkawakeup`),
        and at the latest when a request is due again or maintenance is (at most a second)."""
        state = self.state
        self.commands.rearm()  # from here on, a command or a completed fetch ends the wait below
        self._drain_commands()
        self.requests.send_due(state)
        read = 0
        if state.assigned:
            if self._hooks is not None:
                self._hooks.set_wait(self._fetch_wait_ms())
                batches = self.kc.poll(timeout_ms=0)
            else:
                batches = self.kc.poll(timeout_ms=self._poll_ms())
            for tp, records in batches.items():
                read += len(records)
                for record in records:
                    self.dispatch(tp.topic, record.value)
            if read:
                state.last_activity = time.monotonic()
                self._early_wakes = 0
            if state.trust_batch:
                self.on_trust_records()
            if state.bite_roots:
                self.bite()
        self.maintain()
        if read or (state.assigned and self._hooks is None):
            return  # more records may be buffered; or the poll above did the waiting
        self._wait()

    def _wait(self) -> None:
        timeout = self._next_deadline() - time.monotonic()
        if self.state.assigned and self._hooks is not None:
            armed = self._hooks.arm(self.commands.wake)
            if armed is None:
                timeout = min(timeout, _NO_FETCH_RETRY_S)
            self._early_wakes = self._early_wakes + 1 if armed else 0
            if self._early_wakes > 1:  # a completed fetch poll() did not drain: do not spin on it
                self._stop.wait(_REPOLL_S)
        self.commands.wait(max(0.0, timeout))

    def _next_deadline(self) -> float:
        """When the loop has work without any event: maintenance, a request to send again, a queued step."""
        state = self.state
        deadline = state.last_maintenance + _MAINTENANCE_S
        for want in state.wants.values():
            deadline = min(deadline, want.next_request)
        if state.bite_roots:
            deadline = min(deadline, state.last_bite + 1.0)
        return deadline

    def _poll_ms(self) -> int:
        """The fallback poll's timeout: ``_POLL_MS``, or less when a deadline comes sooner."""
        return max(0, min(_POLL_MS, int((self._next_deadline() - time.monotonic()) * 1000)))

    def _fetch_wait_ms(self) -> int:
        """How long the broker may hold the next fetches: the consumer's own setting while the node is
        busy, ``IDLE_FETCH_WAIT_MS`` once it idles (a record or command makes it busy again)."""
        assert self._hooks is not None
        configured = self._hooks.configured_wait_ms
        if time.monotonic() - self.state.last_activity < ACTIVE_WINDOW:
            return configured
        return max(configured, IDLE_FETCH_WAIT_MS)

    def _open_lookups(self) -> None:
        """Metadata and offset lookups get a client of their own (:mod:`.lookups`), which never fetches
        and asks for one topic at a time; built from ``kc``'s own settings, only when ``kc`` is
        kafka-python's consumer. Otherwise (or if it cannot be built) ``kc`` answers them, as it always
        did; the topic creator then builds an admin client per attempt, as it always did."""
        config = getattr(self.kc, "config", None)
        if self._hooks is None or not isinstance(config, dict) or not config.get("bootstrap_servers"):
            return
        try:
            self._lookups = admin_lookups(config)
        except Exception as exc:  # the consumer answers lookups instead, only slower
            log.debug("no separate lookup client for node %s: %s: %s", self.node_id, type(exc).__name__, exc)
            return
        self.subscriptions.lookups = self._lookups
        if self.subscriptions.creator is not None:
            self.subscriptions.creator.admin = self._lookups.admin

    def _close_lookups(self) -> None:
        lookups, self._lookups = self._lookups, None
        if lookups is None:
            return
        self.subscriptions.lookups = self.kc
        if self.subscriptions.creator is not None:
            self.subscriptions.creator.admin = None
        try:
            lookups.close()
        except Exception as exc:  # closing is best effort
            log.debug("closing the lookup client of %s: %s: %s", self.node_id, type(exc).__name__, exc)

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            self.handle(*command)

    # ------------------------------------------------------------------ handlers
    def handle(self, kind: str, arg: Any) -> None:
        """A command from another thread (:class:`Commands`)."""
        self.state.last_activity = time.monotonic()
        if kind == "produce":
            self.on_produce(arg)
        elif kind == "want":
            self.requests.want(self.state, *arg)

    def on_produce(self, root: str) -> None:
        """This node seals for ``root``: follow ``R.reqs`` to answer for its keys."""
        settings, state = self._settings, self.state
        if root in state.produce_roots:
            return
        state.produce_roots.add(root)
        self._ring.persist()  # so a restart knows this root before it seals again
        unanswerable = self._credentials.chain_for(Usage.PRODUCE, root) is None
        if unanswerable and self.limiter.allow(("no-produce", root)):
            log.warning("node %s seals records for root %s but has no chain allowing it to hand out "
                        "their keys; consumers will not be able to open them", self.node_id, root)
        self.subscriptions.follow(state, root + settings.reqs_suffix,
                                  ("time", time.time() - settings.request_max_age - settings.clock_skew))
        # answers go to R.keys: have it exist before the first consumer asks (broker auto-creation
        # would otherwise sit on that consumer's critical path, about 130 ms on Tansu)
        self.subscriptions.partitions(root + settings.keys_suffix)

    def follow_management_topics(self) -> None:
        settings = self._settings
        topics = (settings.chains_topic, settings.allowlist_topic, settings.denylist_topic)
        self.subscriptions.follow(self.state, topics, "beginning")
        from kafkaratchet.node.trusttopics import start_trust_topic_check

        # once the topics exist, on its own thread: warn when the broker deletes trust entries
        start_trust_topic_check(self._store.get_kafka_config("consumer", extra="crypto"), list(topics))
        if not self.state.unresolved:
            self.ready.set()

    def dispatch(self, topic: str, value: bytes | None) -> None:
        """One record read on ``topic``: handled, or ignored with a (rate-limited) log line; never raises."""
        if value is None:
            return
        settings = self._settings
        try:
            if topic in (settings.allowlist_topic, settings.denylist_topic):
                # folded once per poll batch (a node replaying the topics at start folds thousands at once)
                self.state.trust_batch.append(("allow" if topic == settings.allowlist_topic else "deny", value))
            elif topic == settings.chains_topic:
                self.on_chain(value)
            elif topic.endswith(settings.reqs_suffix):
                self.on_request(topic, value)
            elif topic.endswith(settings.keys_suffix):
                self.on_answer(topic, value)
        except KafkaRatchetError as exc:
            if self.limiter.allow(("bad-input", topic, type(exc).__name__)):
                log.info("ignored a message on %s: %s", topic, exc)
        except Exception as exc:  # a bug must cost this one record, not the valid ones behind it
            if self.limiter.allow(("bug", topic, type(exc).__name__)):
                log.error("unexpected %s handling a message on %s (ignored): %s", type(exc).__name__, topic, exc)

    def on_request(self, topic: str, value: bytes) -> None:
        self.answers.on_request(self.state, topic, value)

    def on_answer(self, topic: str, value: bytes) -> None:
        self.requests.on_answer(self.state, topic, value)

    def on_chain(self, value: bytes) -> None:
        self._credentials.offer_chain(value)

    def on_trust_records(self) -> None:
        """Fold the allowlist and denylist records read since the last call; queue the steps denials need."""
        state = self.state
        batch, state.trust_batch = state.trust_batch, []
        change = self._credentials.apply_trust_records(batch)
        for _key, scope in change.denial_scopes():
            state.bite_roots.update(r for r in state.produce_roots if scope_matches(scope, r))
        if change.roots_changed:  # a root narrowed itself: whoever it no longer covers must lose the keys too
            state.bite_roots.update(state.produce_roots)

    def bite(self) -> None:
        """Revocation that bites: new keys and key ids for the produced roots a denial covers, which the
        denied keys' chains can no longer obtain. Denials read in one batch (a node replaying the denylist
        at start) cost one step, and steps are at least a second apart."""
        state = self.state
        if time.monotonic() - state.last_bite < 1.0:
            return
        roots, state.bite_roots = state.bite_roots, set()
        log.warning("stepping the ratchet for root(s) %s after denylist entries", ", ".join(sorted(roots)))
        state.last_bite = time.monotonic()
        self._sealers.step(roots)

    def maintain(self) -> None:
        """At most once a second: late topics, readiness, queued steps, expiry, the ratchet interval."""
        state, settings = self.state, self._settings
        now = time.monotonic()
        if now - state.last_maintenance < _MAINTENANCE_S:
            return
        state.last_maintenance = now
        for topic, start in list(state.unresolved.items()):
            self.subscriptions.follow(state, topic, start)
        if not self.ready.is_set() and not state.unresolved:
            self.ready.set()
        if state.bite_roots:
            self.bite()
        self._credentials.persist_trust()
        cutoff = now - WANT_TTL
        for request_id, pending in list(state.pending.items()):
            if pending.sent < cutoff:
                del state.pending[request_id]
        keys = self._sealers.current_keys()
        if state.produce_roots and keys:
            # the oldest key still sealing decides: a root a scoped denial did not step keeps its key, and
            # must not keep it past the interval because another root's key is newer
            if time.time() - min(k.created for k in keys) >= settings.ratchet_interval:
                log.info("ratchet interval reached: stepping")
                self._sealers.step(None)
        self._sealers.expire(settings.key_max_age)
