"""Attacks on the trust layer, mounted the way an attacker would: records written to the real broker.

Each test is one point of the trust v2 issue (docs/THREAT-MODEL.md, "Trust updates") and names the
guard it relies on; each was checked by removing that guard and seeing the test fail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kafkaratchet.protocol import certs, topics, wire
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.records import Role
from kafkaratchet.protocol.trust import make_trust_update

from .nodes import Cluster, Node, wait_until
from .test_adversarial import SECRET, Attacker, Requester, isolated, serving_producer

pytestmark = pytest.mark.integration


@pytest.fixture
def attacker(cluster: Cluster) -> Iterator[Attacker]:
    """Raw read and write access to the broker: what an attacker has."""
    raw = Attacker(cluster)
    try:
        yield raw
    finally:
        raw.close()


def _admin(cluster: Cluster, usages: list[str], topics: list[str] | None = None) -> tuple[SigningIdentity, Chain]:
    admin = SigningIdentity.generate()
    return admin, Chain.of(issue_certificate(cluster.root, admin.public_key, usages=usages, topics=topics))


def _marker(cluster: Cluster, attacker: Attacker, root: str, nodes: list[Node]) -> None:
    """A genuine denial, scoped to a topic nobody uses, written after the attack: once every node applied
    it, every node has read (and judged) everything before it on partition 0."""
    admin, chain = _admin(cluster, [Usage.DENYLIST])
    leaver = SigningIdentity.generate()
    entry = make_trust_update("deny", admin, chain, leaver.public_key, topics=["marker-topic"])
    attacker.send(f"{root}-denylist", entry.encode())
    for node in nodes:
        wait_until(lambda node=node: leaver.public_key in node.crypto.trust.state.scoped, 30,
                   "the marker denial behind the attack is applied")


def _opens(cons: Node, prod: Node, root: str, text: bytes) -> bool:
    blob = prod.crypto.getValueSerializer().serialize(root, None, text)
    message = cons.crypto.waiter.open(root, Role.VALUE, blob, wait=15.0, retrier=None)
    return message.isCleartext() and message.getMessage() == text


def test_certificates_rewrapped_as_trust_updates_deny_and_admit_nobody(cluster: Cluster, attacker: Attacker,
                                                                       unique_root: str) -> None:
    """Attack 1: any certificate signed by a key holding ``denylist`` (the root's, in every chain) used to
    be re-wrappable as a denial of its subject, and as an allow making its subject a root. Guards
    protocol/trustupdate.py: v1 entries are refused (``LegacyTrustUpdateError``) and a v2 body is its own
    structure under its own context (``TRUST_CONTEXT``)."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    cons = cluster.node("cons", "consumer", crypto=isolated(root))
    assert _opens(cons, prod, root, b"before the attack")
    epoch = prod.crypto.epoch
    roots = {node.crypto.node_id: dict(node.crypto.trust.roots) for node in (prod, cons)}
    root_chain = Chain.of(cluster.root_cert).encode()
    victims = [c for node in (prod, cons) for chain in node.crypto.credentials.chains for c in chain.certificates]
    forged: list[bytes] = []
    for cert in victims:
        forged += [wire.pack([1, "deny", cert.encode(), root_chain]), wire.pack([1, "deny", cert.encode(), None]),
                   wire.pack([2, cert.body, cert.signature, root_chain]), wire.pack([2, cert.body, cert.signature,
                                                                                   None])]
    attacker.send(f"{root}-denylist", *forged)
    attacker.send(f"{root}-allowlist", *(f.replace(b"deny", b"allow") for f in forged))
    _marker(cluster, attacker, root, [prod, cons])
    for node in (prod, cons):
        assert not node.crypto.trust.denied, "a re-wrapped certificate denied someone"
        assert dict(node.crypto.trust.roots) == roots[node.crypto.node_id], "a re-wrapped certificate admitted a root"
    assert prod.crypto.epoch == epoch
    assert _opens(cons, prod, root, b"after the attack")


def test_patterns_of_forged_certificates_are_never_compiled(cluster: Cluster, attacker: Attacker,
                                                             unique_root: str) -> None:
    """Attack 2: topic patterns of unsigned, attacker-written certificates were compiled while decoding
    (about 0.5 s of CPU each). Records carrying chains of such certificates, on R.reqs, the trust topics
    and ``chains``, compile nothing. Guards protocol/topics.py ``_check_topic`` (length only; ``compile_patterns``
    runs after every signature of a chain rooted at a trusted key verified)."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    cons = cluster.node("cons", "consumer", crypto=isolated(root))
    outsider = SigningIdentity.generate()

    def hostile_chain(n: int) -> Chain:
        patterns = [f"^(x{n}_{i}|x{n}_{i}x)+(y|yy)+z{{1,99}}$" for i in range(certs.MAX_PATTERNS)]
        body = wire.pack([outsider.public_key, cluster.root.public_key, 0, 0, patterns, ["consume", "denylist"], 0,
                          {}])
        return Chain((certs.Certificate.decode(wire.pack([1, body, os.urandom(64)])),))

    before = topics._compile.cache_info().misses
    records = []
    for n in range(40):
        chain = hostile_chain(n)
        records.append((f"{root}-denylist",
                        make_trust_update("deny", outsider, chain, outsider.public_key).encode()))
        records.append((f"{root}-chains", chain.encode()))
        records.append((root + ".reqs", Requester(cluster, identity=outsider, chain=chain)
                        .request(root, [os.urandom(8)])[0].raw))
    for topic, value in records:
        attacker.send(topic, value)
    _marker(cluster, attacker, root, [prod, cons])
    assert _opens(cons, prod, root, b"after the patterns")
    assert topics._compile.cache_info().misses == before, "a pattern of a forged certificate was compiled"


def test_a_scoped_allowlister_cannot_replace_or_re_date_a_root(cluster: Cluster, attacker: Attacker,
                                                              unique_root: str, tmp_path: Any) -> None:
    """Attack 3: an allowlister for one topic republished an existing root's key with new constraints
    (``not_before`` far ahead): every chain under that root died, and the change was persisted over the
    provisioned root. Guards protocol/trustfold.py ``Fold._allow`` (an existing root changes only by its
    own signature, only to narrow) and ``not_before <= issued_at + skew``."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    cons = cluster.node("cons", "consumer", crypto=isolated(root))
    admin, chain = _admin(cluster, [Usage.ALLOWLIST, Usage.CONSUME, Usage.PRODUCE], topics=[root])
    key = cluster.root.public_key
    now = int(time.time())
    attacker.send(f"{root}-allowlist",
                  make_trust_update("allow", admin, chain, key, topics=[root], usages=[Usage.CONSUME]).encode(),
                  make_trust_update("allow", admin, chain, key, topics=[root], usages=[Usage.CONSUME],
                                    not_before=now + 10 * 365 * 86_400).encode(),
                  make_trust_update("allow", admin, chain, key, topics=[root], usages=[Usage.CONSUME],
                                    issued_at=now + 10 * 365 * 86_400).encode())
    _marker(cluster, attacker, root, [prod, cons])
    for node in (prod, cons):
        held = node.crypto.trust.roots[key]
        assert held.provisioned and held.certificate is not None and held.topics is None
        assert held.not_before == held.certificate.not_before
    assert _opens(cons, prod, root, b"the root still stands")
    cons.close()
    again = cluster.start(cons.store)  # a restart replays the topics and its own trust file
    assert again.crypto.trust.roots[key].provisioned
    assert _opens(again, prod, root, b"and after a restart")


def test_a_scoped_denylister_denies_only_within_its_topics(cluster: Cluster, attacker: Attacker,
                                                          unique_root: str) -> None:
    """Attack 4: ``denylist`` rights ignored the signer's topics, so a one-topic denylister could deny any
    key, the root included. Now: global denials and denials outside its topics change nothing; a denial
    within them removes that topic only, and producers step only roots in scope. Guards protocol/trustfold.py
    ``_require_within`` and the provisioned-root rule, and ``on_trust_records`` (scope -> roots)."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    cons = cluster.node("cons", "consumer", crypto=isolated(root))
    assert _opens(cons, prod, root, b"before")
    epoch = prod.crypto.epoch
    admin, chain = _admin(cluster, [Usage.DENYLIST], topics=["elsewhere"])
    victim = cons.crypto.public_key
    attacker.send(f"{root}-denylist",
                  make_trust_update("deny", admin, chain, victim).encode(),
                  make_trust_update("deny", admin, chain, cluster.root.public_key).encode(),
                  make_trust_update("deny", admin, chain, victim, topics=[root]).encode(),
                  make_trust_update("deny", admin, chain, victim, topics=["elsewhere"]).encode())
    for node in (prod, cons):
        wait_until(lambda node=node: victim in node.crypto.trust.state.scoped, 30, "the in-scope denial")
    _marker(cluster, attacker, root, [prod, cons])
    for node in (prod, cons):
        assert not node.crypto.trust.denied
        assert node.crypto.trust.state.scoped[victim] == (("elsewhere",),)
    assert prod.crypto.epoch == epoch, "a denial scoped to another topic stepped this root"
    assert _opens(cons, prod, root, b"still readable on its own topic")


def test_self_denials_of_keys_without_a_chain_change_nothing(cluster: Cluster, attacker: Attacker,
                                                            unique_root: str) -> None:
    """Attack 5: any throw-away key could deny itself: every entry grew every node's denylist, rewrote
    its .config and stepped every producer. Guards protocol/trust.py ``_admit`` (a self-denial needs a
    chain to a known root) and credentials.py (entries go to <node>.trust, written at most once a second)."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    config_mtime = os.stat(prod.store.path).st_mtime_ns
    epoch = prod.crypto.epoch
    floods = []
    for _ in range(300):
        key = SigningIdentity.generate()
        floods.append(make_trust_update("deny", key, None, key.public_key).encode())
        made_up = Chain.of(issue_certificate(key, key.public_key, usages=["consume"]))
        floods.append(make_trust_update("deny", key, made_up, key.public_key).encode())
    attacker.send(f"{root}-denylist", *floods)
    _marker(cluster, attacker, root, [prod])
    trust = prod.crypto.trust
    assert not trust.denied and trust.entry_count == 1, "only the marker was kept"
    assert prod.crypto.epoch == epoch
    assert os.stat(prod.store.path).st_mtime_ns == config_mtime, "the .config was rewritten"


def test_a_node_never_forgets_a_denial_it_has_persisted(cluster: Cluster, attacker: Attacker,
                                                       unique_root: str) -> None:
    """A denial read once survives the topic losing it (retention, a compaction gone wrong): the node keeps
    it in <node>.trust and folds it again at start. Guards credentials.py ``persist_trust`` /
    ``_load_trust_entries``."""
    root = unique_root
    prod, _, _ = serving_producer(cluster, attacker, root)
    cons = cluster.node("cons", "consumer", crypto=isolated(root))
    admin, chain = _admin(cluster, [Usage.DENYLIST])
    attacker.send(f"{root}-denylist", make_trust_update("deny", admin, chain, cons.crypto.public_key).encode())
    wait_until(lambda: prod.crypto.trust.is_denied(cons.crypto.public_key), 30, "the denial applied")
    prod.close()
    prod.store.store_value("denylist_topic", f"{root}-empty-denylist", "crypto")  # the old topic is gone
    again = cluster.start(prod.store)
    assert again.crypto.trust.is_denied(cons.crypto.public_key)
    blob = again.crypto.getValueSerializer().serialize(root, None, SECRET)
    assert not cons.crypto.waiter.open(root, Role.VALUE, blob, wait=3.0, retrier=None).isCleartext()
