"""The controller: subscribe-only nodes get keys only through it; no request is lost."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.clients import assign_all
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Chain, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.services.controller import KafkaCryptoController

from .nodes import Cluster, drain, wait_until

pytestmark = pytest.mark.integration


def start_controller(cluster: Cluster, store: KafkaCryptoStore, group: str) -> tuple[KafkaCryptoController, list[Any]]:
    kp = KafkaProducer(**store.get_kafka_config("producer", extra="crypto"))
    kc = KafkaConsumer(**store.get_kafka_config("consumer", extra="crypto"), group_id=group,
                       auto_offset_reset="earliest", metadata_max_age_ms=500, session_timeout_ms=6000,
                       heartbeat_interval_ms=1000, max_poll_interval_ms=10000, request_timeout_ms=8000)
    controller = KafkaCryptoController(None, kp, kc, config=store)
    assert controller.wait_ready(30)
    return controller, [kp, kc]


@pytest.mark.smoke
def test_limited_consumer_decrypts_only_while_a_controller_runs(cluster: Cluster, unique_root: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kafkaratchet.audit")
    prod = cluster.node("prod", "producer")
    limited = cluster.node("limited", "consumer-limited")
    cluster.topic(unique_root)
    producer = prod.producer()
    producer.send(unique_root, value=b"before any controller")
    producer.flush()
    # no controller: the request sits on R.subs (which the limited consumer's node creates) and nobody answers
    [record] = drain(limited.consumer(unique_root, wait=3.0), 1)
    assert not record.value.isCleartext()
    _wait_for_request(cluster.bootstrap, f"{unique_root}.subs", limited.crypto.public_key)

    controller, clients = start_controller(cluster, cluster.provision("ctl", "controller"), f"{unique_root}-ctl")
    try:
        prod.crypto.ratchet()  # a fresh key id, which the consumer has not given up on yet
        producer.send(unique_root, value=b"with a controller")
        producer.flush()
        records = drain(limited.consumer(unique_root, wait=30.0), 2)
        # a record whose key came after its deserializer's wait opens on a retry (a busy group is slow)
        wait_until(lambda: any(r.value.isCleartext() and r.value.getMessage() == b"with a controller"
                               for r in records), 90, "the record sealed with a controller running opens")
        assert controller.forwarded >= 1
        assert any("decision=forwarded" in r.getMessage() and limited.crypto.fingerprint in r.getMessage()
                   for r in caplog.records), "every decision is an audit line naming the requester"
    finally:
        controller.close()
        for client in clients:
            client.close()


def _wait_for_request(bootstrap: str, topic: str, signer: bytes, timeout: float = 30.0) -> None:
    """Until a key request signed by ``signer`` is on ``topic``."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        assign_all(reader, topic, timeout)
        deadline = time.monotonic() + timeout
        while True:
            for batch in reader.poll(timeout_ms=200).values():
                for record in batch:
                    message = kx.parse(record.value)
                    if isinstance(message, kx.KeyRequest) and message.signer == signer:
                        return
            assert time.monotonic() < deadline, f"no key request from {fingerprint(signer)} on {topic}"
    finally:
        reader.close()


def test_a_controller_creates_the_trust_topics_it_follows(cluster: Cluster, unique_root: str) -> None:
    """A controller started before any node (trust topics of its own here, which nobody else creates) creates
    them and becomes ready. Guards controller.py ``_follow_management``: it used to ask its producer for their
    partitions, which on a cluster without automatic topic creation blocks for a minute and fails, forever."""
    names = {f"{kind}_topic": f"{unique_root}-{kind}" for kind in ("chains", "allowlist", "denylist")}
    store = cluster.provision("ctl", "controller", crypto=names)
    controller, clients = start_controller(cluster, store, f"{unique_root}-ctl")  # ready within 30 s
    try:
        admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        try:
            assert set(names.values()) <= set(admin.list_topics())
        finally:
            admin.close()
    finally:
        controller.close()
        for client in clients:
            client.close()


def _wait_for_group(controllers: list[KafkaCryptoController], topic: str, bootstrap: str,
                    timeout: float = 90.0) -> None:
    """Until the group has spread ``topic``'s partitions over exactly these controllers (kafka-python offers
    no event for a completed rebalance, so its state is checked until the deadline)."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = reader.partitions_for_topic(topic)
    finally:
        reader.close()
    assert partitions and len(partitions) >= len(controllers), f"{topic}: {partitions} partitions"
    deadline = time.monotonic() + timeout
    shares: list[set[int]] = []
    while time.monotonic() < deadline:
        shares = [{tp.partition for tp in c.assignment() if tp.topic == topic} for c in controllers]
        if all(shares) and set().union(*shares) == partitions and sum(map(len, shares)) == len(partitions):
            return
        time.sleep(0.1)
    raise AssertionError(f"the group did not settle: {[sorted(s) for s in shares]}")


class AuditWatch(logging.Handler):
    """Sets an event when an audit line containing ``needle`` is logged: a decision can be awaited."""

    def __init__(self, *needles: str) -> None:
        super().__init__(logging.INFO)
        self.needles = needles
        self.lines: list[str] = []
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if all(n in line for n in self.needles):
            self.lines.append(line)
            self.seen.set()


def test_controller_refuses_a_consumer_outside_its_topics(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    outsider = cluster.node("outsider", "consumer-limited", topics=["elsewhere"])
    watch = AuditWatch("decision=", f"root={unique_root} ")
    logging.getLogger("kafkaratchet.audit").addHandler(watch)
    logging.getLogger("kafkaratchet.audit").setLevel(logging.INFO)
    subs = f"{unique_root}.subs"
    cluster.exchange_topics(unique_root)  # R.subs exists before the group forms
    cluster.topic(unique_root)
    controller, clients = start_controller(cluster, cluster.provision("ctl", "controller"), f"{unique_root}-ctl")
    try:
        _wait_for_group([controller], subs, cluster.bootstrap)
        producer = prod.producer()
        producer.send(unique_root, value=b"not for outsiders")
        producer.flush()
        [record] = drain(outsider.consumer(unique_root, wait=1.0), 1)
        assert watch.seen.wait(60), "the controller judged the outsider's request"
        assert "decision=refused" in watch.lines[0] and "topic-not-allowed" in watch.lines[0]
        assert outsider.crypto.fingerprint in watch.lines[0]
        assert not record.value.isCleartext()
        assert not any("decision=forwarded" in line for line in watch.lines)
    finally:
        logging.getLogger("kafkaratchet.audit").removeHandler(watch)
        controller.close()
        for client in clients:
            client.close()


def test_a_flood_of_forgeries_costs_a_bounded_number_of_audit_lines(cluster: Cluster, unique_root: str) -> None:
    """3,000 records on R.subs that identify nobody (garbage; requests each signed by a fresh key under a
    root nobody trusts; a genuine subscriber's request re-signed by fresh keys; 50 replays of a genuine
    request; a stale copy) cost one summary line for the topic per ``log_interval`` (60 s: one line here,
    written at close) that counts them by reason. The genuine decisions around them keep a line each: the
    forward of the genuine request, sent first, and the refusal of an outsider's request, sent last.

    Guards controller.py ``_judge``/``_decide``: refusals that identify nobody go to ``_UnverifiedTally``,
    and decided requests are remembered (a replay is neither forwarded nor logged again). Before, every
    record was an audit line of its own: 3,003 lines here, and the 50 replays were forwarded."""
    root, subs = unique_root, f"{unique_root}.subs"
    raw = KafkaProducer(bootstrap_servers=cluster.bootstrap, linger_ms=20, batch_size=4 << 20,
                        max_request_size=4 << 20)
    cluster.exchange_topics(root)  # R.subs exists before the group forms
    every = AuditWatch()
    outsider = Credentials(cluster.provision("outsider", "consumer-limited", topics=["elsewhere"]))
    refusal = AuditWatch("decision=refused", outsider.fingerprint)
    audit = logging.getLogger("kafkaratchet.audit")
    audit.setLevel(logging.INFO)
    for watch in (every, refusal):
        audit.addHandler(watch)
    controller, clients = start_controller(cluster, cluster.provision("ctl", "controller"), f"{unique_root}-ctl")
    started = time.monotonic()
    try:
        _wait_for_group([controller], subs, cluster.bootstrap)
        subscriber = Credentials(cluster.provision("limited", "consumer-limited"))
        kems = [KemPrivateKey(KemType.X25519)]
        genuine = kx.make_request(subscriber.identity, subscriber.chains[0], root, [os.urandom(8)], kems)
        nobody = SigningIdentity.generate()  # a root no one trusts
        flood: list[bytes] = []
        for i in range(2950):
            fresh = SigningIdentity.generate()
            if i % 3 == 0:
                chain = Chain.of(issue_certificate(nobody, fresh.public_key, usages=["subscribe"]))
                flood.append(kx.make_request(fresh, chain, root, [os.urandom(8)], kems).raw)
            elif i % 3 == 1:
                version, kind, body, chain_bytes, _ = wire.unpack(genuine.raw)
                flood.append(wire.pack([version, kind, body, chain_bytes, fresh.sign(b"kr-request-v1", body)]))
            else:
                flood.append(os.urandom(1 + i % 200))
        flood += [genuine.raw] * 50
        flood.append(kx.make_request(subscriber.identity, subscriber.chains[0], root, [os.urandom(8)], kems,
                                     now=time.time() - 3600).raw)
        refused = kx.make_request(outsider.identity, outsider.chains[0], root, [os.urandom(8)], kems)
        for value in [genuine.raw, *flood, refused.raw]:  # one partition: judged in this order
            raw.send(subs, value=value, partition=0)
        raw.flush(timeout=60)
        assert refusal.seen.wait(60), "the outsider's request, sent after the flood, was judged"
    finally:
        controller.close()  # writes the summary lines
        elapsed = time.monotonic() - started
        for watch in (every, refusal):
            audit.removeHandler(watch)
        for client in [*clients, raw]:
            client.close()
    mine = [line for line in every.lines if root in line]
    assert len(mine) <= 2 + 1 + int(elapsed // 60), f"{len(mine)} audit lines for 2 decisions and a flood"
    summaries = [line for line in mine if "decision=refused-unverified" in line]
    assert len(mine) == len(summaries) + 2 and summaries, mine
    [forwarded] = [line for line in mine if "decision=forwarded" in line]
    assert subscriber.fingerprint in forwarded and genuine.request_id.hex()[:8] in forwarded
    [refused_line] = [line for line in mine if "decision=refused " in line]
    assert outsider.fingerprint in refused_line and "topic-not-allowed" in refused_line
    assert all(f"topic={subs} " in line for line in summaries)
    assert sum(int(line.split("records=")[1].split()[0]) for line in summaries) == len(flood)
    assert "replayed:50" in summaries[-1] or len(summaries) > 1
    assert not any(fingerprint(nobody.public_key) in line for line in mine), "no forger is named"
    # the counters: every record judged is forwarded, refused with a line, or counted in a summary line (of
    # this topic, or of the other tests' R.subs, which the pattern subscription follows too)
    counted = sum(int(line.split("records=")[1].split()[0]) for line in every.lines
                  if "decision=refused-unverified" in line)
    assert (controller.forwarded, controller.refused, controller.unverified) == (1, counted + 1, counted)


def test_two_controllers_share_the_work_and_survive_one_stopping(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    subs = f"{unique_root}.subs"
    cluster.exchange_topics(unique_root)  # R.subs exists before they join
    cluster.topic(unique_root)
    group = f"{unique_root}-ctl"
    first, first_clients = start_controller(cluster, cluster.provision("ctl1", "controller"), group)
    second, second_clients = start_controller(cluster, cluster.provision("ctl2", "controller"), group)
    try:
        _wait_for_group([first, second], subs, cluster.bootstrap)  # the work is shared: each holds some partitions
        producer = prod.producer()
        producer.send(unique_root, value=b"one")
        producer.flush()
        records = drain(cluster.node("c1", "consumer-limited").consumer(unique_root, wait=30.0), 1)
        wait_until(lambda: records[0].value.isCleartext(), 90, "the first record opens")
        assert records[0].value.getMessage() == b"one"
        first.close()  # mid-stream: its partitions move to the second controller
        for client in first_clients:
            client.close()
        _wait_for_group([second], subs, cluster.bootstrap)
        producer.send(unique_root, value=b"two")
        producer.flush()
        records = drain(cluster.node("c2", "consumer-limited").consumer(unique_root, wait=30.0), 2)
        wait_until(lambda: all(r.value.isCleartext() for r in records), 90, "both records open")
        assert sorted(r.value.getMessage() for r in records) == [b"one", b"two"]
        assert second.forwarded >= 1
    finally:
        second.close()
        for client in second_clients:
            client.close()


def _controller_process(store: KafkaCryptoStore, group: str, fault: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if fault:
        env["KAFKARATCHET_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-m", "controller.controller_daemon", "--config", str(store.path),
                             "--group-id", group], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])


def test_killed_controller_loses_no_request(cluster: Cluster, unique_root: str) -> None:
    store = cluster.provision("ctl", "controller")
    limited = Credentials(cluster.provision("limited", "consumer-limited"))
    request = kx.make_request(limited.identity, limited.chains[0], unique_root, [os.urandom(8)],
                              [KemPrivateKey(KemType.X25519)])
    cluster.exchange_topics(unique_root)  # what the limited consumer's node does before it asks
    raw = KafkaProducer(bootstrap_servers=cluster.bootstrap)
    raw.send(f"{unique_root}.subs", value=request.raw).get(timeout=30)
    raw.close()
    group = f"{unique_root}-ctl"
    doomed = _controller_process(store, group, "kill-before-forward")
    try:
        assert doomed.wait(timeout=180) == -signal.SIGKILL, "the fault hook kills it after receiving"
    finally:
        if doomed.poll() is None:
            doomed.kill()
    survivor = _controller_process(store, group, None)
    try:
        reader = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
        reqs = f"{unique_root}.reqs"
        reader.assign([TopicPartition(reqs, p) for p in reader.partitions_for_topic(reqs) or ()])
        reader.seek_to_beginning()
        forwarded = [kx.parse(r.value) for r in drain(reader, 1, timeout=180)]
        reader.close()
        assert forwarded and isinstance(forwarded[0], kx.ForwardedRequest)
        assert forwarded[0].inner.request_id == request.request_id
    finally:
        survivor.send_signal(signal.SIGTERM)
        started = time.monotonic()
        survivor.wait(timeout=30)
        assert time.monotonic() - started < 5, "SIGTERM stops the daemon within 5 s"
        assert survivor.returncode == 0, survivor.stderr.read().decode() if survivor.stderr else ""
