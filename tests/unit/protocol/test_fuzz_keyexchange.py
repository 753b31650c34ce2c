"""Fuzzing key requests, forwarded requests and answers: parse, verify, open.

Besides "a defined result or a KafkaRatchetError", whatever verifies must be authentic: a hostile
variant of a signed message only verifies when its signed body is byte-for-byte one its signer made,
and an answer only opens, under the requester's ephemeral keys, to exactly the keys wrapped in it.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given

from kafkaratchet.errors import DecryptionError, FormatError, KafkaRatchetError, UnsupportedVersionError
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.protocol.validation import ValidatedChain
from tests.unit._fuzzkit import NOW, budget, hostile, make_world, outcome

WORLD = make_world()
KEMS_BOTH = [KemPrivateKey(KemType.X25519), KemPrivateKey(KemType.X25519_MLKEM768)]
KEMS_X = [KemPrivateKey(KemType.X25519)]
KEYS = [kx.WrappedKey(b"\x01" * 8, b"\xaa" * 32, NOW - 10), kx.WrappedKey(b"\x02" * 8, b"\xbb" * 32, NOW - 5)]
REQ = kx.make_request(WORLD.consumer, WORLD.consumer_chain, "fz", [k.key_id for k in KEYS], KEMS_BOTH, now=NOW)
REQ_X = kx.make_request(WORLD.consumer, WORLD.consumer_chain, "fz", [], KEMS_X, now=NOW)
SUB = kx.make_request(WORLD.subscriber, WORLD.subscriber_chain, "fz", [KEYS[0].key_id], KEMS_X, now=NOW)
FWD = kx.forward_request(WORLD.controller, WORLD.controller_chain, SUB)
ANS = kx.make_answer(WORLD.producer, WORLD.producer_chain, REQ, KEYS, now=NOW)
ANS_X = kx.make_answer(WORLD.producer, WORLD.producer_chain, REQ_X, KEYS[:1], now=NOW)
ANS_FWD = kx.make_answer(WORLD.producer, WORLD.producer_chain, FWD, KEYS[:1], now=NOW)
MESSAGES = [REQ, REQ_X, FWD, ANS, ANS_X, ANS_FWD]
SIGNED_BODIES = {m.body for m in MESSAGES} | {SUB.body}
KEMS_OF = {REQ.request_id: KEMS_BOTH, REQ_X.request_id: KEMS_X, SUB.request_id: KEMS_X}
WRAPPED_IN = {ANS.body: KEYS, ANS_X.body: KEYS[:1], ANS_FWD.body: KEYS[:1]}


def trust() -> TrustStore:
    return TrustStore([WORLD.root_cert])


def _judge(message: kx.KeyRequest | kx.ForwardedRequest | kx.KeyAnswer) -> None:
    assert isinstance(outcome(kx.describe, message), str)
    if isinstance(message, kx.KeyAnswer):
        verified = outcome(kx.verify_answer, message, trust(), now=NOW)
        kems = {k.kem: k for k in KEMS_OF.get(message.request_id, KEMS_X)}
        opened = outcome(kx.open_answer, message, kems)
        if isinstance(verified, ValidatedChain):
            assert message.body in SIGNED_BODIES, "a forged answer body verified"
        if isinstance(opened, list):
            # the AEAD binds request id, requester and root: only the wrapped keys ever come out
            assert message.body in WRAPPED_IN or (message.request_id, message.requester, message.root) in {
                (a.request_id, a.requester, a.root) for a in (ANS, ANS_X, ANS_FWD)}
            originals = {(k.key_id, k.key, k.created) for ks in WRAPPED_IN.values() for k in ks}
            assert {(k.key_id, k.key, k.created) for k in opened} <= originals
        else:
            assert isinstance(opened, KafkaRatchetError)
        return
    verified = outcome(kx.verify_request, message, trust(), max_age=120, now=NOW)
    if isinstance(verified, ValidatedChain):
        assert message.body in SIGNED_BODIES, "a forged request body verified"
        if isinstance(message, kx.ForwardedRequest):
            assert message.inner.body in SIGNED_BODIES
        assert verified.subject in (WORLD.consumer.public_key, WORLD.subscriber.public_key)
    else:
        assert isinstance(verified, KafkaRatchetError)


@budget(4000)
@given(hostile(*(m.raw for m in MESSAGES)))
def test_fuzz_key_exchange_parse_verify_open(data: bytes) -> None:
    message = outcome(kx.parse, data)
    if isinstance(message, KafkaRatchetError):
        assert isinstance(message, FormatError)
        return
    _judge(message)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_valid_messages_verify(message: kx.KeyRequest | kx.ForwardedRequest | kx.KeyAnswer) -> None:
    again = kx.parse(message.raw)
    assert type(again) is type(message) and again.body == message.body
    _judge(again)


def test_unknown_version_and_kind_are_unsupported_not_malformed() -> None:
    _, kind, body, chain, signature = wire.unpack(REQ.raw)
    with pytest.raises(UnsupportedVersionError):
        kx.parse(wire.pack([2, kind, body, chain, signature]))
    with pytest.raises(UnsupportedVersionError):
        kx.parse(wire.pack([1, 9, body, chain, signature]))
    with pytest.raises(UnsupportedVersionError):  # a future version may have another length
        kx.parse(wire.pack([2, kind, body, chain, signature, b"more"]))


def test_nested_forwards_are_refused_in_linear_time() -> None:
    """Regression (fixed in keyexchange.py ``_parse(..., forwarded=False)``): a 1 MiB message of
    ~4,000 forwards nested in one another used to cost seconds and end in RecursionError, which
    escaped the node's handler and cost every other record of its batch."""
    raw = REQ.raw
    chain = WORLD.controller_chain.encode()
    levels = 0
    while levels < 1500:  # deeper than Python's recursion limit; 1 MiB holds ~4,000
        raw = wire.pack([1, int(kx.Kind.FORWARD), raw, chain, b"\x00" * 64])
        levels += 1
    start = time.perf_counter()
    with pytest.raises(FormatError):
        kx.parse(raw)
    assert time.perf_counter() - start < 0.5
    two = wire.pack([1, int(kx.Kind.FORWARD), FWD.raw, chain, b"\x00" * 64])
    with pytest.raises(FormatError, match="plain request"):
        kx.parse(two)


def test_an_answer_for_someone_elses_request_does_not_open() -> None:
    for answer, foreign in ((ANS, KEMS_X), (ANS_X, KEMS_BOTH)):
        kems = {k.kem: k for k in foreign}
        with pytest.raises(KafkaRatchetError) as info:
            kx.open_answer(answer, kems)
        assert isinstance(info.value, (DecryptionError, KafkaRatchetError))
    # and fresh ephemeral keys of the same kinds (what a replay to another consumer meets)
    with pytest.raises(DecryptionError):
        kx.open_answer(ANS, {k.kem: KemPrivateKey(k.kem) for k in KEMS_BOTH})


def test_a_request_signed_by_another_key_than_its_chain_never_verifies() -> None:
    _, kind, body, chain, _ = wire.unpack(REQ.raw)
    forged = kx.parse(wire.pack([1, kind, body, chain, WORLD.producer.sign(b"kr-request-v1", body)]))
    with pytest.raises(KafkaRatchetError, match="does not verify"):
        kx.verify_request(forged, trust(), max_age=120, now=NOW)


def test_answers_carry_at_most_max_key_ids_keys_the_newest() -> None:
    many = [kx.WrappedKey(i.to_bytes(8, "big"), bytes([i]) * 32, NOW - 1000 + i) for i in range(100)]
    answer = kx.make_answer(WORLD.producer, WORLD.producer_chain, REQ_X, many, now=NOW)
    opened = kx.open_answer(kx.parse(answer.raw), {k.kem: k for k in KEMS_X})  # type: ignore[arg-type]
    assert len(opened) == kx.MAX_KEY_IDS
    assert {k.created for k in opened} == {NOW - 1000 + i for i in range(100 - kx.MAX_KEY_IDS, 100)}
