"""Trust updates v2 and the trust store's rules, without a broker (the broker-level attacks are in
tests/integration/test_trust_attacks.py).

Each test names the rule of docs/PROTOCOL.md section 5 it pins; the ones marked "guard" were checked
by removing the named line of kafkaratchet/protocol/ (trust, trustfold, trustupdate) and seeing the test fail.
"""

from __future__ import annotations

import itertools
import random

import pytest

from kafkaratchet.errors import ChainError, FormatError, KafkaRatchetError, SignatureError
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    CERT_CONTEXT,
    REASON_DENYLISTED,
    REASON_MISSING_CHAIN,
    REASON_PROVISIONED_ROOT,
    REASON_ROOT_EXISTS,
    REASON_TOPIC_NOT_ALLOWED,
    REASON_UNKNOWN_ROOT,
    REASON_WIDENED_TOPICS,
    REASON_WIDENED_VALIDITY,
    Certificate,
    Chain,
    Usage,
    issue_certificate,
    self_signed_root,
)
from kafkaratchet.protocol.identity import SigningIdentity, verify
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.protocol.trust import (
    MAX_SELF_ENTRIES_PER_SIGNER,
    TRUST_CONTEXT,
    LegacyTrustUpdateError,
    TrustStore,
    TrustUpdate,
    make_trust_update,
)

NOW = 1_700_000_000
NB = NOW - 86_400
T = NOW - 3_600  # issue time of the entries below, unless a test is about time


def ident(n: int) -> SigningIdentity:
    return SigningIdentity(bytes([n]) * 32)


ROOT, ADMIN, ADMIN2, NARROW, LEAF, NEWROOT, OTHER, SUB = (ident(n) for n in (1, 2, 3, 4, 5, 6, 7, 8))
ROOT_CERT = self_signed_root(ROOT, not_before=NB)
ALL_ADMIN = [Usage.ALLOWLIST, Usage.DENYLIST, Usage.PRODUCE, Usage.CONSUME]


def chain(issuer: SigningIdentity, subject: SigningIdentity, usages: list[str], topics: list[str] | None = None,
          **kw: int) -> Chain:
    return Chain.of(issue_certificate(issuer, subject.public_key, usages=usages, topics=topics, not_before=NB,
                                      **kw))


ADMIN_CHAIN = chain(ROOT, ADMIN, ALL_ADMIN)
ADMIN2_CHAIN = chain(ROOT, ADMIN2, ALL_ADMIN)
NARROW_CHAIN = chain(ROOT, NARROW, [Usage.ALLOWLIST, Usage.DENYLIST, Usage.CONSUME], ["orders"])
LEAF_CHAIN = chain(ROOT, LEAF, [Usage.CONSUME], ["orders", "payments"])


def store() -> TrustStore:
    return TrustStore([ROOT_CERT])


def deny(signer: SigningIdentity, signer_chain: Chain | None, subject: SigningIdentity, *, at: int = T,
         topics: list[str] | None = None) -> TrustUpdate:
    return make_trust_update("deny", signer, signer_chain, subject.public_key, topics=topics, issued_at=at)


def allow(signer: SigningIdentity, signer_chain: Chain | None, subject: SigningIdentity, *, at: int = T,
          **kw: object) -> TrustUpdate:
    kw.setdefault("not_before", at)
    return make_trust_update("allow", signer, signer_chain, subject.public_key, issued_at=at, **kw)  # type: ignore[arg-type]


def reason(ts: TrustStore, update: TrustUpdate) -> str:
    with pytest.raises(ChainError) as info:
        ts.apply(update, now=NOW)
    return info.value.reason


# --------------------------------------------------------------------------- one structure is never another


def _signed_structures() -> dict[bytes, tuple[bytes, bytes, bytes]]:
    """One instance of every signed structure: context -> (signer key, signed body, signature)."""
    cert = issue_certificate(ROOT, LEAF.public_key, usages=[Usage.CONSUME])
    kems = [KemPrivateKey(KemType.X25519)]
    request = kx.make_request(LEAF, LEAF_CHAIN, "orders", [b"\x01" * 8], kems, now=NOW)
    forward = kx.forward_request(ADMIN, ADMIN_CHAIN, request)
    answer = kx.make_answer(ADMIN, ADMIN_CHAIN, request, [kx.WrappedKey(b"\x01" * 8, b"\x02" * 32, NOW)], now=NOW)
    entry = deny(ADMIN, ADMIN_CHAIN, OTHER)
    return {
        CERT_CONTEXT: (cert.issuer, cert.body, cert.signature),
        b"kr-request-v1": (request.signer, request.body, request.signature),
        b"kr-forward-v1": (forward.signer, forward.body, forward.signature),
        b"kr-answer-v1": (answer.signer, answer.body, answer.signature),
        TRUST_CONTEXT: (entry.signer, entry.body, entry.signature),
    }


def test_no_signed_structure_verifies_under_another_structures_context() -> None:
    structures = _signed_structures()
    for (own, (key, body, signature)), other in itertools.product(structures.items(), structures):
        if other == own:
            verify(key, own, body, signature)  # the control: it does verify where it belongs
            continue
        with pytest.raises(SignatureError):
            verify(key, other, body, signature)


@pytest.mark.parametrize("context", [CERT_CONTEXT, b"kr-request-v1", b"kr-forward-v1", b"kr-answer-v1"])
def test_every_other_structure_rewrapped_as_a_trust_update_is_refused(context: bytes) -> None:
    """Attack 1 of the issue: a certificate (or any signed message) re-wrapped as an update."""
    key, body, signature = _signed_structures()[context]
    with pytest.raises((FormatError, SignatureError)):
        TrustUpdate.decode(wire.pack([2, body, signature, ADMIN_CHAIN.encode()]))


def test_a_root_certificate_replayed_as_a_version_1_denial_is_refused() -> None:
    """The v1 attack verbatim: the root's own certificate carried the denylist usage, so re-wrapping any
    certificate it signed as ``[1, "deny", cert, root chain]`` denied that certificate's subject."""
    provisioner = issue_certificate(ROOT, OTHER.public_key, usages=[Usage.CONSUME])
    with pytest.raises(LegacyTrustUpdateError):
        TrustUpdate.decode(wire.pack([1, "deny", provisioner.encode(), Chain.of(ROOT_CERT).encode()]))


# --------------------------------------------------------------------------- scoped authority


def test_an_allow_cannot_replace_widen_or_re_date_an_existing_root() -> None:
    """Attack 3: a scoped allowlister republishing a root's key with new constraints."""
    ts = store()
    for update in (allow(NARROW, NARROW_CHAIN, ROOT, topics=["orders"], usages=[Usage.CONSUME],
                         not_before=T),  # would re-date the root to start later
                   allow(ADMIN, ADMIN_CHAIN, ROOT, usages=ALL_ADMIN)):
        assert reason(ts, update) == REASON_ROOT_EXISTS  # guard: Fold._allow "only a root itself may change"
    assert ts.roots[ROOT.public_key].not_before == NB
    added = allow(ADMIN, ADMIN_CHAIN, NEWROOT, topics=["orders"], usages=[Usage.CONSUME])
    assert ts.apply(added, now=NOW)
    assert reason(ts, allow(ADMIN2, ADMIN2_CHAIN, NEWROOT, usages=[Usage.CONSUME], at=T + 5)) == REASON_ROOT_EXISTS


def test_a_root_narrows_itself_only_by_its_own_signature() -> None:
    ts = store()
    narrower = allow(ROOT, None, ROOT, topics=["orders"], usages=[Usage.CONSUME, Usage.PRODUCE], not_before=NB,
                     pathlen=1, expiry=NOW + 10)
    assert ts.apply(narrower, now=NOW)
    wider_again = allow(ROOT, None, ROOT, at=T + 1, not_before=NB, usages=list(Usage.ALL))
    assert reason(ts, wider_again) == "widened-topics"
    assert reason(ts, allow(ROOT, None, ROOT, at=T + 1, topics=["orders"], usages=[Usage.CONSUME],
                            not_before=NB, pathlen=1, expiry=NOW + 20)) == REASON_WIDENED_VALIDITY


def test_a_one_topic_denylister_cannot_deny_everywhere_nor_the_root() -> None:
    """Attack 4: ``denylist`` rights used to ignore the signer's topics."""
    ts = store()
    assert reason(ts, deny(NARROW, NARROW_CHAIN, LEAF)) == REASON_WIDENED_TOPICS  # guard: _require_within
    assert reason(ts, deny(NARROW, NARROW_CHAIN, LEAF, topics=["payments"])) == REASON_WIDENED_TOPICS
    assert reason(ts, deny(NARROW, NARROW_CHAIN, ROOT, topics=["orders"])) == REASON_PROVISIONED_ROOT
    assert reason(ts, deny(ADMIN, ADMIN_CHAIN, ROOT)) == REASON_PROVISIONED_ROOT  # even an unrestricted admin
    assert ts.denied == frozenset() and not ts.state.scoped


def test_a_scoped_denial_removes_rights_for_its_topics_only_and_through_every_chain() -> None:
    ts = store()
    assert ts.apply(deny(NARROW, NARROW_CHAIN, LEAF, topics=["orders"]), now=NOW)
    leaf = ts.validate(LEAF_CHAIN, now=NOW)
    assert not leaf.allows(Usage.CONSUME, "orders") and leaf.allows(Usage.CONSUME, "payments")
    with pytest.raises(ChainError) as info:
        leaf.require(Usage.CONSUME, "orders")
    assert info.value.reason == REASON_DENYLISTED
    # a chain *through* the denied key loses the topic too
    below = chain(ROOT, LEAF, [Usage.CONSUME, Usage.CHAIN_ISSUE], ["orders", "payments"], pathlen=1).extend(
        issue_certificate(LEAF, SUB.public_key, usages=[Usage.CONSUME], topics=["orders", "payments"],
                          not_before=NB))
    sub = ts.validate(below, now=NOW)
    assert not sub.allows(Usage.CONSUME, "orders") and sub.allows(Usage.CONSUME, "payments")
    with pytest.raises(ChainError) as info:
        sub.require(Usage.CONSUME, "orders")
    assert info.value.reason in (REASON_DENYLISTED, REASON_TOPIC_NOT_ALLOWED)


def test_denying_an_allowlister_removes_the_roots_it_admitted() -> None:
    ts = store()
    assert ts.apply(allow(ADMIN, ADMIN_CHAIN, NEWROOT, topics=["orders"], usages=[Usage.CONSUME]), now=NOW)
    under_new = chain(NEWROOT, SUB, [Usage.CONSUME], ["orders"])
    assert ts.validate(under_new, now=NOW).allows(Usage.CONSUME, "orders")
    assert ts.apply(deny(ADMIN2, ADMIN2_CHAIN, ADMIN, at=T + 10), now=NOW)
    with pytest.raises(ChainError) as info:
        ts.validate(under_new, now=NOW)
    assert info.value.reason == REASON_DENYLISTED


# --------------------------------------------------------------------------- bounded state


def test_self_denial_needs_a_valid_chain_and_is_bounded_per_key() -> None:
    """Attack 5: any throw-away key could deny itself, growing every node's denylist."""
    ts = store()
    throwaway = SigningIdentity.generate()
    assert reason(ts, deny(throwaway, None, throwaway)) == REASON_MISSING_CHAIN
    stranger_chain = chain(throwaway, throwaway, [Usage.CONSUME])
    assert reason(ts, deny(throwaway, stranger_chain, throwaway)) == REASON_UNKNOWN_ROOT
    assert ts.entry_count == 0 and ts.denied == frozenset()
    for n in range(MAX_SELF_ENTRIES_PER_SIGNER + 3):  # a real key that leaves, many times over
        try:
            ts.apply(deny(LEAF, LEAF_CHAIN, LEAF, at=T + n, topics=[f"t{n}"] if n else None), now=NOW)
        except KafkaRatchetError:
            pass
    assert ts.entry_count == MAX_SELF_ENTRIES_PER_SIGNER  # guard: the per-signer limit in _admit
    assert ts.denied == {LEAF.public_key}


def test_entries_issued_in_the_future_or_starting_after_issue_are_refused() -> None:
    ts = store()
    assert reason(ts, deny(ADMIN, ADMIN_CHAIN, OTHER, at=NOW + ts.skew + 5)) == "not-yet-valid"
    late = allow(ADMIN, ADMIN_CHAIN, NEWROOT, usages=[Usage.CONSUME], not_before=T + ts.skew + 1)
    assert reason(ts, late) == "not-yet-valid"
    assert ts.entry_count == 0 or ts.state.roots.keys() == {ROOT.public_key}


# --------------------------------------------------------------------------- order independence


def _entries() -> list[TrustUpdate]:
    """Entries that interact: an admitted root, a denylister under it, a denial of that denylister's
    target, the allowlister's own denial, a root narrowing itself, scoped denials, and replays."""
    under = chain(NEWROOT, SUB, [Usage.DENYLIST, Usage.CONSUME], ["orders"])
    return [
        allow(ADMIN, ADMIN_CHAIN, NEWROOT, topics=["orders"], usages=[Usage.DENYLIST, Usage.CONSUME], at=T),
        deny(SUB, under, LEAF, topics=["orders"], at=T + 10),      # effective: NEWROOT exists at T + 10
        deny(ADMIN2, ADMIN2_CHAIN, ADMIN, at=T + 20),               # removes NEWROOT from here on
        deny(SUB, under, OTHER, topics=["orders"], at=T + 30),     # not effective: NEWROOT is gone by then
        deny(NARROW, NARROW_CHAIN, ADMIN2, topics=["orders"], at=T + 40),
        allow(ROOT, None, ROOT, usages=list(Usage.ALL), at=T + 50, not_before=NB, expiry=NOW + 86_400),
        deny(LEAF, LEAF_CHAIN, LEAF, topics=["payments"], at=T + 60),
        allow(NARROW, NARROW_CHAIN, OTHER, topics=["orders"], usages=[Usage.CONSUME], at=T + 70),
    ]


def test_the_trust_state_does_not_depend_on_the_order_entries_arrive_in() -> None:
    entries = _entries()
    reference = store()
    for update in entries:
        try:
            reference.apply(update, now=NOW)
        except KafkaRatchetError:
            pass
    state = reference.state
    assert LEAF.public_key in state.scoped and OTHER.public_key not in state.scoped  # the fold did judge
    assert ADMIN.public_key in state.denied and ROOT.public_key in state.roots
    rng = random.Random(7)
    for trial in range(60):
        shuffled = entries[:]
        rng.shuffle(shuffled)
        ts = store()
        if trial % 3 == 0:
            ts.apply_many(shuffled, now=NOW)  # one batch
        else:
            for update in shuffled:  # one at a time, as records arriving from several partitions
                try:
                    ts.apply(update, now=NOW)
                except KafkaRatchetError:
                    pass
        assert ts.state == state, f"order {[entries.index(u) for u in shuffled]} gave another state"


def test_an_entry_waiting_for_its_root_is_applied_when_the_root_arrives() -> None:
    under = chain(NEWROOT, SUB, [Usage.DENYLIST, Usage.CONSUME], ["orders"])
    early = deny(SUB, under, LEAF, topics=["orders"], at=T + 10)
    ts = store()
    assert reason(ts, early) == REASON_UNKNOWN_ROOT
    ts.apply(allow(ADMIN, ADMIN_CHAIN, NEWROOT, topics=["orders"], usages=[Usage.DENYLIST, Usage.CONSUME]),
             now=NOW)
    assert ts.state.scoped.get(LEAF.public_key) == (("orders",),)


def test_a_copy_rehearses_without_touching_the_original() -> None:
    ts = store()
    ts.apply(deny(ADMIN, ADMIN_CHAIN, OTHER), now=NOW)
    rehearsal = ts.copy()
    rehearsal.apply(deny(ADMIN, ADMIN_CHAIN, LEAF), now=NOW)
    assert ts.denied == {OTHER.public_key} and rehearsal.denied == {OTHER.public_key, LEAF.public_key}


def test_decode_checks_the_signature_before_the_chain_and_compiles_no_pattern() -> None:
    """Cheap rejection: a forged entry costs one signature check; its chain is never decoded."""
    good = deny(ADMIN, ADMIN_CHAIN, OTHER)
    items = wire.unpack(good.raw)
    forged = wire.pack([2, items[1], bytes(64), b"\xc1 not even msgpack"])
    with pytest.raises(SignatureError):
        TrustUpdate.decode(forged)
    patterned = Certificate.decode(wire.pack([1, wire.pack([
        LEAF.public_key, ROOT.public_key, NB, 0, ["^(a+)+$"] * 16, ["consume"], 0, {}]), bytes(64)]))
    assert patterned.topics is not None and len(patterned.topics) == 16
