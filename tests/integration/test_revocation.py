"""Revocation that bites: a denylisted consumer loses access within seconds; trusted ones never notice."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import pytest
from kafka import KafkaProducer

from kafkaratchet.files.credentials import Credentials
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import make_trust_update

from .nodes import Cluster, Node, drain

pytestmark = pytest.mark.integration

RECORDS = 120
INTERVAL = 0.1


def _admin(cluster: Cluster, usages: list[str]) -> tuple[SigningIdentity, Chain]:
    admin = SigningIdentity.generate()
    return admin, Chain.of(issue_certificate(cluster.root, admin.public_key, usages=usages))


def _collect(node: Node, topic: str, wait: float, out: dict[int, bool]) -> None:
    consumer = node.consumer(topic, wait=wait)
    for record in drain(consumer, RECORDS, timeout=120):
        seq = struct.unpack(">I", record.key.getMessage() if record.key.isCleartext() else b"\xff" * 4)[0]
        if record.value.isCleartext():
            out[struct.unpack(">Id", record.value.getMessage()[:12])[0]] = True
        else:
            out.setdefault(len(out) + 1_000_000 + seq, False)


def test_denylisted_consumer_is_cut_off_within_seconds(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    revoked = cluster.node("revoked", "consumer")
    trusted = cluster.node("trusted", "consumer")
    admin, admin_chain = _admin(cluster, [Usage.DENYLIST])
    producer = prod.producer()
    sent_at: dict[int, float] = {}
    published: list[float] = []

    def produce() -> None:
        for seq in range(RECORDS):
            if seq == 30:
                entry = make_trust_update("deny", admin, admin_chain, revoked.crypto.public_key)
                raw = KafkaProducer(bootstrap_servers=cluster.bootstrap)
                raw.send("denylist", value=entry.encode()).get(timeout=30)
                published.append(time.time())
                raw.close()
            sent_at[seq] = time.time()
            producer.send(unique_root, key=struct.pack(">I", seq), value=struct.pack(">Id", seq, sent_at[seq]))
            time.sleep(INTERVAL)  # a steady stream, not a wait for anything
        producer.flush()

    thread = threading.Thread(target=produce)
    thread.start()
    opened_by: dict[str, dict[int, bool]] = {"revoked": {}, "trusted": {}}
    readers = [threading.Thread(target=_collect, args=(node, unique_root, wait, opened_by[name]))
               for name, node, wait in (("revoked", revoked, 2.0), ("trusted", trusted, 10.0))]
    for reader in readers:
        reader.start()
    thread.join()
    for reader in readers:
        reader.join()

    good = opened_by["trusted"]
    assert sorted(k for k, ok in good.items() if ok) == list(range(RECORDS)), "trusted consumer missed records"
    [denied_at] = published
    readable = {seq for seq, ok in opened_by["revoked"].items() if ok}
    late = [seq for seq in range(RECORDS) if sent_at[seq] > denied_at + 5]
    assert late, "the stream went on long enough after the denylist entry"
    assert not readable & set(late), "the revoked consumer opened records sealed >5 s after its revocation"
    first_closed = min(sent_at[s] for s in range(RECORDS) if s not in readable and sent_at[s] >= denied_at)
    print(f"\ndenylist entry -> first record the revoked consumer cannot open: {first_closed - denied_at:.2f} s")
    assert readable & set(range(25)), "before revocation the consumer did read"
    for node in (prod, revoked, trusted):  # applied live, and persisted for the next start
        node.crypto.credentials.persist_trust(force=True)
        assert Credentials(node.store).trust.is_denied(revoked.crypto.public_key)


def test_invalid_trust_updates_change_nothing(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    no_usage, no_usage_chain = _admin(cluster, [Usage.CONSUME])
    outsider = SigningIdentity.generate()
    entries: list[tuple[str, Any]] = [
        ("denylist", make_trust_update("deny", no_usage, no_usage_chain, cons.crypto.public_key)),
        ("allowlist", make_trust_update("allow", no_usage, no_usage_chain, outsider.public_key)),
    ]
    admin, admin_chain = _admin(cluster, sorted(Usage.ALL))
    forged = make_trust_update("deny", admin, admin_chain, cons.crypto.public_key)
    signature = bytearray(forged.signature)
    signature[0] ^= 1
    entries.append(("denylist", forged.encode().replace(forged.signature, bytes(signature))))
    raw = KafkaProducer(bootstrap_servers=cluster.bootstrap)
    for topic, entry in entries:
        raw.send(topic, value=entry if isinstance(entry, bytes) else entry.encode()).get(timeout=30)
    # a valid entry published after them: once it is applied, the invalid ones were read (and refused)
    marker, marker_chain = _admin(cluster, [Usage.CONSUME])
    raw.send("denylist", value=make_trust_update("deny", marker, marker_chain, marker.public_key).encode()
             ).get(timeout=30)
    raw.close()
    for node in (prod, cons):
        assert node.crypto.credentials.wait_until(lambda c: c.trust.is_denied(marker.public_key), 30)
        trust = node.crypto.credentials.trust
        assert trust.is_denied(marker.public_key)
        assert not trust.is_denied(cons.crypto.public_key)
        assert outsider.public_key not in trust.roots
        assert node.store.load_value(cons.crypto.public_key.hex(), "denylist") is None
    producer = prod.producer()
    producer.send(unique_root, value=b"still flowing")
    producer.flush()
    [record] = drain(cons.consumer(unique_root), 1)
    assert record.value.getMessage() == b"still flowing"
