"""The chain server: short-lived chains keep nodes working while it runs; without it they die."""

from __future__ import annotations

import logging
import time

import pytest

from kafkaratchet.files.credentials import chain_expiry
from kafkaratchet.protocol.certs import Usage
from kafkaratchet.services.chainserver import KafkaCryptoChainServer

from .nodes import Cluster, drain

pytestmark = pytest.mark.integration

LIFETIME = 20
# short-lived everything: chains expire with no grace, the producer's keys turn every 4 s
FAST = {"clock_skew": 1, "ratchet_interval": 4, "request_retry": 0.5}


def test_twenty_second_chains_across_three_expiries_then_death(cluster: Cluster, unique_root: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    server_store = cluster.provision("chains", "chainserver", crypto={"chain_lifetime": LIFETIME,
                                                                      "chain_refresh_fraction": 0.5, **FAST})
    prod = cluster.start(cluster.provision("prod", "producer", crypto=FAST, lifetime=LIFETIME))
    cons = cluster.start(cluster.provision("cons", "consumer", crypto=FAST, lifetime=LIFETIME))
    server = KafkaCryptoChainServer(None, config=server_store)
    server.add_key(prod.crypto.public_key, {Usage.PRODUCE})
    server.add_key(cons.crypto.public_key, {Usage.CONSUME})
    server.start()
    cluster.topic(unique_root)
    producer = prod.producer()
    producer.send(unique_root, value=b"first")
    producer.flush()
    consumer = cons.consumer(unique_root, wait=8.0)
    first_expiry = chain_expiry(cons.crypto.credentials.chains[0])
    sent, opened = 1, 0
    try:
        while time.time() < first_expiry + 2.5 * LIFETIME:  # three expiries of the original chains
            for record in drain(consumer, 1, timeout=15):
                opened += record.value.isCleartext()
            producer.send(unique_root, value=b"%d" % sent)
            producer.flush()
            sent += 1
            time.sleep(0.2)  # pacing the stream, not waiting for anything
        for record in drain(consumer, 1, timeout=15):
            opened += record.value.isCleartext()
        assert prod.crypto.epoch >= 10, "keys turned over many times, each needing a fresh exchange"
        assert chain_expiry(cons.crypto.credentials.chains[0]) > first_expiry + 2 * LIFETIME
        assert opened == sent, f"{sent - opened} of {sent} records were not decrypted while chains were renewed"
    finally:
        server.close()
    # without the chain server the consumer's chain runs out; after that its requests are refused
    caplog.set_level(logging.WARNING, logger="kafkaratchet.node")
    expired_at = chain_expiry(cons.crypto.credentials.chains[0])
    time.sleep(max(0.0, expired_at + 2 - time.time()))  # the event here is the clock passing the expiry
    prod.crypto.ratchet()  # a key id the consumer does not hold yet
    producer.send(unique_root, value=b"after expiry")
    producer.flush()
    [record] = drain(consumer, 1, timeout=30)
    assert not record.value.isCleartext()
    refusals = [r.getMessage() for r in caplog.records if "refused key request" in r.getMessage()]
    assert refusals and "expired" in refusals[-1]
