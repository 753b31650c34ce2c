"""Fuzzing certificate and chain decoding and validation with hostile variants of valid encodings.

Besides "a defined result or a KafkaRatchetError", every chain that *does* validate is checked
against what validation promises: its leaf is the subject, its root is allowlisted, and it grants
nothing its root did not (docs/PROTOCOL.md section 5).
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kafkaratchet.errors import ChainError, FormatError, KafkaRatchetError, SignatureError
from kafkaratchet.protocol.certs import Certificate, Chain, issue_certificate
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.protocol.validation import ValidatedChain
from tests.unit._fuzzkit import NOW, budget, hostile, ident, make_world, outcome, seeds

WORLD = make_world()
INTER = ident(20)
LEAF = ident(21)
_INTER_CERT = issue_certificate(WORLD.root, INTER.public_key, usages=["produce", "consume", "chain-issue"],
                                topics=["fz", "^fz-[0-9]+", "other"], pathlen=1, expiry=NOW + 86_400,
                                not_before=NOW - 3600, extra={"note": "intermediate"})
_LEAF_CERT = issue_certificate(INTER, LEAF.public_key, usages=["consume"], topics=["fz-7", "fz"], pathlen=0,
                               expiry=NOW + 3600, not_before=NOW - 60)
CHAINS = [WORLD.node_chain, WORLD.consumer_chain, WORLD.admin_chain, WORLD.subscriber_chain,
          Chain.of(_INTER_CERT, _LEAF_CERT)]
CERTS = [c for chain in CHAINS for c in chain.certificates] + [WORLD.root_cert]
_ROOT_USAGES = WORLD.root_cert.usages


def trust() -> TrustStore:
    return TrustStore([WORLD.root_cert], [ident(30).public_key])


def _check_validated(chain: Chain, checked: ValidatedChain) -> None:
    assert checked.subject == chain.subject and checked.root == WORLD.root.public_key
    assert checked.usages <= _ROOT_USAGES and checked.usages == chain.leaf.usages
    for cert in chain.certificates:
        assert cert.not_before <= NOW + trust().skew
        assert cert.expiry == 0 or NOW <= cert.expiry + trust().skew
        assert checked.expiry == 0 or (cert.expiry == 0 or checked.expiry <= cert.expiry)
    # what validated verifies: every signature is genuine
    for cert in chain.certificates:
        cert.verify_signature()


@budget(2500)
@given(hostile(*(c.encode() for c in CERTS)), st.sampled_from(["fz", "fz-7", "other", "x" * 249, ""]))
def test_fuzz_certificate_decode_and_verify(data: bytes, topic: str) -> None:
    cert = outcome(Certificate.decode, data)
    if isinstance(cert, KafkaRatchetError):
        assert isinstance(cert, FormatError)
        return
    assert outcome(Certificate.decode, cert.encode()) == cert, "what decodes re-encodes to the same certificate"
    assert isinstance(outcome(repr, cert), str)
    verified = outcome(cert.verify_signature)
    if verified is None:
        # only an issuer's own body verifies (the body bytes are exactly one the issuer signed)
        assert cert.body in {c.body for c in CERTS}
        assert outcome(cert.allows_topic, topic) in (True, False)
    else:
        assert isinstance(verified, SignatureError)


@budget(3000)
@given(hostile(*(c.encode() for c in CHAINS)), st.sampled_from(["fz", "fz-7", "fz-12", "other", "orders"]))
def test_fuzz_chain_decode_and_validate(data: bytes, topic: str) -> None:
    chain = outcome(Chain.decode, data)
    if isinstance(chain, KafkaRatchetError):
        assert isinstance(chain, FormatError)
        return
    checked = outcome(trust().validate, chain, now=NOW)
    if isinstance(checked, KafkaRatchetError):
        assert isinstance(checked, ChainError) and checked.reason
        return
    _check_validated(chain, checked)
    for usage in ("produce", "consume", "subscribe", "controller", "allowlist"):
        assert outcome(checked.allows, usage, topic) in (True, False)
        outcome(checked.require, usage, topic)


@budget(1500)
@given(seeds, st.integers(NOW - 10 * 86_400, NOW + 10 * 86_400))
def test_fuzz_recombined_certificates(seed: int, now: int) -> None:
    """Genuine certificates, reordered, duplicated and cut: only real chains, at valid times, validate."""
    rng = random.Random(seed)
    certs = [rng.choice(CERTS) for _ in range(rng.randint(1, 9))]
    built: Any = outcome(Chain, tuple(certs))
    if isinstance(built, KafkaRatchetError):
        return
    encoded = outcome(built.encode)
    if isinstance(encoded, bytes):
        assert Chain.decode(encoded) == built
    checked = outcome(trust().validate, built, now=now)
    if isinstance(checked, ValidatedChain):
        genuine = [tuple(c.certificates) for c in CHAINS] + [(_INTER_CERT,)]
        assert tuple(built.certificates) in genuine or all(c.self_signed for c in built.certificates[:1])
        assert checked.subject == built.subject


def test_regex_in_an_unverified_certificate_is_never_run() -> None:
    """A catastrophic-backtracking pattern in a forged certificate costs nothing: validation checks every
    signature (step 5) before any topic rule (step 7) runs a pattern. Guards the order of checks in
    kafkaratchet/protocol/validation.py::validate_chain (the signature loop comes before the ``_topics_narrow`` loop);
    with the order swapped, matching the child's literal against the forged regex takes minutes."""
    import time

    evil = "^(a|aa)*(a|aa)*(a|aa)*(a|aa)*c$"
    middle, leaf = ident(41), ident(42)
    # claims to be issued by the world root, but signed by another key
    forged = issue_certificate(ident(40), middle.public_key, usages=["consume"], topics=[evil], pathlen=1)
    body = forged.body.replace(ident(40).public_key, WORLD.root.public_key)
    tampered = Certificate.decode(Certificate(**{**forged.__dict__, "body": body}).encode())
    child = issue_certificate(middle, leaf.public_key, usages=["consume"], topics=["a" * 40 + "b"])
    start = time.perf_counter()
    error = outcome(trust().validate, Chain.of(tampered, child), now=NOW)
    assert isinstance(error, ChainError) and error.reason == "bad-signature"
    assert time.perf_counter() - start < 0.5
