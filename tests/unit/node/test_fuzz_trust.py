"""Fuzzing trust updates (allowlist/denylist), chain updates, and the node's management-topic handler.

The last test feeds hostile variants of every management message (requests, forwarded requests,
answers, trust updates, chains) to the exact handler the management thread runs,
``ExchangeLoop.dispatch``, which must never raise, and must only act (answer, install a key, change
its trust store) on authentic input.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaratchet.errors import FormatError, KafkaRatchetError, SignatureError
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.node.state import Pending
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol.certs import Chain, issue_certificate
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.protocol.records import Role
from kafkaratchet.protocol.trust import TrustStore, TrustUpdate, make_trust_update
from tests.unit._fuzzkit import (
    NOW,
    budget,
    hostile,
    hostile_bytes,
    ident,
    make_world,
    outcome,
    scratch,
    seeds,
    start_stub_node,
)

__all__ = ["scratch"]

WORLD = make_world()
ALLOW = make_trust_update("allow", WORLD.admin, WORLD.admin_chain, ident(50).public_key, usages=["consume"],
                          topics=["fz"], issued_at=NOW - 100)
DENY = make_trust_update("deny", WORLD.admin, WORLD.admin_chain, ident(51).public_key, issued_at=NOW - 100)
LEAVER_CHAIN = Chain.of(issue_certificate(WORLD.root, ident(54).public_key, usages=["consume"], topics=["fz"],
                                          not_before=NOW - 3600))
SELF_DENY = make_trust_update("deny", ident(54), LEAVER_CHAIN, ident(54).public_key, issued_at=NOW - 100)
CHAINLESS_SELF_DENY = make_trust_update("deny", ident(52), None, ident(52).public_key, issued_at=NOW - 100)
WIDE_ALLOW = make_trust_update("allow", WORLD.consumer, WORLD.consumer_chain, ident(53).public_key,
                               issued_at=NOW - 100)
UPDATES = [ALLOW, DENY, SELF_DENY, CHAINLESS_SELF_DENY, WIDE_ALLOW]
AUTHENTIC_BODIES = {u.body for u in (ALLOW, DENY, SELF_DENY)}


@budget(3000)
@given(hostile(*(u.encode() for u in UPDATES)))
def test_fuzz_trust_update_decode_and_apply(data: bytes) -> None:
    update = outcome(TrustUpdate.decode, data)
    if isinstance(update, KafkaRatchetError):
        assert isinstance(update, (FormatError, SignatureError))  # decoding checks the signature
        return
    store = TrustStore([WORLD.root_cert])
    before = store.state
    changed = outcome(store.apply, update, now=NOW)
    if isinstance(changed, KafkaRatchetError):
        assert store.state == before, "an invalid update left the store changed"
        return
    assert changed in (True, False)
    if changed:
        assert update.body in AUTHENTIC_BODIES, "a forged trust update was applied"


def test_valid_updates_apply_and_the_wide_and_chainless_ones_are_refused() -> None:
    store = TrustStore([WORLD.root_cert])
    assert store.apply(ALLOW, now=NOW) and store.apply(DENY, now=NOW) and store.apply(SELF_DENY, now=NOW)
    assert isinstance(outcome(store.apply, WIDE_ALLOW, now=NOW), KafkaRatchetError)
    assert isinstance(outcome(store.apply, CHAINLESS_SELF_DENY, now=NOW), KafkaRatchetError)
    assert store.denied == {ident(51).public_key, ident(54).public_key}


# --------------------------------------------------------------------------- the node's handler

@pytest.fixture(scope="module")
def node(scratch: Path) -> Any:
    crypto = start_stub_node(scratch / "trust", WORLD)
    crypto.sealers.seal("fz", Role.VALUE, b"first record")  # now it holds a key for root fz ...
    crypto.exchange.state.produce_roots.add("fz")  # ... and answers for it (what the loop's "produce" command does)
    return crypto


class _Messages:
    """Valid management messages for the stub node, made at the real current time."""

    def __init__(self, node: Any) -> None:
        now = time.time()
        own = [k.key_id for k in node.keyring.own_keys()]
        self.request = kx.make_request(WORLD.consumer, WORLD.consumer_chain, "fz", own,
                                       [KemPrivateKey(KemType.X25519)], now=now)
        sub = kx.make_request(WORLD.subscriber, WORLD.subscriber_chain, "fz", own, [KemPrivateKey(KemType.X25519)],
                              now=now)
        self.forward = kx.forward_request(WORLD.controller, WORLD.controller_chain, sub)
        self.kems = [KemPrivateKey(KemType.X25519)]
        self.wanted = b"\x77" * 8
        self.own_request = kx.make_request(WORLD.node, WORLD.node_chain, "fz", [self.wanted], self.kems, now=now)
        self.answer = kx.make_answer(WORLD.producer, WORLD.producer_chain, self.own_request,
                                     [kx.WrappedKey(self.wanted, b"\x55" * 32, int(now))], now=now)
        renewed = issue_certificate(WORLD.root, WORLD.node.public_key, usages=["produce", "consume"],
                                    topics=["fz", "^fz-[0-9]+"], expiry=int(now) + 86_400 * 30)
        self.chain = Chain.of(renewed)
        self.authentic_requests = {self.request.body, self.forward.body}
        self.by_topic: dict[str, list[bytes]] = {
            "fz.reqs": [self.request.raw, self.forward.raw],
            "fz.keys": [self.answer.raw],
            "allowlist": [ALLOW.encode(), SELF_DENY.encode()],
            "denylist": [DENY.encode(), SELF_DENY.encode()],
            "chains": [self.chain.encode(), WORLD.node_chain.encode()],
        }


@pytest.fixture(scope="module")
def messages(node: Any) -> _Messages:
    return _Messages(node)


@budget(3000)
@given(st.sampled_from(["fz.reqs", "fz.keys", "allowlist", "denylist", "chains", "fz.subs", "fz"]), seeds)
def test_fuzz_management_thread_handler(node: Any, messages: _Messages, topic: str, seed: int) -> None:
    rng = random.Random(seed)
    valid = messages.by_topic.get(topic) or [v for vs in messages.by_topic.values() for v in vs]
    value = hostile_bytes(rng.choice(valid), rng) if rng.random() < 0.97 else None
    # every example starts from the same state: request ids unseen, our own request open, key not installed
    node.exchange.state.seen.clear()
    node.exchange.state.pending[messages.own_request.request_id] = Pending(
        "fz", frozenset([messages.wanted]), {k.kem: k for k in messages.kems}, time.monotonic())
    node.keyring._received.pop(("fz", messages.wanted), None)
    sent_before = len(node.exchange.kp.sent)
    trust_before = node.trust.state
    start = time.perf_counter()
    node.exchange.dispatch(topic, value)  # must not raise: not even a KafkaRatchetError gets out of it
    node.exchange.on_trust_records()
    assert time.perf_counter() - start < 2.0
    answered = node.exchange.kp.sent[sent_before:]
    if answered:
        parsed = kx.parse(value)  # type: ignore[arg-type]
        assert topic == "fz.reqs" and parsed.body in messages.authentic_requests, "answered a forged request"
    installed = node.keyring.get("fz", messages.wanted)
    if installed is not None:
        assert topic == "fz.keys" and kx.parse(value).body == messages.answer.body  # type: ignore[arg-type]
        assert installed == b"\x55" * 32
    if node.trust.state != trust_before:
        assert TrustUpdate.decode(value).body in AUTHENTIC_BODIES  # type: ignore[arg-type]


def test_handler_acts_on_the_valid_messages(node: Any, messages: _Messages) -> None:
    """The fuzz test above is only meaningful if the unmodified messages do get through."""
    node.exchange.state.seen.clear()
    before = len(node.exchange.kp.sent)
    node.exchange.dispatch("fz.reqs", messages.request.raw)
    node.exchange.dispatch("fz.reqs", messages.forward.raw)
    assert len(node.exchange.kp.sent) == before + 2
    node.exchange.dispatch("fz.reqs", messages.request.raw)  # a replay gets nothing
    assert len(node.exchange.kp.sent) == before + 2
    node.exchange.state.pending[messages.own_request.request_id] = Pending(
        "fz", frozenset([messages.wanted]), {k.kem: k for k in messages.kems}, time.monotonic())
    node.keyring._received.pop(("fz", messages.wanted), None)
    node.exchange.dispatch("fz.keys", messages.answer.raw)
    assert node.keyring.get("fz", messages.wanted) == b"\x55" * 32
    node.exchange.dispatch("denylist", DENY.encode())
    node.exchange.on_trust_records()
    assert node.trust.is_denied(ident(51).public_key)


@budget(1500)
@given(hostile(*(u.encode() for u in UPDATES)), seeds)
def test_fuzz_trust_topics_keep_the_store_consistent(node: Any, data: bytes, seed: int) -> None:
    """Whatever arrives on allowlist/denylist, what the node persisted matches what it trusts."""
    topic = random.Random(seed).choice(["allowlist", "denylist"])
    node.exchange.dispatch(topic, data)
    node.exchange.on_trust_records()
    node.credentials.persist_trust(force=True)
    restarted = Credentials(node.store, clock_skew=node.settings.clock_skew)
    assert restarted.trust.state == node.trust.state, "a restart trusts exactly what the live node trusts"
