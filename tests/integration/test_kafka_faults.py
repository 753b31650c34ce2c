"""Faults of a real three-node Apache Kafka cluster, and transactions (issue 13, item 5).

* **A broker dies under load.** The data topic and the root's ``R.reqs`` / ``R.keys`` / ``R.subs`` are
  created with explicit replica assignments so that one broker leads every partition; it is SIGKILLed
  while a producer node sends 2,000 records with ``acks=all`` and idempotence, stays down while the
  leaders move and a key is born, and is restarted (and made the leader again) mid-stream. Every
  record is decrypted exactly once, by nodes that were never restarted and by fresh ones.
* **A controller dies in a group of two.** Two ``kafkaratchet-controller`` daemons (subprocesses)
  share one consumer group; one is SIGKILLed by its PID while requests stream in; every request sent
  before, around and after the kill is forwarded, and subscribe-only consumers get their keys.
* **Transactions.** kafka-python 3.0.12 supports them (``KafkaProducer(transactional_id=...)``,
  ``init_transactions`` / ``begin_transaction`` / ``commit_transaction`` / ``abort_transaction``,
  ``KafkaConsumer(isolation_level="read_committed")``), and kafkaratchet's serializers are ordinary
  kafka-python serializers: a read_committed consumer node sees a transaction's sealed records
  exactly when it is committed.

Killed brokers are restarted in a ``finally`` and the cluster is awaited whole again (every broker
registered, every partition's in-sync replicas complete) before the next test, which shares it.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka import KafkaConsumer as RawConsumer
from kafka import KafkaProducer as RawProducer

from kafkaratchet import KafkaConsumer, KafkaCrypto, KafkaProducer
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.node.topicsetup import EXCHANGE_TOPIC_CONFIGS, TopicSpec, ensure_topics, exchange_topic_specs
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.tools.apachekafka import ApacheKafkaCluster

from .nodes import Cluster, Node, drain

if TYPE_CHECKING:
    from ..conftest import KafkaEngine

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: the broker that leads every partition of the first test's topics, and is killed
VICTIM = 2
PARTITIONS = 4
#: a record's key may take a whole leader failover (~9 s, broker.session.timeout.ms) plus retries
KEY_WAIT = 60.0


# --------------------------------------------------------------------------- helpers

def _await(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``condition`` until it returns something true (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _partitions(admin: KafkaAdminClient, topics: Sequence[str] | None = None
                ) -> dict[tuple[str, int], dict[str, Any]] | None:
    """(topic, partition) -> its metadata (leader_id, replica_nodes, isr_nodes); None while the brokers
    cannot say (all topics when ``topics`` is None)."""
    try:
        described = admin.describe_topics(list(topics) if topics is not None else None)
    except Exception:  # noqa: BLE001 - a broker just died or is starting: ask again
        return None
    return {(t["name"], p["partition_index"]): p for t in described for p in t["partitions"]}


def _wait_whole(kafka: ApacheKafkaCluster, timeout: float = 240.0) -> None:
    """Every broker registered, every partition of every topic led and its in-sync replicas complete."""
    kafka.wait_ready(timeout)
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=10000)
    try:
        def whole() -> bool:
            found = _partitions(admin)
            return found is not None and all(p["leader_id"] >= 0 and set(p["isr_nodes"]) == set(p["replica_nodes"])
                                       for p in found.values())
        _await(whole, timeout, "every partition's replicas in sync again", interval=0.25)
    finally:
        admin.close()


def _leaders(admin: KafkaAdminClient, topics: Sequence[str]) -> set[int]:
    found = _partitions(admin, topics)
    if found is None or len(found) != len(topics) * PARTITIONS:
        return set()
    return {p["leader_id"] for p in found.values()}


def _create_led_by(admin: KafkaAdminClient, leader: int, topics: dict[str, dict[str, str]], nodes: list[int]) -> None:
    """Create ``topics`` with ``leader`` first (preferred, so leading) in every partition's replicas."""
    others = [n for n in nodes if n != leader]
    spec = {name: {"assignments": {p: [leader, *others[p % 2:], *others[:p % 2]] for p in range(PARTITIONS)},
                   "configs": dict(configs)} for name, configs in topics.items()}
    admin.create_topics(spec, wait_for_metadata=True)
    _await(lambda: _leaders(admin, list(topics)) == {leader}, 60, f"broker {leader} leading every partition")


def _opened(records: list[Any], timeout: float = KEY_WAIT) -> list[bytes]:
    """The plaintexts of ``records`` (deserialized by a kafkaratchet node), each one opened."""
    deadline = time.monotonic() + timeout
    out = []
    for record in records:
        # isCleartext() retries (without waiting) with the keys the node holds by now
        _await(lambda r=record: r.value.isCleartext(), max(0.0, deadline - time.monotonic()),
               f"the key of the record at {record.topic}:{record.partition}:{record.offset}")
        out.append(record.value.getMessage())
    return out


def _seqs(plaintexts: list[bytes]) -> collections.Counter[int]:
    return collections.Counter(int(p.split()[1]) for p in plaintexts)


def _offsets_contiguous(records: list[Any]) -> None:
    by_partition: dict[int, list[int]] = collections.defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record.offset)
    for partition, seen in by_partition.items():
        assert seen == list(range(seen[0], seen[0] + len(seen))), f"partition {partition}: a gap or a repeat"


def _exchange_threads(nodes: dict[str, Node]) -> dict[str, threading.Thread]:
    return {name: node.crypto.exchange.thread for name, node in nodes.items()}


# --------------------------------------------------------------------------- 1. a leading broker dies

def test_sigkill_of_the_broker_leading_data_and_key_exchange(kafka_engine: KafkaEngine, cluster: Cluster,
                                                             unique_root: str) -> None:
    """2,000 records, each unique, with ``acks=all`` and idempotence, while broker 2, leader of every
    partition of the data topic, ``R.reqs``, ``R.keys`` and ``R.subs``, is SIGKILLed after record 500,
    stays down until record 1,500 (the leaders move to the other brokers after the controller's
    session timeout, ~9 s; the ratchet steps at record 1,000, so a key is born during the outage, and three
    consumer nodes are started right after the kill), and is restarted and made the leader again before
    the ratchet steps once more and the last 500 are sent:

    * the producer gives up on no record, and the topic holds exactly 2,000 (no duplicate from a retry);
    * a node started while the broker is down becomes ready: its exchange thread survives the metadata
      and offset lookups that go to the dead broker (exchange.py ``ExchangeLoop.run``: the start-up
      lookups must be retried like the rest of the loop, not kill the thread);
    * the consumer node started before the kill and those started during the outage decrypt every
      record exactly once, through all three keys, on the exchange threads they started with: the key
      exchange recovers from the leader change and from the restart (the third key comes through the
      restarted broker, leading again);
    * a fresh consumer node started afterwards decrypts every record exactly once.
    """
    kafka = kafka_engine.require_cluster()
    total, kill_at, step_at, restart_at = 2000, 500, 1000, 1500
    root = unique_root
    data = f"{root}.data"
    exchange = {root + suffix: dict(EXCHANGE_TOPIC_CONFIGS) for suffix in (".reqs", ".keys", ".subs")}
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=10000)
    sender: threading.Thread | None = None
    stop = threading.Event()
    gates = {n: (threading.Event(), threading.Event()) for n in (kill_at, restart_at)}  # (reached, go on)
    try:
        _wait_whole(kafka)
        _create_led_by(admin, VICTIM, {data: {}, **exchange}, kafka.node_ids)
        nodes: dict[str, Node] = {}

        def start(name: str, role: str) -> Node:
            store = cluster.provision(name, role)
            # an operator's setting for every client of the node: retry a lost broker at least once a second
            # (kafka-python backs off up to 30 s by default, which would only make this test slow)
            store.store_value("reconnect_backoff_max_ms", 1000, "kafka")
            kp = KafkaProducer(**store.get_kafka_config("producer", extra="crypto"))
            kc = KafkaConsumer(**store.get_kafka_config("consumer", extra="crypto"))
            node = nodes[name] = Node(store, KafkaCrypto(None, kp, kc, config=store), [kp, kc])
            cluster.nodes.append(node)  # closed by the fixture
            thread = node.crypto.exchange.thread
            _await(lambda: node.crypto.wait_ready(0.1) or not thread.is_alive(), 120, f"{name} ready")
            assert thread.is_alive(), f"{name}'s exchange thread died while it started (see the warnings)"
            return node

        prod = start("prod", "producer")
        early = start("early", "consumer")
        producer = prod.producer(acks="all", enable_idempotence=True)
        failures: list[BaseException] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def acked(sent_at: float) -> Callable[[Any], None]:
            def done(_metadata: Any) -> None:
                with lock:
                    latencies.append(time.monotonic() - sent_at)
            return done

        def produce() -> None:
            for seq in range(total):
                if stop.is_set():
                    return
                if seq in gates:
                    reached, go_on = gates[seq]
                    reached.set()
                    if not go_on.wait(300) or stop.is_set():
                        return
                if seq in (step_at, restart_at):
                    prod.crypto.ratchet()  # a new key, which every consumer has to fetch
                future = producer.send(data, key=b"%d" % seq, value=b"record %d" % seq)
                future.add_callback(acked(time.monotonic())).add_errback(failures.append)
                time.sleep(0.01)  # a stream, not a burst: records keep coming through the kill and the outage

        sender = threading.Thread(target=produce, name="stream", daemon=True)
        sender.start()
        early_reader = early.consumer(data, wait=KEY_WAIT)

        # before the fault: the first key is exchanged through broker 2
        reached, go_on = gates[kill_at]
        assert reached.wait(120), "the producer reached the kill"
        producer.flush(timeout=60)
        early_records = drain(early_reader, kill_at, timeout=120)
        assert sorted(_seqs(_opened(early_records))) == list(range(kill_at))

        # the fault: records flow on while broker 2 dies; consumer nodes start with it down, before its
        # partitions have new leaders (each of a node's clients asks a random broker for metadata: three
        # nodes, so that some ask the dead one)
        go_on.set()
        killed = time.monotonic()
        kafka.kill(VICTIM)
        assert kafka.pid(VICTIM) is None
        lates = [f"late{i}" for i in range(1, 4)]
        for name in lates:
            start(name, "consumer")
        threads = _exchange_threads(nodes)
        reached, go_on = gates[restart_at]
        assert reached.wait(300), "the producer reached the restart"
        producer.flush(timeout=180)  # acks=all: acknowledged by the two brokers left (min.insync.replicas 2)
        assert not failures, f"the producer gave up on records with broker {VICTIM} down: {failures[:3]}"
        _await(lambda: (found := _leaders(admin, [data, *exchange])) and VICTIM not in found, 60,
               "the leaders moved away from the dead broker")
        assert max(latencies) > 1.0, "some records were in flight while no leader could take them"
        early_records += drain(early_reader, restart_at - kill_at, timeout=180)
        assert sorted(_seqs(_opened(early_records))) == list(range(restart_at)), "early: the key born in the outage"
        readers = {name: nodes[name].consumer(data, wait=KEY_WAIT) for name in lates}
        got = {"early": early_records}
        for name, reader in readers.items():
            got[name] = drain(reader, restart_at, timeout=180)
            assert sorted(_seqs(_opened(got[name]))) == list(range(restart_at)), f"{name}: started in the outage"
        readers["early"] = early_reader

        # the restart: broker 2 catches up and leads again; the third key is exchanged through it
        down = time.monotonic() - killed
        kafka.start_node(VICTIM)
        _wait_whole(kafka)
        admin.elect_leaders(0, {t: list(range(PARTITIONS)) for t in [data, *exchange]})  # 0: preferred
        _await(lambda: _leaders(admin, [data, *exchange]) == {VICTIM}, 60, f"broker {VICTIM} leading again")
        go_on.set()
        sender.join(timeout=120)
        assert not sender.is_alive(), "the producer finished"
        producer.flush(timeout=120)
        assert not failures, f"the producer gave up on records: {failures[:3]}"
        assert len(latencies) == total, "every record was acknowledged"
        for name, reader in readers.items():
            got[name] += drain(reader, total - restart_at, timeout=180)

        end = early_reader.end_offsets([TopicPartition(data, p) for p in range(PARTITIONS)])
        assert sum(end.values()) == total, "idempotence: retries through the failover wrote no duplicate"
        for name, records in got.items():
            seqs = _seqs(_opened(records))
            assert sorted(seqs) == list(range(total)) and max(seqs.values()) == 1, f"{name}: each record once"
            _offsets_contiguous(records)
        fresh = start("fresh", "consumer")
        fresh_records = drain(fresh.consumer(data, wait=KEY_WAIT), total, timeout=240)
        seqs = _seqs(_opened(fresh_records))
        assert len(fresh_records) == total and sorted(seqs) == list(range(total)), "fresh: every record, once"
        _offsets_contiguous(fresh_records)
        for name, thread in threads.items():
            assert nodes[name].crypto.exchange.thread is thread and thread.is_alive(), \
                f"{name}'s exchange thread recovered without a restart"
        print(f"\nbroker {VICTIM} down {down:.1f} s; the slowest record was acknowledged after "
              f"{max(latencies):.1f} s; {total} records decrypted exactly once by {len(got) + 1} nodes")
    finally:
        stop.set()
        for _reached, go_on in gates.values():
            go_on.set()
        if sender is not None:
            sender.join(timeout=30)
        admin.close()
        if kafka.pid(VICTIM) is None:
            kafka.start_node(VICTIM)
        _wait_whole(kafka)


# --------------------------------------------------------------------------- 2. a controller dies

class Daemon:
    """A ``kafkaratchet-controller`` subprocess, its audit lines collected as they are written."""

    def __init__(self, config: Path, group: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller.controller_daemon", "--config", str(config), "--group-id", group],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2])
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def forwarded(self, root: str) -> set[str]:
        """The (8-hex-digit prefixes of) request ids this daemon logged as forwarded for ``root``."""
        return {line.split("request=")[1].split()[0] for line in list(self.lines)
                if f"root={root} " in line and "decision=forwarded" in line}

    def stop(self) -> None:
        """SIGTERM (or SIGKILL if it will not go) to the process this test started, by its PID."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._reader.join(timeout=10)


def _members(admin: KafkaAdminClient, group: str, topic: str) -> list[set[int]]:
    """The partitions of ``topic`` each member of a stable ``group`` holds; [] while it rebalances."""
    try:
        described = admin.describe_groups([group])[group]
    except Exception:  # noqa: BLE001 - the coordinator is busy: ask again
        return []
    if described.get("group_state") != "Stable":
        return []
    shares = []
    for member in described.get("members") or ():
        assignment = member.get("member_assignment") or {}
        shares.append({p for a in assignment.get("assigned_partitions") or () if a["topic"] == topic
                       for p in a["partitions"]})
    return shares


def _forwarded_ids(reader: RawConsumer) -> list[bytes]:
    """Inner request ids of every forwarded request read so far by ``reader`` (on ``R.reqs``)."""
    out = []
    for batch in reader.poll(timeout_ms=200).values():
        for record in batch:
            message = kx.parse(record.value)
            assert isinstance(message, kx.ForwardedRequest), "only controllers write R.reqs here"
            out.append(message.inner.request_id)
    return out


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()


def test_a_controller_survives_the_sigkill_of_its_partner(kafka_engine: KafkaEngine, cluster: Cluster,
                                                           unique_root: str, daemons: list[Daemon]) -> None:
    """Two controller daemons share ``R.subs``'s partitions in one consumer group; requests stream onto every
    partition (one each 25 ms) and one daemon is SIGKILLed mid-stream. The group gives its partitions to
    the survivor after the session timeout, which starts at the dead one's last committed offsets:

    * every request sent before, around and after the kill is forwarded to ``R.reqs`` (a request the dead
      one read but had not committed is forwarded again by the survivor: a duplicate, never a loss);
    * subscribe-only consumer nodes, one started before the kill and one right after it, get their keys
      through the controller that is left, also for a key minted after the kill.
    """
    if kafka_engine.kind == "tansu":
        pytest.skip("controller fail-over is tested on Apache Kafka (--broker kafka); test_controller.py covers Tansu")
    root = unique_root
    subs, reqs = f"{root}.subs", f"{root}.reqs"
    result = ensure_topics({"bootstrap_servers": cluster.bootstrap},
                           [TopicSpec(root, PARTITIONS), *exchange_topic_specs(root)])
    assert not result.missing, result.failed
    group = f"{root}-controllers"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    raw = RawProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    reader = RawConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    limited = Credentials(cluster.provision("limited", "consumer-limited"))
    try:
        reader.assign([TopicPartition(reqs, p) for p in range(PARTITIONS)])
        reader.seek_to_beginning()
        for i in (1, 2):
            daemons.append(Daemon(cluster.provision(f"ctl{i}", "controller").path, group))
        victim, survivor = daemons
        shares = _await(lambda: (s := _members(admin, group, subs)) and len(s) == 2 and all(s) and s, 120,
                        "both controllers holding partitions of R.subs")
        assert set().union(*shares) == set(range(PARTITIONS))

        sent: dict[bytes, int] = {}  # request id -> partition
        forwarded: collections.Counter[bytes] = collections.Counter()
        kems = [KemPrivateKey(KemType.X25519)]

        def request(n: int) -> None:
            for _ in range(n):
                partition = len(sent) % PARTITIONS
                message = kx.make_request(limited.identity, limited.chains[0], root, [os.urandom(8)], kems)
                sent[message.request_id] = partition
                raw.send(subs, value=message.raw, partition=partition)
                time.sleep(0.025)
            raw.flush(timeout=60)

        def all_forwarded() -> bool:
            forwarded.update(_forwarded_ids(reader))
            return set(sent) <= set(forwarded)

        # before: both controllers do work
        request(20)
        _await(all_forwarded, 120, "the requests sent before the kill forwarded")
        assert victim.forwarded(root) and survivor.forwarded(root), "the two controllers share the work"
        prod = cluster.node("prod", "producer")
        producer = prod.producer()
        producer.send(root, value=b"before the kill").get(timeout=30)
        before = cluster.node("before", "consumer-limited")
        before_reader = before.consumer(root, wait=KEY_WAIT)
        [record] = drain(before_reader, 1, timeout=120)
        assert record.value.getMessage() == b"before the kill"

        # around: requests stream on while one controller is SIGKILLed; and after
        streaming = threading.Thread(target=request, args=(80,), name="requests", daemon=True)
        streaming.start()
        _await(lambda: len(sent) >= 60, 60, "requests streaming")
        os.kill(victim.process.pid, signal.SIGKILL)  # the daemon this test started, by its PID
        assert victim.process.wait(timeout=30) == -signal.SIGKILL
        killed_at = len(sent)
        after = cluster.node("after", "consumer-limited")
        prod.crypto.ratchet()
        producer.send(root, value=b"after the kill").get(timeout=30)
        streaming.join(timeout=60)
        assert not streaming.is_alive()
        _await(all_forwarded, 180, "every request forwarded after the kill")
        taken_over = {p for rid, p in list(sent.items())[killed_at:] if rid.hex()[:8] in survivor.forwarded(root)}
        assert taken_over == set(range(PARTITIONS)), "the survivor took over the dead controller's partitions"
        _await(lambda: _members(admin, group, subs) == [set(range(PARTITIONS))], 60, "a group of one")

        # a consumer that needs the controller's decision gets its key, before and after the kill
        opened = _opened(drain(after.consumer(root, wait=KEY_WAIT), 2, timeout=180))
        assert sorted(opened) == [b"after the kill", b"before the kill"]
        [record] = drain(before_reader, 1, timeout=180)
        assert _opened([record]) == [b"after the kill"], "a key minted after the kill, through the survivor"
        duplicates = sum(n - 1 for n in forwarded.values())
        print(f"\n{len(sent)} requests, all forwarded; {duplicates} forwarded twice (read by the killed "
              f"controller, not committed)")
    finally:
        limited.close()
        for client in (reader, raw, admin):
            client.close()


# --------------------------------------------------------------------------- 3. transactions

def test_a_read_committed_consumer_sees_sealed_records_exactly_when_committed(kafka_engine: KafkaEngine,
                                                                             cluster: Cluster,
                                                                             unique_root: str) -> None:
    """A transactional producer node seals three transactions of 50 records over two partitions: the first
    aborted, the second committed, the third aborted. A read_committed consumer node:

    * sees nothing of an open transaction: its last stable offset stays at the transaction's first record
      in each partition (while a read_uncommitted raw consumer reads the transaction's ciphertexts on the
      broker), and having read up to it, it got no record;
    * sees all of the committed transaction at its commit, each record decrypted, and nothing of the
      aborted ones, before or after; a fresh read_committed node reading the whole topic afterwards gets
      exactly the 50 committed records, while the log holds all 150 ciphertexts.
    """
    if kafka_engine.kind == "tansu":
        pytest.skip("transactions are tested on Apache Kafka (--broker kafka)")
    topic = unique_root
    cluster.topic(topic, partitions=2)
    tps = [TopicPartition(topic, p) for p in range(2)]
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    txn = prod.producer(transactional_id=f"{unique_root}-txn")
    txn.init_transactions()
    reader = cons.consumer(topic, wait=KEY_WAIT, isolation_level="read_committed")
    raw = RawConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    raw.assign(tps)
    raw.seek_to_beginning()
    try:
        def at_stable_offset(consumer: Any) -> dict[TopicPartition, int] | None:
            """The last stable offsets, once ``consumer`` read up to them (asserting it got no record)."""
            got = drain(consumer, 1, timeout=0.3)
            assert not got, f"a read_committed consumer got a record it must not see: {got[0].value!r}"
            stable = consumer.end_offsets(tps)
            return stable if all(consumer.position(tp) >= stable[tp] for tp in tps) else None

        def transaction(name: str) -> tuple[list[bytes], dict[TopicPartition, int]]:
            """Begin one transaction and write it to the broker; its plaintexts and first offsets."""
            txn.begin_transaction()
            plaintexts = [b"%s %d" % (name.encode(), i) for i in range(50)]
            for i, value in enumerate(plaintexts):
                txn.send(topic, value=value, partition=i % 2)
            txn.flush(timeout=60)
            written = drain(raw, 50, timeout=60)
            assert len(written) == 50, "the open transaction's records are on the broker"
            assert not any(p in r.value for r in written for p in plaintexts), "sealed"
            first = {tp: min(r.offset for r in written if r.partition == tp.partition) for tp in tps}
            return plaintexts, first

        def settled() -> bool:
            """No transaction open (stable offset = high watermark) and read to it, with nothing seen."""
            stable = at_stable_offset(reader)
            return stable is not None and stable == raw.end_offsets(tps)

        # an open transaction is invisible; then it is aborted, and stays invisible
        _aborted, first = transaction("aborted")
        held = _await(lambda: at_stable_offset(reader), 60, "the read_committed consumer at the stable offset")
        assert held == first, "the open transaction holds the stable offset at its first record"
        txn.abort_transaction()
        _await(settled, 60, "the aborted transaction read past, with nothing of it seen")

        # an open transaction is invisible; then it is committed, and all of it appears
        committed, first = transaction("committed")
        held = _await(lambda: at_stable_offset(reader), 60, "the read_committed consumer at the stable offset")
        assert held == first, "nothing appears before the commit"
        txn.commit_transaction()
        records = drain(reader, 50, timeout=120)
        assert sorted(_opened(records)) == sorted(committed), "the whole committed transaction, decrypted"

        # an abort after a commit hides its records too
        transaction("aborted-again")
        txn.abort_transaction()
        _await(settled, 60, "the second aborted transaction read past, with nothing of it seen")

        fresh = cluster.node("fresh", "consumer").consumer(topic, wait=KEY_WAIT, isolation_level="read_committed")
        end = fresh.end_offsets(tps)
        everything = drain(fresh, 10_000, timeout=120,
                           stop=lambda _got: all(fresh.position(tp) >= end[tp] for tp in tps))
        assert sorted(_opened(everything)) == sorted(committed), "exactly the committed records, once each"
        in_log = sum(raw.end_offsets(tps).values()) - sum(raw.beginning_offsets(tps).values())
        assert in_log == 150 + 3 * 2, "the log holds all three transactions (and their markers, one per partition)"
    finally:
        raw.close()
