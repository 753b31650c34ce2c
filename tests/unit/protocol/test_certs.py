"""Certificates, chains and trust updates: one passing and one failing test per rule, plus fuzzing."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkaratchet.errors import (
    ChainError,
    FormatError,
    KafkaRatchetError,
    SignatureError,
    UnsupportedVersionError,
)
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    CERT_CONTEXT,
    MAX_CHAIN_LENGTH,
    REASON_BAD_SIGNATURE,
    REASON_BROKEN_LINK,
    REASON_DENYLISTED,
    REASON_EMPTY_CHAIN,
    REASON_EXPIRED,
    REASON_NOT_YET_VALID,
    REASON_PATHLEN_EXCEEDED,
    REASON_TOO_LONG,
    REASON_TOPIC_NOT_ALLOWED,
    REASON_UNKNOWN_ROOT,
    REASON_USAGE_NOT_ALLOWED,
    REASON_WIDENED_TOPICS,
    REASON_WIDENED_USAGES,
    REASONS,
    Certificate,
    Chain,
    Usage,
    issue_certificate,
    self_signed_root,
)
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import TrustStore, TrustUpdate
from kafkaratchet.protocol.validation import ValidatedChain

NOW = 1_700_000_000
NB = NOW - 3600
DAY = 86_400


def ident(n: int) -> SigningIdentity:
    return SigningIdentity(bytes([n]) * 32)


ROOT, ROOT2, INTER, INTER2, LEAF, OTHER, ADMIN = (ident(n) for n in (1, 2, 3, 4, 5, 6, 7))


def issue(issuer: SigningIdentity, subject: SigningIdentity, **kw: Any) -> Certificate:
    kw.setdefault("not_before", NB)
    kw.setdefault("usages", [Usage.PRODUCE, Usage.CONSUME])
    return issue_certificate(issuer, subject.public_key, **kw)


def root_cert(identity: SigningIdentity = ROOT, **kw: Any) -> Certificate:
    kw.setdefault("not_before", NB)
    return self_signed_root(identity, **kw)


def store(*roots: Certificate, denied: tuple[bytes, ...] = ()) -> TrustStore:
    return TrustStore(roots or (root_cert(),), denied)


def reason(chain: Chain, ts: TrustStore | None = None, now: float = NOW) -> str:
    with pytest.raises(ChainError) as info:
        (ts or store()).validate(chain, now=now)
    return info.value.reason


def raw_body(**changes: Any) -> list[Any]:
    fields = {"subject": LEAF.public_key, "issuer": ROOT.public_key, "not_before": NB, "expiry": 0,
              "topics": ["orders"], "usages": ["consume"], "pathlen": 0, "extra": {}}
    fields.update(changes)
    return list(fields.values())


def signed(body: Any, signer: SigningIdentity = ROOT, version: Any = 1) -> bytes:
    data = wire.pack(body)
    return wire.pack([version, data, signer.sign(CERT_CONTEXT, data)])


# --------------------------------------------------------------------------- encoding


def test_certificate_round_trip_keeps_body_bytes() -> None:
    cert = issue(ROOT, LEAF, topics=["orders", "^m-[0-9]+"], expiry=NOW + DAY, pathlen=3, extra={"x": [1, b"y"]})
    again = Certificate.decode(cert.encode())
    assert again == cert and hash(again) == hash(cert)
    assert again.body == cert.body and again.signature == cert.signature
    assert again.topics == ("orders", "^m-[0-9]+") and again.pathlen == 3 and again.expiry == NOW + DAY
    assert again.usages == frozenset({"produce", "consume"})
    assert dict(again.extra) == {"x": [1, b"y"]}
    again.verify_signature()


def test_signature_is_over_the_received_body_not_a_re_encoding() -> None:
    # A non-minimal (but valid) msgpack int in the body: a re-encoding would differ and not verify.
    body = bytearray(wire.pack(raw_body(not_before=5)))
    index = 1 + 34 + 34  # array header, subject and issuer (bin8 headers + 32 bytes each)
    assert body[index] == 5
    body[index : index + 1] = b"\xcd\x00\x05"  # uint16 5
    data = wire.pack([1, bytes(body), ROOT.sign(CERT_CONTEXT, bytes(body))])
    cert = Certificate.decode(data)
    assert cert.not_before == 5 and cert.body == bytes(body)
    cert.verify_signature()


def test_unknown_usage_and_extra_fields_decode() -> None:
    cert = Certificate.decode(signed(raw_body(usages=["consume", "teleport"], extra={"future": {"a": 1}})))
    assert "teleport" in cert.usages and cert.extra["future"] == {"a": 1}


def test_usage_all() -> None:
    assert Usage.ALL == {"produce", "consume", "subscribe", "controller", "chain-issue", "allowlist", "denylist"}


def test_self_signed_and_repr_hides_nothing_secret() -> None:
    cert = root_cert()
    assert cert.self_signed and not issue(ROOT, LEAF).self_signed
    text = repr(cert) + repr(store()) + repr(store().validate(Chain.of(issue(ROOT, LEAF)), now=NOW))
    assert ROOT.seed_bytes().hex() not in text and ROOT.fingerprint in text


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedVersionError):
        Certificate.decode(signed(raw_body(), version=2))
    with pytest.raises(UnsupportedVersionError):
        Chain.decode(wire.pack([2, []]))
    with pytest.raises(UnsupportedVersionError):
        TrustUpdate.decode(wire.pack([7]))
    with pytest.raises(UnsupportedVersionError):  # version 1 entries are never applied again
        TrustUpdate.decode(wire.pack([1, "deny", issue(LEAF, LEAF).encode(), None]))


WRONG_BODY_FIELDS = [
    ("subject", "k" * 32), ("subject", b"\x01" * 31), ("subject", None),
    ("issuer", 5), ("issuer", b"\x01" * 33),
    ("not_before", "now"), ("not_before", -1), ("not_before", 1.5), ("not_before", True),
    ("expiry", None), ("expiry", -5), ("expiry", b"\x00"),
    ("topics", "orders"), ("topics", [b"orders"]), ("topics", [""]), ("topics", ["t" * 250]),
    ("topics", ["^" + "a" * 256]), ("topics", {}), ("topics", [f"^p{i}" for i in range(17)]),
    ("usages", None), ("usages", "produce"), ("usages", [1]), ("usages", [""]), ("usages", ["u" * 65]),
    ("usages", ["a", "a"]), ("usages", [f"u{i}" for i in range(33)]),
    ("pathlen", -1), ("pathlen", 256), ("pathlen", "1"), ("pathlen", False),
    ("extra", None), ("extra", []), ("extra", {b"k": 1}),
]


@pytest.mark.parametrize(("name", "value"), WRONG_BODY_FIELDS, ids=lambda v: repr(v)[:20])
def test_wrong_type_in_each_body_field(name: str, value: Any) -> None:
    with pytest.raises(FormatError) as info:
        Certificate.decode(signed(raw_body(**{name: value})))
    assert name in str(info.value)
    assert not isinstance(info.value, UnsupportedVersionError)


def test_a_topic_list_over_its_cap_is_refused_inside_the_decoder() -> None:
    with pytest.raises(FormatError, match="more than 256 items"):
        Certificate.decode(signed(raw_body(topics=[f"t{i}" for i in range(257)])))


def test_every_body_field_is_covered() -> None:
    assert {name for name, _ in WRONG_BODY_FIELDS} == {
        "subject", "issuer", "not_before", "expiry", "topics", "usages", "pathlen", "extra"}


@pytest.mark.parametrize("size", [7, 9, 0])
def test_body_must_have_exactly_eight_fields(size: int) -> None:
    with pytest.raises(FormatError, match="body"):
        Certificate.decode(signed((raw_body() + [None])[:size]))


def test_body_not_an_array() -> None:
    with pytest.raises(FormatError, match="body"):
        Certificate.decode(signed({"subject": b""}))


GOOD_BODY = wire.pack(raw_body())
GOOD_SIG = ROOT.sign(CERT_CONTEXT, GOOD_BODY)
WRONG_OUTER = [
    ("version", ["1", GOOD_BODY, GOOD_SIG]), ("version", [None, GOOD_BODY, GOOD_SIG]),
    ("version", [True, GOOD_BODY, GOOD_SIG]),
    ("body", [1, "text", GOOD_SIG]), ("body", [1, raw_body(), GOOD_SIG]), ("body", [1, b"\xc1", GOOD_SIG]),
    ("signature", [1, GOOD_BODY, GOOD_SIG[:63]]), ("signature", [1, GOOD_BODY, None]),
    ("certificate", [1, GOOD_BODY]), ("certificate", [1, GOOD_BODY, GOOD_SIG, b""]), ("certificate", []),
    ("certificate", {"v": 1}), ("certificate", b"bytes"),
]


@pytest.mark.parametrize(("name", "outer"), WRONG_OUTER, ids=lambda v: repr(v)[:20])
def test_wrong_types_in_outer_array(name: str, outer: Any) -> None:
    with pytest.raises(FormatError) as info:
        Certificate.decode(wire.pack(outer))
    assert name in str(info.value) or "msgpack" in str(info.value)


def test_chain_and_update_outer_formats() -> None:
    cert = issue(ROOT, LEAF).encode()
    for bad in ([1], [1, [cert], 0], [1, []], [1, [cert] * (MAX_CHAIN_LENGTH + 1)], [1, ["x"]], [1, cert],
                ["1", [cert]]):
        with pytest.raises(FormatError):
            Chain.decode(wire.pack(bad))
    for bad_update in ([2, cert], [2, cert, b"\x00" * 64, None, None], [2, "x", b"\x00" * 64, None],
                       [2, cert, b"\x00" * 64, "chain"], [2, cert, b"short", None], ["2", cert, b"\x00" * 64, None]):
        with pytest.raises(FormatError):
            TrustUpdate.decode(wire.pack(bad_update))
    with pytest.raises(FormatError):
        Chain.decode(b"\x00" * (64 * 1024 + 1))


def test_issue_certificate_refuses_what_decode_would() -> None:
    for kwargs in ({"topics": ["^("]}, {"usages": ["a"] * 2}, {"pathlen": 300}, {"expiry": -1}):
        with pytest.raises(FormatError):
            issue_certificate(ROOT, LEAF.public_key, **{"usages": ["consume"], **kwargs})
    with pytest.raises(FormatError):
        issue_certificate(ROOT, b"short", usages=[])


def test_issue_defaults() -> None:
    cert = issue_certificate(ROOT, LEAF.public_key, usages=[Usage.CONSUME])
    assert cert.pathlen == 0 and cert.expiry == 0 and cert.topics is None and cert.not_before > NOW
    assert store().validate(Chain.of(cert)).subject == LEAF.public_key  # valid now, despite the fresh not_before


# --------------------------------------------------------------------------- topic matching


def test_allows_topic() -> None:
    cert = issue(ROOT, LEAF, topics=["orders", "^metrics-[a-z]+"])
    assert cert.allows_topic("orders") and cert.allows_topic("metrics-cpu")
    assert not cert.allows_topic("orders2") and not cert.allows_topic("metrics-cpu1")
    assert not cert.allows_topic("xmetrics-cpu")  # fullmatch, not search
    assert issue(ROOT, LEAF, topics=None).allows_topic("anything")
    assert not issue(ROOT, LEAF, topics=[]).allows_topic("orders")


def test_validated_chain_allows_and_require() -> None:
    vc = ValidatedChain(subject=LEAF.public_key, root=ROOT.public_key, topics=("orders",),
                        usages=frozenset({Usage.CONSUME}), expiry=0)
    assert vc.allows(Usage.CONSUME, "orders") and not vc.allows(Usage.PRODUCE, "orders")
    assert not vc.allows(Usage.CONSUME, "payments")
    vc.require(Usage.CONSUME, "orders")
    with pytest.raises(ChainError) as info:
        vc.require(Usage.PRODUCE, "orders")
    assert info.value.reason == REASON_USAGE_NOT_ALLOWED
    with pytest.raises(ChainError) as info:
        vc.require(Usage.CONSUME, "payments")
    assert info.value.reason == REASON_TOPIC_NOT_ALLOWED


# --------------------------------------------------------------------------- building chains


def test_chain_builders() -> None:
    a, b = issue(ROOT, INTER, pathlen=1), issue(INTER, LEAF)
    chain = Chain.of(a).extend(b)
    assert chain == Chain.of(a, b) and chain.leaf == b and chain.subject == LEAF.public_key
    assert Chain.decode(chain.encode()) == chain
    with pytest.raises(ChainError) as info:
        Chain.of(a, issue(OTHER, LEAF))
    assert info.value.reason == REASON_BROKEN_LINK
    with pytest.raises(ChainError) as info:
        Chain.of()
    assert info.value.reason == REASON_EMPTY_CHAIN


# --------------------------------------------------------------------------- validation, rule by rule


def test_valid_direct_and_intermediate() -> None:
    vc = store().validate(Chain.of(issue(ROOT, LEAF, topics=["orders"])), now=NOW)
    assert (vc.subject, vc.root, vc.topics) == (LEAF.public_key, ROOT.public_key, ("orders",))
    chain = Chain.of(issue(ROOT, INTER, pathlen=1, usages=Usage.ALL), issue(INTER, LEAF))
    assert store().validate(chain, now=NOW).usages == {"produce", "consume"}


def test_unknown_root() -> None:
    assert reason(Chain.of(issue(OTHER, LEAF))) == REASON_UNKNOWN_ROOT
    assert store(root_cert(OTHER)).validate(Chain.of(issue(OTHER, LEAF)), now=NOW).root == OTHER.public_key


def test_removed_root_is_unknown() -> None:
    ts = store()
    ts.remove_root(ROOT.public_key)
    ts.remove_root(OTHER.public_key)  # absent: no error
    assert reason(Chain.of(issue(ROOT, LEAF)), ts) == REASON_UNKNOWN_ROOT


def test_broken_link() -> None:
    assert reason(Chain((issue(ROOT, INTER, pathlen=None), issue(OTHER, LEAF)))) == REASON_BROKEN_LINK


def test_bad_signature() -> None:
    good = issue(ROOT, LEAF)
    store().validate(Chain.of(good), now=NOW)
    forged = Certificate.decode(signed(raw_body(), signer=OTHER))
    assert reason(Chain.of(forged)) == REASON_BAD_SIGNATURE
    sig = bytearray(good.signature)
    sig[0] ^= 1
    tampered = Certificate.decode(wire.pack([1, good.body, bytes(sig)]))
    assert reason(Chain.of(tampered)) == REASON_BAD_SIGNATURE
    with pytest.raises(SignatureError):
        tampered.verify_signature()


@pytest.mark.parametrize("where", ["leaf", "intermediate", "root"])
def test_expired(where: str) -> None:
    exp = {where: NOW - 1000}
    ts = store(root_cert(expiry=exp.get("root", 0)))
    chain = Chain.of(issue(ROOT, INTER, pathlen=1, expiry=exp.get("intermediate", 0)),
                     issue(INTER, LEAF, expiry=exp.get("leaf", 0)))
    assert reason(chain, ts) == REASON_EXPIRED
    ts.validate(chain, now=NOW - 2000)  # the same chain, earlier: valid


def test_expiry_skew() -> None:
    chain = Chain.of(issue(ROOT, LEAF, expiry=NOW))
    store().validate(chain, now=NOW + 300)
    assert reason(chain, now=NOW + 301) == REASON_EXPIRED
    strict = TrustStore([root_cert()], skew=0)
    assert reason(chain, strict, now=NOW + 1) == REASON_EXPIRED


@pytest.mark.parametrize("where", ["leaf", "intermediate", "root"])
def test_not_yet_valid(where: str) -> None:
    nb = {where: NOW + 1000}
    ts = store(root_cert(not_before=nb.get("root", NB)))
    chain = Chain.of(issue(ROOT, INTER, pathlen=1, not_before=nb.get("intermediate", NB)),
                     issue(INTER, LEAF, not_before=nb.get("leaf", NB)))
    assert reason(chain, ts) == REASON_NOT_YET_VALID
    ts.validate(chain, now=NOW + 1000)
    ts.validate(chain, now=NOW + 700)  # within the default skew of 300 s


@pytest.mark.parametrize(
    ("parent", "child", "ok"),
    [
        (None, None, True),
        (None, ["^anything.*"], True),
        (["orders"], ["orders"], True),
        (["orders", "payments"], ["payments"], True),
        (["orders"], [], True),
        (["^metrics-.*"], ["metrics-cpu"], True),
        (["^metrics-.*"], ["^metrics-.*"], True),  # a child regex equal to its parent's
        (["orders"], None, False),  # all topics under a list
        (["orders"], ["payments"], False),
        (["orders"], ["orders", "payments"], False),
        (["^metrics-.*"], ["xmetrics-cpu"], False),  # fullmatch, not search
        (["^metrics-.*"], ["^metrics-cpu.*"], False),  # narrower in fact, but regexes must be identical
        (["^metrics-.*"], ["^metrics-.*$"], False),
        (["metrics-cpu"], ["^metrics-cpu"], False),  # a regex under a literal
    ],
)
def test_widened_topics(parent: list[str] | None, child: list[str] | None, ok: bool) -> None:
    ts = store(root_cert(topics=parent))
    chain = Chain.of(issue(ROOT, LEAF, topics=child))
    if ok:
        assert ts.validate(chain, now=NOW).topics == (None if child is None else tuple(child))
    else:
        assert reason(chain, ts) == REASON_WIDENED_TOPICS


def test_widened_topics_below_an_intermediate() -> None:
    chain = Chain.of(issue(ROOT, INTER, topics=["orders"], pathlen=1), issue(INTER, LEAF, topics=None))
    assert reason(chain) == REASON_WIDENED_TOPICS


def test_widened_usages() -> None:
    ts = store(root_cert(usages=[Usage.PRODUCE, Usage.CONSUME, "future"]))
    ts.validate(Chain.of(issue(ROOT, LEAF, usages=[Usage.CONSUME, "future"])), now=NOW)
    assert reason(Chain.of(issue(ROOT, LEAF, usages=[Usage.SUBSCRIBE])), ts) == REASON_WIDENED_USAGES
    assert reason(Chain.of(issue(ROOT, LEAF, usages=["other-future"])), ts) == REASON_WIDENED_USAGES
    chain = Chain.of(issue(ROOT, INTER, usages=[Usage.CONSUME], pathlen=1), issue(INTER, LEAF))
    assert reason(chain) == REASON_WIDENED_USAGES


def test_pathlen_from_the_root() -> None:
    ts = store(root_cert(pathlen=1))
    ts.validate(Chain.of(issue(ROOT, LEAF)), now=NOW)  # exactly at the limit
    chain = Chain.of(issue(ROOT, INTER, pathlen=None), issue(INTER, LEAF))
    assert reason(chain, ts) == REASON_PATHLEN_EXCEEDED
    assert reason(Chain.of(issue(ROOT, LEAF)), store(root_cert(pathlen=0))) == REASON_PATHLEN_EXCEEDED


def test_pathlen_from_an_intermediate() -> None:
    at_limit = Chain.of(issue(ROOT, INTER, pathlen=1), issue(INTER, INTER2, pathlen=None))
    store().validate(at_limit, now=NOW)
    assert reason(at_limit.extend(issue(INTER2, LEAF))) == REASON_PATHLEN_EXCEEDED
    assert reason(Chain.of(issue(ROOT, INTER, pathlen=0), issue(INTER, LEAF))) == REASON_PATHLEN_EXCEEDED
    # A child cannot raise the limit its parent set: min(remaining, own).
    raised = Chain.of(issue(ROOT, INTER, pathlen=1), issue(INTER, INTER2, pathlen=5), issue(INTER2, LEAF))
    assert reason(raised) == REASON_PATHLEN_EXCEEDED


def test_too_long() -> None:
    ids = [ident(100 + n) for n in range(MAX_CHAIN_LENGTH + 1)]
    certs = [issue(ROOT, ids[0], pathlen=None)]
    certs += [issue(ids[n - 1], ids[n], pathlen=None) for n in range(1, len(ids))]
    store().validate(Chain.of(*certs[:MAX_CHAIN_LENGTH]), now=NOW)
    long_chain = Chain.of(*certs)
    assert reason(long_chain) == REASON_TOO_LONG
    with pytest.raises(ChainError):
        long_chain.encode()


def test_denylisted_intermediate_leaf_and_root() -> None:
    chain = Chain.of(issue(ROOT, INTER, pathlen=1), issue(INTER, LEAF))
    store().validate(chain, now=NOW)
    for key in (INTER.public_key, LEAF.public_key, ROOT.public_key):
        assert reason(chain, store(denied=(key,))) == REASON_DENYLISTED
    ts = store()
    ts.deny(INTER.public_key)
    assert ts.is_denied(INTER.public_key) and reason(chain, ts) == REASON_DENYLISTED


def test_expiry_clamping() -> None:
    ts = store(root_cert(expiry=NOW + 10 * DAY))
    chain = Chain.of(issue(ROOT, INTER, pathlen=1, expiry=NOW + DAY), issue(INTER, LEAF, expiry=NOW + 5 * DAY))
    assert ts.validate(chain, now=NOW).expiry == NOW + DAY  # the child outliving its parent is clamped
    assert store().validate(Chain.of(issue(ROOT, LEAF)), now=NOW).expiry == 0
    assert ts.validate(Chain.of(issue(ROOT, LEAF)), now=NOW).expiry == NOW + 10 * DAY


def test_every_reason_is_exported() -> None:
    assert all(isinstance(r, str) and r == r.lower() for r in REASONS) and len(REASONS) == 19


# --------------------------------------------------------------------------- trust updates


def admin_chain(usages: Iterable[str], topics: list[str] | None = None) -> Chain:
    """ADMIN's chain from ROOT. An allow update's entry must fit within ``usages`` and ``topics``."""
    return Chain.of(issue(ROOT, ADMIN, usages=usages, topics=topics))


def test_patterns_are_compiled_only_once_every_signature_of_the_chain_verified() -> None:
    """A pattern that does not compile decodes (decoding never compiles); validation refuses it, and only
    after the chain's signatures verified (a forged certificate's pattern is never compiled)."""
    broken = Certificate.decode(signed(raw_body(topics=["^(unclosed", "^a{99999999999}"])))
    assert broken.topics == ("^(unclosed", "^a{99999999999}")
    with pytest.raises(FormatError, match="does not compile"):
        store().validate(Chain.of(broken), now=NOW)
    forged = Certificate.decode(wire.pack([1, broken.body, bytes(64)]))
    assert reason(Chain.of(forged)) == REASON_BAD_SIGNATURE


# trust updates (v2) and the trust store's rules: tests/unit/protocol/test_trust_v2.py


def test_store_is_thread_safe() -> None:
    ts = store()
    chain = Chain.of(issue(ROOT, LEAF))
    keys = [ident(200 + n).public_key for n in range(40)]
    errors: list[BaseException] = []

    def deny_all() -> None:
        for key in keys:
            ts.deny(key)

    def validate_all() -> None:
        try:
            for _ in range(40):
                ts.validate(chain, now=NOW)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (deny_all, validate_all, deny_all, validate_all)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and ts.denied == frozenset(keys)


def test_store_views_are_read_only() -> None:
    ts = store()
    with pytest.raises(TypeError):
        ts.roots[ROOT.public_key] = None  # type: ignore[index]
    assert ROOT.public_key in ts.roots
    with pytest.raises(FormatError):
        ts.deny(b"short")


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_format_error(data: bytes) -> None:
    for decode in (Certificate.decode, Chain.decode, TrustUpdate.decode):
        try:
            decode(data)
        except (FormatError, SignatureError):  # a trust update's signature is checked while decoding
            pass


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=40) | st.binary(max_size=40) | st.sampled_from(["^(", "^a+", "produce", "allow", "deny"]),
    lambda inner: st.lists(inner, max_size=9) | st.dictionaries(st.text(max_size=5) | st.binary(max_size=5), inner,
                                                               max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(msgpack_values, max_size=9), st.integers(0, 2))
def test_structured_garbage_only_raises_format_error(body: list[Any], version_kind: int) -> None:
    version = (1, 2, "1")[version_kind]
    for data in (signed(body, version=version), wire.pack([version, body]), wire.pack([version, *body])):
        for decode in (Certificate.decode, Chain.decode, TrustUpdate.decode):
            try:
                decode(data)
            except (FormatError, SignatureError):
                pass


@FUZZ
@given(st.integers(0, 7), msgpack_values)
def test_any_value_in_any_body_field(index: int, value: Any) -> None:
    body = raw_body()
    body[index] = value
    try:
        Certificate.decode(signed(body))
    except FormatError:
        pass


_FUZZ_STORE = TrustStore([root_cert(), root_cert(ROOT2, topics=["orders"], pathlen=2)])
_FUZZ_CHAINS = [
    Chain.of(issue(ROOT, INTER, pathlen=1, topics=["^o.*"]), issue(INTER, LEAF, topics=["orders"])).encode(),
    Chain.of(issue(ROOT2, LEAF, topics=["orders"], extra={"k": "v"})).encode(),
]


@FUZZ
@given(st.sampled_from(_FUZZ_CHAINS), st.data())
def test_single_byte_mutation_of_a_chain_is_rejected(encoded: bytes, data: st.DataObject) -> None:
    _FUZZ_STORE.validate(Chain.decode(encoded), now=NOW)
    index = data.draw(st.integers(0, len(encoded) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != encoded[index]))
    mutated = bytearray(encoded)
    mutated[index] = byte
    with pytest.raises(KafkaRatchetError):
        _FUZZ_STORE.validate(Chain.decode(bytes(mutated)), now=NOW)


def test_every_single_bit_flip_of_a_chain_is_rejected() -> None:
    encoded = _FUZZ_CHAINS[0]
    for index in range(len(encoded)):
        for bit in (0x01, 0x80):
            mutated = bytearray(encoded)
            mutated[index] ^= bit
            with pytest.raises(KafkaRatchetError):
                _FUZZ_STORE.validate(Chain.decode(bytes(mutated)), now=NOW)
