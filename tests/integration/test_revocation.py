"""Revocation that bites: a denylisted consumer loses access within seconds; trusted ones never notice."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import pytest

from kafkaratchet.files.credentials import Credentials
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import make_trust_update

from .nodes import Cluster, Node, drain, publish_trust

pytestmark = pytest.mark.integration

RECORDS = 120
INTERVAL = 0.1


def _admin(cluster: Cluster, usages: list[str]) -> tuple[SigningIdentity, Chain]:
    admin = SigningIdentity.generate()
    return admin, Chain.of(issue_certificate(cluster.root, admin.public_key, usages=usages))


def _collect(node: Node, topic: str, wait: float, out: dict[int, bool], opened: threading.Event) -> None:
    """Read the stream; a record whose key came too late for its deserializer is tried again (without
    blocking: ``isCleartext()``) at every poll until the stream ends, so ``out`` says which records this
    consumer could open at all by then. ``opened`` is set at its first opened record."""
    consumer = node.consumer(topic, wait=wait)
    received, unopened = 0, []
    deadline = time.monotonic() + 120
    while received < RECORDS and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            received += len(batch)
            unopened += batch
        still = []
        for record in unopened:
            if record.value.isCleartext():
                out[struct.unpack(">Id", record.value.getMessage()[:12])[0]] = True
                opened.set()
            else:
                still.append(record)
        unopened = still
    for record in unopened:
        out[1_000_000 + record.partition * 10_000 + record.offset] = False


def test_denylisted_consumer_is_cut_off_within_seconds(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    revoked = cluster.node("revoked", "consumer")
    trusted = cluster.node("trusted", "consumer")
    admin, admin_chain = _admin(cluster, [Usage.DENYLIST])
    cluster.topic(unique_root)
    producer = prod.producer()
    sent_at: dict[int, float] = {}
    published: list[float] = []
    opened = {"revoked": threading.Event(), "trusted": threading.Event()}

    def produce() -> None:
        for seq in range(RECORDS):
            if seq == 30:
                # revoked once it reads: access it had, not a key exchange that was merely slow, is taken away
                if not opened["revoked"].wait(60):
                    return
                entry = make_trust_update("deny", admin, admin_chain, revoked.crypto.public_key)
                publish_trust(cluster.bootstrap, "denylist", entry.encode())
                published.append(time.time())
            sent_at[seq] = time.time()
            producer.send(unique_root, key=struct.pack(">I", seq), value=struct.pack(">Id", seq, sent_at[seq]))
            time.sleep(INTERVAL)  # a steady stream, not a wait for anything
        producer.flush()

    thread = threading.Thread(target=produce)
    thread.start()
    opened_by: dict[str, dict[int, bool]] = {"revoked": {}, "trusted": {}}
    readers = [threading.Thread(target=_collect, args=(node, unique_root, wait, opened_by[name], opened[name]))
               for name, node, wait in (("revoked", revoked, 2.0), ("trusted", trusted, 10.0))]
    for reader in readers:
        reader.start()
    thread.join()
    for reader in readers:
        reader.join()

    assert published, "the revoked consumer never opened a record before its revocation"
    good = opened_by["trusted"]
    assert sorted(k for k, ok in good.items() if ok) == list(range(RECORDS)), "trusted consumer missed records"
    [denied_at] = published
    readable = {seq for seq, ok in opened_by["revoked"].items() if ok}
    late = [seq for seq in range(RECORDS) if sent_at[seq] > denied_at + 5]
    assert late, "the stream went on long enough after the denylist entry"
    assert not readable & set(late), "the revoked consumer opened records sealed >5 s after its revocation"
    first_closed = min(sent_at[s] for s in range(RECORDS) if s not in readable and sent_at[s] >= denied_at)
    print(f"\ndenylist entry -> first record the revoked consumer cannot open: {first_closed - denied_at:.2f} s")
    assert readable & set(range(30)), "before revocation the consumer did read"
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
    for topic, entry in entries:
        publish_trust(cluster.bootstrap, topic, entry if isinstance(entry, bytes) else entry.encode())
    # a valid entry published after them: once it is applied, the invalid ones were read (and refused)
    marker, marker_chain = _admin(cluster, [Usage.CONSUME])
    publish_trust(cluster.bootstrap, "denylist",
                  make_trust_update("deny", marker, marker_chain, marker.public_key).encode())
    for node in (prod, cons):
        assert node.crypto.credentials.wait_until(lambda c: c.trust.is_denied(marker.public_key), 30)
        trust = node.crypto.credentials.trust
        assert trust.is_denied(marker.public_key)
        assert not trust.is_denied(cons.crypto.public_key)
        assert outsider.public_key not in trust.roots
        assert node.store.load_value(cons.crypto.public_key.hex(), "denylist") is None
    cluster.topic(unique_root)
    producer = prod.producer()
    producer.send(unique_root, value=b"still flowing")
    producer.flush()
    [record] = drain(cons.consumer(unique_root), 1)
    assert record.value.getMessage() == b"still flowing"
