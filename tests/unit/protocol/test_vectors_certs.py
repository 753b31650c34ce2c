"""Every case in tests/vectors/certificates.json, chains.json and trust_updates.json.

Run the way another implementation would: only the JSON and the documented
error names (a ChainError reason, or an exception class name) are used.
"""

from __future__ import annotations

from typing import Any

import pytest

from kafkaratchet import errors
from kafkaratchet.protocol.certs import REASONS, Certificate, Chain
from kafkaratchet.protocol.trust import LegacyTrustUpdateError, TrustStore, TrustUpdate
from tests.unit._vectors import VECTORS, generator
from tests.unit._vectors import cases as _cases
from tests.unit._vectors import load as _load

FILES = ("certificates.json", "chains.json", "trust_updates.json")


def _store(name: str) -> TrustStore:
    data = _load(name)
    return TrustStore([Certificate.decode(bytes.fromhex(c)) for c in data["roots"]],
                      [bytes.fromhex(k) for k in data["denied"]], skew=data["skew"])


def _expect_error(case: dict[str, Any], exc: BaseException) -> None:
    """``error`` is a ChainError reason, or the exact class name of the exception."""
    error = case["error"]
    if error in REASONS:
        assert isinstance(exc, errors.ChainError), repr(exc)
        assert exc.reason == error
    else:
        # a version 1 trust update is reported as the documented UnsupportedVersionError
        name = "UnsupportedVersionError" if isinstance(exc, LegacyTrustUpdateError) else type(exc).__name__
        assert name == error, repr(exc)


def _check_names(case: dict[str, Any]) -> None:
    assert case["name"].startswith("bad_" if "error" in case else "good_"), case["name"]
    assert ("error" in case) != ("expect" in case)


def test_vector_counts() -> None:
    cases = [c for name in FILES for c in _cases(name)]
    assert sum(c["name"].startswith("good_") for c in cases) >= 8
    assert sum(c["name"].startswith("bad_") for c in cases) >= 12


def test_generator_reproduces_the_files() -> None:
    module = generator("generate_certs")
    for name in FILES:
        assert module.render(name) == (VECTORS / name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize("case", _cases("certificates.json"), ids=lambda c: c["name"])
def test_certificate_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    data = bytes.fromhex(case["certificate"])
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            Certificate.decode(data).verify_signature()
        _expect_error(case, info.value)
        return
    cert = Certificate.decode(data)
    cert.verify_signature()
    expect = case["expect"]
    assert cert.subject.hex() == expect["subject"]
    assert cert.issuer.hex() == expect["issuer"]
    assert cert.not_before == expect["not_before"]
    assert cert.expiry == expect["expiry"]
    assert cert.topics == (None if expect["topics"] is None else tuple(expect["topics"]))
    assert cert.usages == frozenset(expect["usages"])
    assert cert.pathlen == expect["pathlen"]
    assert dict(cert.extra) == expect["extra"]
    assert cert.self_signed is expect["self_signed"]
    assert cert.body.hex() == expect["body"]
    for topic, allowed in expect["allows_topic"].items():
        assert cert.allows_topic(topic) is allowed, topic
    assert cert.encode() == data


@pytest.mark.parametrize("case", _cases("chains.json"), ids=lambda c: c["name"])
def test_chain_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    store = _store("chains.json")
    now = case.get("now", _load("chains.json")["now"])
    data = bytes.fromhex(case["chain"])
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            store.validate(Chain.decode(data), now=now)
        _expect_error(case, info.value)
        return
    chain = Chain.decode(data)
    assert chain.encode() == data
    result = store.validate(chain, now=now)
    expect = case["expect"]
    assert result.subject.hex() == expect["subject"]
    assert result.root.hex() == expect["root"]
    assert result.topics == (None if expect["topics"] is None else tuple(expect["topics"]))
    assert result.usages == frozenset(expect["usages"])
    assert result.expiry == expect["expiry"]
    assert expect["allows"], "a good chain case should check at least one (usage, topic)"
    for usage, topic, allowed in expect["allows"]:
        assert result.allows(usage, topic) is allowed, (usage, topic)


@pytest.mark.parametrize("case", _cases("trust_updates.json"), ids=lambda c: c["name"])
def test_trust_update_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    store = _store("trust_updates.json")
    now = case.get("now", _load("trust_updates.json")["now"])
    for prior in case.get("prior", ()):
        store.apply(TrustUpdate.decode(bytes.fromhex(prior)), now=now)
    before = store.state
    data = bytes.fromhex(case["update"])
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            store.apply(TrustUpdate.decode(data), now=now)
        _expect_error(case, info.value)
        assert store.state == before
        return
    update = TrustUpdate.decode(data)
    assert update.encode() == data
    expect = case["expect"]
    assert store.apply(update, now=now) is expect["changed"]
    after = store.state
    assert {k.hex() for k in after.denied - before.denied} == set(expect["denied_added"])
    scoped = sorted([k.hex(), list(s)] for k, scopes in after.scoped.items() for s in scopes
                    if s not in before.scoped.get(k, ()))
    assert scoped == sorted(expect["scoped_added"])
    assert {k.hex() for k in after.roots.keys() - before.roots.keys()} == set(expect["roots_added"])
    changed = {k.hex() for k, r in after.roots.items() if k in before.roots and before.roots[k] != r}
    assert changed == set(expect["roots_changed"])
    for key in (*expect["roots_added"], *expect["roots_changed"]):
        root = after.roots[bytes.fromhex(key)]
        assert (root.topics, root.usages, root.pathlen, root.not_before, root.expiry) == (
            update.topics, update.usages, update.pathlen, update.not_before, update.expiry)
