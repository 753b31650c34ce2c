"""Hostile traffic: what an attacker's records cost running nodes, and whether the nodes still work afterwards.

The attacker of docs/THREAT-MODEL.md writes any bytes to any topic and reads every topic; here it also
holds one authorised consumer identity. One run:

1. A producer node and a consumer node are provisioned under the bench's root of trust, on a fresh root topic
   ``R``, with trust topics of their own (``<R>-chains``, ``<R>-allowlist``, ``<R>-denylist``): a run against a
   real cluster never writes to its real trust topics. The bench creates every topic it writes to first, as an
   administrator would on a cluster without automatic topic creation: ``R`` (the broker's default partitions),
   ``R.reqs``, ``R.keys``, ``R.subs`` and the three trust topics (with the settings ``kafkaratchet topics create``
   gives them). The producer seals a few records on ``R``; the consumer
   fetches the key once (warm), then an application consumer reads ``R`` for the whole run with deserializers
   that do not wait for missing keys.
2. Hostile records are written with a raw kafka-python producer, on partition 0 (on the compacted trust topics
   with a record key, a digest of the value, as compaction demands), in *cases*: one kind of record on one topic
   (:data:`CASES`). Every case runs once per round; the order rotates from round to round
   (:func:`bench.common.interleave`), with a *control* case that writes nothing. The kinds:

   * ``rewrapped``: every certificate of the nodes' chains and the root's self-signed certificate, wrapped as a
     version 1 trust update (``[1, "deny"|"allow", cert, chain]``) and as a v2-shaped one
     (``[2, cert.body, cert.signature, chain]``), with no chain, the root's, and the nodes' own chains;
   * ``patterns``: unsigned certificates carrying topic patterns, 64 KiB per record: chains of 8 linked
     certificates from the real root (``certs.MAX_PATTERNS`` patterns of 256 characters each, topped up with
     literal topics); inside trust updates, key requests (on ``R.reqs`` and ``R.subs``, for the producer's real
     key id) and alone on the chains topic (half of them for a node's own key);
   * ``pattern-floods``: the same places, with one certificate whose body holds thousands of patterns
     (64 KiB; decoding refuses more than ``certs.MAX_TOPICS`` topics);
   * ``self-denials``: ``make_trust_update("deny", key, None, key.public_key)`` by fresh keys, alternating with
     the same signed under a chain the key made for itself;
   * ``squats``: key requests by an authorised second consumer (a chain from the same root with ``consume``)
     reusing the request ids of the genuine requests read from ``R.reqs``, for the producer's real key id;
   * ``replays``: every genuine record read raw from the trust topics, ``R.reqs`` and ``R.keys`` (the nodes',
     the markers'), written again to the topic it came from (in a loop, up to the case's share);
   * ``bogus-key-ids``: records on ``R`` that look sealed (the first two bytes of a real record), with a random
     8-byte key id and random bytes after it, 64 B to 64 KiB.

3. After its hostile records a case writes a genuine *marker* on the same partition of each topic it wrote to,
   and waits (polling, no fixed sleep) until every node acted on it: a scoped denial of a throw-away key by an
   admin chain (denylist), an allow entry by an allowlist admin that is stored but changes nothing (allowlist), a
   renewed chain for each node's own key (chains), a request by an authorised consumer answered by the
   producer (``R.reqs``), an answer to a request the consumer node just made, written by an authorised producer
   identity (``R.keys``), a record sealed by the producer that the application consumer decrypts (``R``).
   Nodes read each partition in order, so once they acted on the markers they have judged every hostile record
   before them. ``R.subs`` has no marker: without a controller nobody reads it.

   Node CPU = CPU time of each node's management thread (Linux: ``/proc/self/task/<native_id>/schedstat``,
   nanoseconds, or ``stat``'s utime + stime in clock ticks when schedstat is missing; elsewhere "n/a"), from just
   before the case's first write until its markers took effect, markers and idle polling included (the control
   case shows what those cost alone). Per hostile record = that ÷ the case's records; per kind and overall = the
   sums over cases ÷ the sums of records, median over rounds. The application consumer's thread is measured too
   (it deserializes the records on ``R``).

4. Outcomes, checked after the last case: the consumer decrypts a record sealed after a forced
   ``producer.crypto.ratchet()`` (a new key exchange; timed, and the same measured before the attack); every
   node's trust state (roots, denials, scoped denials) equals the one before the attack except for the markers'
   scoped denials, and no node stored a trust entry that is not a marker; the producer, closed and started again
   on the same files, becomes ready, seals, and answers a key request; a node provisioned now and started for
   the first time replays the trust topics up to markers written behind everything (timed from its construction,
   and the same measured before the attack).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.files.provisioning import ROLE_USAGES
from kafkaratchet.node.clients import assign_all
from kafkaratchet.node.trusttopics import entry_record_key
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    MAX_CHAIN_LENGTH,
    MAX_CHAIN_SIZE,
    MAX_PATTERNS,
    MAX_REGEX_LENGTH,
    MAX_TOPIC_LENGTH,
    MAX_TOPICS,
    Chain,
    Usage,
    issue_certificate,
)
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.protocol.records import Role, seal
from kafkaratchet.protocol.trust import TRUST_CONTEXT, TrustState, TrustUpdate, make_trust_update

from .common import RunningNode, Summary, Trust, create_topics, interleave, unique

#: the kinds of hostile records, and what each one is
KINDS: dict[str, str] = {
    "rewrapped": "certificates re-wrapped as trust updates (v1, v2-shaped)",
    "patterns": "unsigned certificates with 64 KiB of topic patterns (8 linked, 16 patterns each)",
    "pattern-floods": "a certificate body of 64 KiB with thousands of patterns (refused)",
    "self-denials": "self-denials by chainless keys and self-made chains",
    "squats": "squatted request ids (an authorised consumer)",
    "replays": "replays of genuine management and key-exchange records",
    "bogus-key-ids": "records with bogus key ids on the data topic",
}


@dataclass(frozen=True)
class Case:
    """One kind of hostile record on one topic (a label: denylist, allowlist, chains, reqs, subs, keys, data)."""

    kind: str
    topic: str

    @property
    def name(self) -> str:
        return f"{self.kind} on {self.topic}"


CASES: tuple[Case, ...] = (
    Case("rewrapped", "denylist"), Case("rewrapped", "allowlist"),
    Case("patterns", "denylist"), Case("patterns", "allowlist"), Case("patterns", "chains"),
    Case("patterns", "reqs"), Case("patterns", "subs"),
    Case("pattern-floods", "denylist"), Case("pattern-floods", "allowlist"), Case("pattern-floods", "chains"),
    Case("pattern-floods", "reqs"), Case("pattern-floods", "subs"),
    Case("self-denials", "denylist"),
    Case("squats", "reqs"),
    Case("replays", "denylist"), Case("replays", "allowlist"), Case("replays", "chains"),
    Case("replays", "reqs"), Case("replays", "keys"),
    Case("bogus-key-ids", "data"),
)
CONTROL = "control (markers only)"
NODES = ("producer", "consumer")
#: lifetime of the nodes' chains: finite, so that a renewed chain on the chains topic is adopted (a marker)
LIFETIME = 7 * 86_400
_TIMEOUT = 90.0
_WARM_RECORDS = 20
_BOGUS_SIZES = (64, 1024, 16 * 1024, 64 * 1024 - 64)
_PARKED = 64


def thread_cpu_seconds(thread: threading.Thread) -> float | None:
    """CPU time of ``thread`` (user + system) from /proc, by its ``native_id``; None off Linux or once it ended."""
    native_id = getattr(thread, "native_id", None)
    if native_id is None or not sys.platform.startswith("linux"):
        return None
    task = Path(f"/proc/self/task/{native_id}")
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((task / "schedstat").read_text().split()[0]) / 1e9  # nanoseconds on the CPU
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, clock ticks
    return None


def cpu_clock() -> str:
    """Which clock :func:`thread_cpu_seconds` reads here."""
    if not sys.platform.startswith("linux"):
        return "n/a (not Linux)"
    task = Path(f"/proc/self/task/{threading.get_native_id()}")
    if (task / "schedstat").exists():
        return "/proc/self/task/<tid>/schedstat (ns)"
    return f"/proc/self/task/<tid>/stat utime+stime (1/{os.sysconf('SC_CLK_TCK')} s ticks)"


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()


def _wait(condition: Callable[[], Any], what: str, timeout: float = _TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"hostile bench: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def _pattern(tag: str) -> str:
    """A 256-character pattern written to backtrack catastrophically, were it ever compiled and run."""
    head, unit, tail = f"^({tag}|{tag}x)+(y|yy)+", "(a|aa)+", "z{1,99}$"
    return head + unit * ((MAX_REGEX_LENGTH - len(head) - len(tail)) // len(unit)) + tail


def _literal(tag: str) -> str:
    return (tag + "-").ljust(MAX_TOPIC_LENGTH, "t")


class Tail:
    """A raw consumer on every partition of one topic, from the beginning: what the attacker reads."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        self.partitions = assign_all(self.consumer, topic)

    def take(self) -> list[bytes]:
        """Every value written since the last call (up to the end offsets as of this call)."""
        ends = self.consumer.end_offsets(self.partitions)
        values: list[bytes] = []
        deadline = time.monotonic() + _TIMEOUT
        while any(self.consumer.position(tp) < ends[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise RuntimeError("hostile bench: a raw reader did not reach the end of its topic")
            for batch in self.consumer.poll(timeout_ms=100).values():
                values += [r.value for r in batch if r.value is not None]
        return values

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


class Reader(threading.Thread):
    """The consumer node's application consumer on ``R``: deserializers that never wait for a key."""

    def __init__(self, node: RunningNode, topic: str) -> None:
        super().__init__(name="hostile-bench-reader", daemon=True)
        self.consumer = node.consumer(max_key_wait_intervals=0, key_wait_interval=0, fetch_max_wait_ms=50)
        assign_all(self.consumer, topic)
        self.decrypted = 0
        self.not_decrypted = 0  # when read (some open later, once their key arrived)
        self.decrypted_later = 0
        self.markers: set[bytes] = set()
        self.failure: str | None = None
        self._stop_event = threading.Event()
        # the latest records that were not decrypted when read, retried after every poll (as an application
        # parks them): a producer that stepped its ratchet (after a denial) seals the next marker with a new key
        self._parked: collections.deque[Any] = collections.deque(maxlen=_PARKED)

    def _opened(self, message: Any) -> None:
        text = message.getMessage(retry=False)
        if text.startswith(b"marker:"):
            self.markers.add(text)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                for batch in self.consumer.poll(timeout_ms=100).values():
                    for record in batch:
                        message = record.value
                        if message is None:
                            continue
                        if message.isCleartext(retry=False):
                            self.decrypted += 1
                            self._opened(message)
                        else:
                            self.not_decrypted += 1
                            if message.isPossiblyDecryptable():
                                self._parked.append(message)
                for message in [m for m in self._parked if m.isCleartext()]:
                    self._parked.remove(message)
                    self.decrypted_later += 1
                    self._opened(message)
        except Exception as exc:  # reported in the results; the bench's own thread must not die silently
            self.failure = f"{type(exc).__name__}: {exc}"

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class _Signer:
    """An identity with a one-certificate chain from the bench's root."""

    def __init__(self, trust: Trust, usages: list[str]) -> None:
        self.identity = SigningIdentity.generate()
        self.chain = Chain.of(issue_certificate(trust.root, self.identity.public_key, usages=usages))
        self.raw_chain = self.chain.encode()


class Scene:
    """The nodes, the attacker's clients, and everything one run writes and checks."""

    def __init__(self, trust: Trust, say: Callable[[str], None]) -> None:
        self.trust = trust
        self.say = say
        self.root = unique("hostile")
        self.crypto = {"chains_topic": f"{self.root}-chains", "allowlist_topic": f"{self.root}-allowlist",
                       "denylist_topic": f"{self.root}-denylist"}
        self.topics = {"denylist": self.crypto["denylist_topic"], "allowlist": self.crypto["allowlist_topic"],
                       "chains": self.crypto["chains_topic"], "reqs": self.root + ".reqs",
                       "subs": self.root + ".subs", "keys": self.root + ".keys", "data": self.root}
        self.stack = contextlib.ExitStack()
        # batches of 512 KiB: Apache Kafka refuses a batch over its max.message.bytes (1 MiB by default)
        self.writer = KafkaProducer(bootstrap_servers=trust.bootstrap, linger_ms=20, batch_size=1 << 19,
                                    max_request_size=4 << 20, acks=1)
        self.stack.callback(self.writer.close)
        self.tails: dict[str, Tail] = {}
        self.hostile: set[bytes] = set()  # digests of every hostile record written (replays excepted)
        self.genuine: dict[str, dict[bytes, bytes]] = {label: {} for label in self.topics}
        self.requests: dict[bytes, kx.KeyRequest] = {}  # genuine key requests read from R.reqs, by request id
        self.answers: dict[bytes, kx.KeyAnswer] = {}  # genuine answers read from R.keys, by request id
        self.written: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self.marker_entries: set[bytes] = set()  # raw trust entries of every marker
        self.marker_keys: set[bytes] = set()  # keys the denylist markers denied (scoped)
        self.counter = itertools.count()
        self.admin_deny = _Signer(trust, [Usage.DENYLIST])
        self.admin_allow = _Signer(trust, [Usage.ALLOWLIST])
        self.requester = _Signer(trust, [Usage.CONSUME])  # sends the R.reqs markers
        self.squatter = _Signer(trust, [Usage.CONSUME])  # the attacker's own authorised consumer
        self.answerer = _Signer(trust, [Usage.PRODUCE])  # writes the R.keys markers
        kems = [KemPrivateKey(KemType.X25519), KemPrivateKey(KemType.X25519_MLKEM768)]
        self.kem_offer = [[int(k.kem), k.public_bytes] for k in kems]
        self.roles: dict[bytes, str] = {}
        self.nodes: dict[str, RunningNode] = {}
        self.reader: Reader | None = None
        self.kid = b""
        self.record_prefix = b""
        self.marker_kem = kems
        self.configs: dict[str, Path] = {}
        self.baseline: dict[str, TrustState] = {}  # every node's trust state just before the attack

    # ------------------------------------------------------------------ nodes
    def provision(self, name: str, role: str) -> Path:
        path = self.trust.provision(f"{self.root}-{name}", role, crypto=self.crypto, lifetime=LIFETIME)
        self.roles[self.trust.public_keys[f"{self.root}-{name}"]] = role
        return path

    def start(self) -> None:
        from kafkaratchet.node.topicsetup import exchange_topic_specs, trust_topic_specs

        create_topics(self.trust.bootstrap, [self.topics["data"]], specs=[
            *trust_topic_specs([self.topics[label] for label in ("chains", "allowlist", "denylist")]),
            *exchange_topic_specs(self.root)])
        self.configs = {"producer": self.provision("producer", "producer"),
                        "consumer": self.provision("consumer", "consumer")}
        self.stack.callback(self._close_nodes)
        for name in NODES:
            self.nodes[name] = RunningNode(self.configs[name])
        blobs = [self.seal(b"warm %d" % i) for i in range(_WARM_RECORDS)]
        self.send("data", blobs)
        self.record_prefix = blobs[0][:2]
        self.tail("reqs")  # the attacker reads the key-exchange topics from the start
        self.tail("keys")
        opened = self.consumer.crypto.waiter.open(self.root, Role.VALUE, blobs[0], wait=30.0, retrier=None)
        if not opened.isCleartext():
            raise RuntimeError("hostile bench: the consumer did not get the producer's key")
        self.reader = Reader(self.consumer, self.root)
        self.reader.start()
        _wait(lambda: self.reader is not None and self.reader.decrypted >= _WARM_RECORDS,
              "the application consumer to decrypt the warm-up records")

    @property
    def producer(self) -> RunningNode:
        return self.nodes["producer"]

    @property
    def consumer(self) -> RunningNode:
        return self.nodes["consumer"]

    def _close_nodes(self) -> None:
        if self.reader is not None and self.reader.is_alive():
            self.reader.stop()
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.close()
        for tail in self.tails.values():
            tail.close()

    def seal(self, text: bytes, node: RunningNode | None = None) -> bytes:
        blob: bytes = (node or self.producer).crypto.getValueSerializer().serialize(self.root, None, text)
        self.kid = blob[2:10]
        return blob

    def cpu(self) -> dict[str, float | None]:
        threads = {name: node.crypto.exchange.thread for name, node in self.nodes.items()}
        if self.reader is not None:
            threads["reader"] = self.reader
        return {name: thread_cpu_seconds(thread) for name, thread in threads.items()}

    # ------------------------------------------------------------------ the attacker's clients
    def send(self, label: str, values: list[bytes]) -> None:
        """Write ``values`` to partition 0 of a topic; on the (compacted) trust topics each with a record key.

        A compacted topic refuses records without a key (Apache Kafka does), so every record there, hostile or a
        marker, gets the key an allowlist or denylist entry has (a digest of the value); readers ignore keys.
        """
        topic = self.topics[label]
        keyed = label in ("denylist", "allowlist", "chains")
        for value in values:
            self.writer.send(topic, key=entry_record_key(value) if keyed else None, value=value, partition=0)
        self.writer.flush(timeout=_TIMEOUT)

    def tail(self, label: str) -> Tail:
        if label not in self.tails:
            self.writer.partitions_for(self.topics[label])  # waits for its metadata (created in start())
            self.tails[label] = Tail(self.trust.bootstrap, self.topics[label])
        return self.tails[label]

    def refresh(self, label: str) -> None:
        """Read what is new on a topic; keep the genuine records (and index requests and answers)."""
        for value in self.tail(label).take():
            digest = _digest(value)
            if digest in self.hostile:
                continue
            self.genuine[label][digest] = value
            if label in ("reqs", "keys"):
                try:
                    message = kx.parse(value)
                except KafkaRatchetError:
                    continue
                if isinstance(message, kx.KeyRequest):
                    self.requests[message.request_id] = message
                elif isinstance(message, kx.KeyAnswer):
                    self.answers[message.request_id] = message

    # ------------------------------------------------------------------ markers
    def deny_marker(self) -> bytes:
        key = os.urandom(32)
        entry = make_trust_update("deny", self.admin_deny.identity, self.admin_deny.chain, key,
                                  topics=[f"{self.root}-marker"])
        self.marker_entries.add(entry.raw)
        self.marker_keys.add(key)
        self.send("denylist", [entry.raw])
        return key

    def allow_marker(self) -> TrustUpdate:
        """An allow entry re-admitting the provisioned root: stored by every node, and no effect (root-exists)."""
        entry = make_trust_update("allow", self.admin_allow.identity, self.admin_allow.chain,
                                  self.trust.root.public_key, topics=[f"{self.root}-marker-{next(self.counter)}"],
                                  usages=[])
        self.marker_entries.add(entry.raw)
        self.send("allowlist", [entry.raw])
        return entry

    def chain_marker(self, key: bytes) -> Chain:
        """A renewed chain for a node's own key, outliving the one it holds: the node adopts it."""
        expiry = int(time.time()) + LIFETIME + 3600 + next(self.counter)
        chain = Chain.of(issue_certificate(self.trust.root, key, usages=ROLE_USAGES[self.roles[key]], pathlen=0,
                                           expiry=expiry))
        self.send("chains", [chain.encode()])
        return chain

    def mark(self, labels: set[str]) -> None:
        """Write a genuine marker behind the hostile records on each topic and wait until it took effect."""
        nodes = list(self.nodes.values())
        if "denylist" in labels:
            key = self.deny_marker()
            _wait(lambda: all(key in n.crypto.trust.state.scoped for n in nodes), "the denylist marker")
        if "allowlist" in labels:
            entry = self.allow_marker()
            _wait(lambda: all(n.crypto.trust.outcome(entry) != "not stored" for n in nodes), "the allowlist marker")
        if "chains" in labels:
            renewed = [(n, self.chain_marker(n.crypto.public_key)) for n in nodes]
            _wait(lambda: all(c in n.crypto.credentials.chains for n, c in renewed), "the chains markers")
        if "reqs" in labels:
            request = kx.make_request(self.requester.identity, self.requester.chain, self.root, [self.kid],
                                      self.marker_kem)
            self.send("reqs", [request.raw])

            def answered() -> bool:
                self.refresh("keys")
                return request.request_id in self.answers

            _wait(answered, "the producer's answer to the R.reqs marker")
        if "keys" in labels:
            kid, key = os.urandom(8), os.urandom(32)
            consumer = self.consumer.crypto
            marker = seal(kid, key, self.root, Role.VALUE, b"marker")
            consumer.waiter.open(self.root, Role.VALUE, marker, wait=0.0, retrier=None)

            def asked() -> kx.KeyRequest | None:
                self.refresh("reqs")
                return next((r for r in self.requests.values()
                             if r.signer == consumer.public_key and kid in r.key_ids), None)

            request = _wait(asked, "the consumer's request for the R.keys marker's key")
            answer = kx.make_answer(self.answerer.identity, self.answerer.chain, request,
                                    [kx.WrappedKey(kid, key, int(time.time()))])
            self.send("keys", [answer.raw])
            _wait(lambda: consumer.keyring.get(self.root, kid) is not None, "the consumer to install the R.keys marker")
        if "data" in labels:
            text = b"marker:%d" % next(self.counter)
            self.send("data", [self.seal(text)])
            reader = self.reader
            assert reader is not None
            _wait(lambda: text in reader.markers, "the application consumer to decrypt the data marker")
            commands = self.consumer.crypto.exchange.commands
            _wait(commands.empty, "the consumer's management thread to catch up")

    # ------------------------------------------------------------------ hostile records
    def build(self, case: Case, count: int) -> list[bytes]:
        builder = getattr(self, "_" + case.kind.replace("-", "_"))
        values: list[bytes] = builder(case.topic, count)
        return values

    def _rewrapped(self, label: str, count: int) -> list[bytes]:
        word = "deny" if label == "denylist" else "allow"
        node_chains = [chain for node in self.nodes.values() for chain in node.crypto.credentials.chains]
        victims = [self.trust.root_cert] + [cert for chain in node_chains for cert in chain.certificates]
        chains = [None, Chain.of(self.trust.root_cert).encode()] + [chain.encode() for chain in node_chains]
        forms = [wire.pack(form) for cert in victims for chain in chains
                 for form in ([1, word, cert.encode(), chain], [2, cert.body, cert.signature, chain])]
        return list(itertools.islice(itertools.cycle(forms), count))

    def _pattern_chain(self, leaf: bytes, usages: list[str], tag: str, many: bool) -> bytes:
        """64 KiB of unsigned certificates from the real root down to ``leaf``, full of topic patterns.

        ``many``: one certificate whose body holds thousands of patterns (decoding refuses it). Otherwise 8
        linked certificates, each with ``MAX_PATTERNS`` patterns of 256 characters, topped up with literals.
        """
        root = self.trust.root.public_key
        if many:
            topics = [f"^{tag}.{j:05d}" for j in range((MAX_CHAIN_SIZE - 1024) // (len(tag) + 9))]
            body = wire.pack([leaf, root, 0, 0, topics, usages, 0, {}])
            return wire.pack([1, [wire.pack([1, body, os.urandom(64)])]])
        subjects = [os.urandom(32) for _ in range(MAX_CHAIN_LENGTH - 1)] + [leaf]
        room = (MAX_CHAIN_SIZE - 16) // MAX_CHAIN_LENGTH - 80  # per encoded certificate, less its framing
        certs, issuer = [], root
        for i, subject in enumerate(subjects):
            topics = [_pattern(f"{tag}c{i}p{j}") for j in range(MAX_PATTERNS)]
            left = room - len(wire.pack([subject, issuer, 0, 0, topics, usages, None, {}]))
            topics += [_literal(f"{tag}c{i}l{k}") for k in range(min(MAX_TOPICS - MAX_PATTERNS,
                                                                      max(0, left // (MAX_TOPIC_LENGTH + 2))))]
            body = wire.pack([subject, issuer, 0, 0, topics, usages, None if subject != leaf else 0, {}])
            certs.append(wire.pack([1, body, os.urandom(64)]))
            issuer = subject
        chain = wire.pack([1, certs])
        assert len(chain) <= MAX_CHAIN_SIZE, len(chain)
        return chain

    def _update_bytes(self, kind: str, signer: SigningIdentity, subject: bytes, chain: bytes | None) -> bytes:
        """A trust update signed by ``signer`` over a body of its own, with any chain bytes (no checks)."""
        now = int(time.time())
        if kind == "deny":
            fields = ["deny", subject, signer.public_key, now, None, [], 0, 0, None, {}]
        else:
            fields = ["allow", subject, signer.public_key, now, None, sorted(Usage.ALL), now, 0, None, {}]
        body = wire.pack(fields)
        return wire.pack([2, body, signer.sign(TRUST_CONTEXT, body), chain])

    def _request_bytes(self, signer: SigningIdentity, chain: bytes, request_id: bytes) -> bytes:
        """A key request for the producer's real key id, validly signed by ``signer``, with any chain bytes."""
        body = wire.pack([self.root, request_id, int(time.time() * 1000), [self.kid], self.kem_offer, {}])
        return wire.pack([kx.VERSION, int(kx.Kind.REQUEST), body, chain, signer.sign(b"kr-request-v1", body)])

    def _patterns(self, label: str, count: int) -> list[bytes]:
        return self._pattern_records(label, count, many=False)

    def _pattern_floods(self, label: str, count: int) -> list[bytes]:
        return self._pattern_records(label, count, many=True)

    def _pattern_records(self, label: str, count: int, *, many: bool) -> list[bytes]:
        usages = ["allowlist", "consume", "denylist", "produce"]
        node_keys = [node.crypto.public_key for node in self.nodes.values()]
        values = []
        for i in range(count):
            outsider = SigningIdentity.generate()
            tag = f"h{next(self.counter)}"
            if label == "chains":
                leaf = node_keys[i % len(node_keys)] if i % 4 < 2 else outsider.public_key
                values.append(self._pattern_chain(leaf, usages, tag, many))
                continue
            chain = self._pattern_chain(outsider.public_key, usages, tag, many)
            if label == "denylist":
                subject = outsider.public_key if i % 4 < 2 else self.consumer.crypto.public_key
                values.append(self._update_bytes("deny", outsider, subject, chain))
            elif label == "allowlist":
                values.append(self._update_bytes("allow", outsider, os.urandom(32), chain))
            else:
                values.append(self._request_bytes(outsider, chain, os.urandom(16)))
        return values

    def _self_denials(self, label: str, count: int) -> list[bytes]:
        values = []
        for i in range(count):
            key = SigningIdentity.generate()
            chain = None if i % 2 == 0 else Chain.of(issue_certificate(key, key.public_key, usages=["consume"]))
            values.append(make_trust_update("deny", key, chain, key.public_key).encode())
        return values

    def _squats(self, label: str, count: int) -> list[bytes]:
        self.refresh("reqs")
        ids = sorted(self.requests)
        if not ids:
            return []
        squatter = self.squatter
        return [self._request_bytes(squatter.identity, squatter.raw_chain, request_id)
                for request_id in itertools.islice(itertools.cycle(ids), count)]

    def _replays(self, label: str, count: int) -> list[bytes]:
        self.refresh(label)
        seen = list(self.genuine[label].values())
        if not seen:
            return []
        return list(itertools.islice(itertools.cycle(seen), max(count, len(seen))))

    def _bogus_key_ids(self, label: str, count: int) -> list[bytes]:
        return [self.record_prefix + os.urandom(8) + os.urandom(_BOGUS_SIZES[i % len(_BOGUS_SIZES)])
                for i in range(count)]

    # ------------------------------------------------------------------ one sample
    def run_case(self, case: Case | None, count: int) -> dict[str, Any]:
        """Write ``count`` hostile records of ``case`` (None: the control, nothing), then its markers."""
        values = self.build(case, count) if case is not None else []
        if case is not None and case.kind != "replays":
            self.hostile.update(_digest(v) for v in values)  # before anything reads them back
        labels = {case.topic} if case is not None else {"denylist", "allowlist", "chains", "reqs", "keys", "data"}
        before = self.cpu()
        started = time.perf_counter()
        if values:
            assert case is not None
            self.send(case.topic, values)
        self.mark(labels)
        seconds = time.perf_counter() - started
        after = self.cpu()
        if case is not None:
            done = self.written[case.kind]
            done[case.topic] = done.get(case.topic, 0) + len(values)
        return {"records": len(values), "seconds": seconds, "bytes": sum(len(v) for v in values),
                "cpu_s": {name: (after[name] - b if b is not None and after.get(name) is not None else None)
                          for name, b in before.items()}}

    # ------------------------------------------------------------------ outcomes
    def decrypt_after_ratchet(self, producer: RunningNode) -> dict[str, Any]:
        """Step ``producer``'s ratchet, seal a record, time the running consumer opening it (a key exchange)."""
        producer.crypto.ratchet()
        text = b"after a ratchet step %d" % next(self.counter)
        blob = self.seal(text, producer)
        started = time.perf_counter()
        message = self.consumer.crypto.waiter.open(self.root, Role.VALUE, blob, wait=30.0, retrier=None)
        seconds = time.perf_counter() - started
        ok = message.isCleartext(retry=False) and message.getMessage(retry=False) == text
        return {"decrypted": ok, "seconds": seconds if ok else float("nan")}

    def trust_snapshot(self) -> dict[str, TrustState]:
        return {name: node.crypto.trust.state for name, node in self.nodes.items()}

    def trust_changes(self, node: RunningNode, before: TrustState) -> list[str]:
        """How ``node``'s trust differs from ``before`` (the markers' scoped denials and entries aside)."""
        trust = node.crypto.trust
        state = trust.state
        changes: list[str] = []
        if dict(state.roots) != dict(before.roots):
            changes.append(f"roots {len(before.roots)} -> {len(state.roots)}")
        if state.denied != before.denied:
            changes.append(f"{len(state.denied - before.denied)} key(s) denied")
        scoped = {k: v for k, v in state.scoped.items() if k not in self.marker_keys}
        if scoped != {k: v for k, v in before.scoped.items() if k not in self.marker_keys}:
            changes.append(f"{len(scoped)} key(s) with scoped denials")
        stored = [e for e in trust.entries() if e.raw not in self.marker_entries]
        if stored:
            changes.append(f"{len(stored)} hostile trust entries stored")
        return changes

    def fresh_node(self, tag: str) -> dict[str, Any]:
        """A node provisioned now and started for the first time: how long until it replayed the trust topics."""
        path = self.provision(f"fresh-{tag}", "consumer")
        key = self.trust.public_keys[f"{self.root}-fresh-{tag}"]
        denied = self.deny_marker()
        entry = self.allow_marker()
        chain = self.chain_marker(key)
        started = time.perf_counter()
        node: RunningNode | None = None
        out: dict[str, Any] = {"replayed": False, "ready_s": float("nan"), "seconds": float("nan"), "cpu_s": None}
        try:
            node = RunningNode(path, ready_timeout=_TIMEOUT)
            out["ready_s"] = time.perf_counter() - started
            crypto = node.crypto
            _wait(lambda: (denied in crypto.trust.state.scoped and crypto.trust.outcome(entry) != "not stored"
                           and chain in crypto.credentials.chains), "a fresh node to replay the trust topics")
            out["seconds"] = time.perf_counter() - started
            out["cpu_s"] = thread_cpu_seconds(crypto.exchange.thread)
            out["replayed"] = True
            if self.baseline:
                out["changes"] = self.trust_changes(node, self.baseline["producer"])
        except RuntimeError as exc:
            out["error"] = str(exc)
        finally:
            if node is not None:
                node.close()
        return out

    def restart_producer(self) -> dict[str, Any]:
        """Close the producer and start it again on the same files: ready, sealing, answering a key request."""
        self.producer.close()
        started = time.perf_counter()
        out: dict[str, Any] = {"restarted": False, "ready_s": float("nan"), "answer_s": float("nan")}
        try:
            node = RunningNode(self.configs["producer"], ready_timeout=_TIMEOUT)
        except RuntimeError as exc:
            out["error"] = str(exc)
            return out
        self.nodes["producer"] = node
        out["ready_s"] = time.perf_counter() - started
        sealed = bool(self.seal(b"sealed after the restart", node))
        answered = self.decrypt_after_ratchet(node)
        out["answer_s"] = answered["seconds"]
        out["cpu_s"] = thread_cpu_seconds(node.crypto.exchange.thread)
        out["changes"] = self.trust_changes(node, self.baseline["producer"])
        out["restarted"] = sealed and answered["decrypted"]
        return out


def _per_record(samples: list[dict[str, Any]], who: str) -> float:
    cpu = [s["cpu_s"].get(who) for s in samples]
    records = sum(s["records"] for s in samples)
    if not records or any(c is None for c in cpu):
        return float("nan")
    return sum(c for c in cpu if c is not None) / records


def _summaries(rounds: list[list[dict[str, Any]]], who: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Per round, the CPU of each thread over the round's samples ÷ their records; summarised over rounds."""
    out = {name: Summary.of([_per_record(r, name) for r in rounds]).as_dict() for name in who}
    out["worst node"] = Summary.of([max(_per_record(r, n) for n in NODES) for r in rounds]).as_dict()
    return out


def run(trust: Trust, *, records: int = 10_000, rounds: int = 3,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """One hostile run (see the module docstring); the results dict of the ``hostile`` measurement."""
    scene = Scene(trust, say)
    with scene.stack:
        scene.start()
        out: dict[str, Any] = {"root_topic": scene.root, "topics": scene.topics, "rounds": rounds,
                               "cpu_clock": cpu_clock(), "kinds": dict(KINDS)}
        say("    before the attack: a key exchange after a ratchet step, a fresh node's replay")
        scene.mark({"denylist", "allowlist", "chains", "reqs", "keys", "data"})  # genuine records on every topic
        decrypt_before = scene.decrypt_after_ratchet(scene.producer)
        fresh_before = scene.fresh_node("before")
        scene.baseline = scene.trust_snapshot()
        epoch = scene.producer.crypto.epoch

        per_kind = max(1, records // len(KINDS))
        share = {case: max(1, per_kind // sum(c.kind == case.kind for c in CASES) // rounds) for case in CASES}
        cases: dict[str, Callable[[], dict[str, Any]]] = {
            case.name: (lambda case=case: scene.run_case(case, share[case])) for case in CASES}
        cases[CONTROL] = lambda: scene.run_case(None, 0)
        samples = interleave(cases, rounds, progress=lambda text: say(f"    hostile {text}"))

        by_case = {case: samples[case.name] for case in CASES}
        round_samples = [[by_case[c][r] for c in CASES] for r in range(rounds)]
        threads = (*NODES, "reader")
        out["written"] = scene.written
        out["records"] = sum(s["records"] for rows in by_case.values() for s in rows)
        out["bytes"] = sum(s["bytes"] for rows in by_case.values() for s in rows)
        out["overall"] = {"cpu_s_per_record": _summaries(round_samples, threads),
                          "cpu_s": {name: sum(s["cpu_s"][name] or 0.0 for r in round_samples for s in r)
                                    for name in threads}}
        out["per_kind"] = {}
        for kind in KINDS:
            kind_rounds = [[by_case[c][r] for c in CASES if c.kind == kind] for r in range(rounds)]
            costs = {c.topic: Summary.of([max(_per_record([s], n) for n in NODES) for s in by_case[c]]).median
                     for c in CASES if c.kind == kind}
            measured = {topic: cost for topic, cost in costs.items() if cost == cost}
            out["per_kind"][kind] = {"records": sum(s["records"] for r in kind_rounds for s in r),
                                     "cpu_s_per_record": _summaries(kind_rounds, threads),
                                     "costliest_topic": max(measured, key=measured.__getitem__) if measured else None}
        out["per_case"] = {case.name: {"records": sum(s["records"] for s in by_case[case]),
                                       "cpu_s_per_record": _summaries([[s] for s in by_case[case]], threads),
                                       "seconds": Summary.of([s["seconds"] for s in by_case[case]]).as_dict()}
                           for case in CASES}
        control = samples[CONTROL]
        out["control"] = {"cpu_s": {name: Summary.of([s["cpu_s"][name] for s in control
                                                      if s["cpu_s"][name] is not None]).as_dict()
                                    for name in threads},
                          "seconds": Summary.of([s["seconds"] for s in control]).as_dict()}

        say("    after the attack: trust states, a key exchange, a producer restart, a fresh node")
        changes = {name: scene.trust_changes(node, scene.baseline[name]) for name, node in scene.nodes.items()}
        epoch_stepped = scene.producer.crypto.epoch != epoch
        reader = scene.reader
        assert reader is not None
        out["reader"] = {"decrypted": reader.decrypted, "not_decrypted": reader.not_decrypted,
                         "decrypted_later": reader.decrypted_later, "failure": reader.failure}
        decrypt_after = scene.decrypt_after_ratchet(scene.producer)
        consumer = scene.consumer.crypto
        out["consumer_state"] = {"open_requests": len(consumer.exchange.state.pending),
                                 "wanted_key_ids": sum(len(w.key_ids) for w in consumer.exchange.state.wants.values())}
        out["producer_state"] = {"requests_remembered": len(scene.producer.crypto.exchange.state.seen)}
        restart = scene.restart_producer()
        fresh_after = scene.fresh_node("after")
        changes["restarted producer"] = restart.pop("changes", [])
        changes["fresh node"] = fresh_after.pop("changes", [])
        out["decrypt_after_ratchet"] = {"before": decrypt_before, "after": decrypt_after}
        out["producer_restart"] = restart
        out["fresh_node"] = {"before": fresh_before, "after": fresh_after}
        out["trust_changes"] = {name: found for name, found in changes.items() if found}
        out["producer_epoch_stepped_by_attack"] = epoch_stepped
        out["outcomes"] = {
            "consumer_decrypted_after_attack": bool(decrypt_after["decrypted"]),
            "trust_state_unchanged": not any(changes.values()) and not epoch_stepped,
            "producer_restarted": bool(restart["restarted"]),
            "fresh_node_replayed": bool(fresh_after["replayed"]),
        }
    return out
