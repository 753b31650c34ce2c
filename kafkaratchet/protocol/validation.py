"""Validating a chain against the roots and denials a node holds: what the chain proves, or why not.

The algorithm of docs/PROTOCOL.md section 5 ("Validation"), in its documented order
of checks; the certificate and chain formats it reads are in :mod:`kafkaratchet.protocol.certs`,
and the trust store that feeds it roots and denials in :mod:`kafkaratchet.protocol.trust`.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafkaratchet.errors import ChainError, SignatureError
from kafkaratchet.protocol.certs import (
    MAX_CHAIN_LENGTH,
    REASON_BAD_SIGNATURE,
    REASON_BROKEN_LINK,
    REASON_DENYLISTED,
    REASON_EXPIRED,
    REASON_NOT_YET_VALID,
    REASON_PATHLEN_EXCEEDED,
    REASON_TOO_LONG,
    REASON_TOPIC_NOT_ALLOWED,
    REASON_UNKNOWN_ROOT,
    REASON_USAGE_NOT_ALLOWED,
    REASON_WIDENED_TOPICS,
    REASON_WIDENED_USAGES,
    Certificate,
    Chain,
    _fp,
)
from kafkaratchet.protocol.topics import _topic_allowed, _topics_narrow, compile_patterns

__all__ = ["ValidatedChain", "Root", "validate_chain", "chain_expiry"]


@dataclass(frozen=True)
class ValidatedChain:
    """What a chain proved at validation time: whose key, under which root, allowed to do what.

    ``excluded`` holds the topic scopes that scoped denials took away from some key of the chain
    (or of its root's lineage): a topic matching one of them is not allowed, whatever ``topics`` says.
    ``keys`` are every key the chain's rights flow through (root lineage, issuers, subject).
    """

    subject: bytes
    root: bytes
    topics: tuple[str, ...] | None
    usages: frozenset[str]
    expiry: int
    excluded: tuple[tuple[str, ...], ...] = ()
    keys: frozenset[bytes] = field(default=frozenset(), repr=False)

    def allows_topic(self, root_topic: str) -> bool:
        return _topic_allowed(self.topics, root_topic) and not any(
            _topic_allowed(scope, root_topic) for scope in self.excluded)

    def allows(self, usage: str, root_topic: str) -> bool:
        return usage in self.usages and self.allows_topic(root_topic)

    def require(self, usage: str, root_topic: str) -> None:
        if usage not in self.usages:
            raise ChainError(REASON_USAGE_NOT_ALLOWED, usage)
        if not _topic_allowed(self.topics, root_topic):
            raise ChainError(REASON_TOPIC_NOT_ALLOWED, root_topic)
        if any(_topic_allowed(scope, root_topic) for scope in self.excluded):
            raise ChainError(REASON_DENYLISTED, f"denied for {root_topic}")

    def __repr__(self) -> str:
        topics = "*" if self.topics is None else ",".join(self.topics)
        return (f"ValidatedChain(subject={_fp(self.subject)}, root={_fp(self.root)}, "
                f"usages={','.join(sorted(self.usages))}, topics={topics}, expiry={self.expiry}, "
                f"excluded={len(self.excluded)})")


@dataclass(frozen=True, eq=False)
class Root:
    """A root of trust as a node holds it: the constraints every chain under it obeys.

    ``provisioned`` roots come from the node's own config and are trusted as given; admitted
    roots come from a verified allow entry, and ``lineage`` names every key their admission
    flowed through (the allowlister's chain and root, and that root's lineage), so that
    denying any of them takes the admitted root with it.
    """

    subject: bytes
    topics: tuple[str, ...] | None
    usages: frozenset[str]
    pathlen: int | None
    not_before: int
    expiry: int
    provisioned: bool = False
    lineage: frozenset[bytes] = frozenset()
    certificate: Certificate | None = field(default=None, repr=False)

    @classmethod
    def of(cls, cert: Certificate) -> Root:
        """A provisioned root from its allowlist certificate (trusted as given: not verified)."""
        return cls(subject=cert.subject, topics=cert.topics, usages=cert.usages, pathlen=cert.pathlen,
                   not_before=cert.not_before, expiry=cert.expiry, provisioned=True, certificate=cert)

    def constraints(self) -> tuple[Any, ...]:
        return (self.topics, self.usages, self.pathlen, self.not_before, self.expiry)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Root):
            return NotImplemented
        return (self.subject, self.provisioned, self.lineage, *self.constraints()) == (
            other.subject, other.provisioned, other.lineage, *other.constraints())

    def __hash__(self) -> int:
        return hash((self.subject, self.topics, self.usages, self.pathlen, self.not_before, self.expiry))

    def __repr__(self) -> str:
        topics = "*" if self.topics is None else ",".join(self.topics)
        kind = "provisioned" if self.provisioned else "admitted"
        return (f"Root({_fp(self.subject)}, {kind}, usages={','.join(sorted(self.usages))}, topics={topics}, "
                f"pathlen={self.pathlen}, not_before={self.not_before}, expiry={self.expiry})")


def chain_expiry(chain: Chain, root: Certificate | Root | None = None) -> int:
    """When a chain stops validating: the earliest non-zero expiry of its certificates and, if given,
    of its root (0 = never)."""
    certs: Iterable[Certificate | Root] = chain.certificates if root is None else (root, *chain.certificates)
    expiries = [c.expiry for c in certs if c.expiry]
    return min(expiries) if expiries else 0


def _check_time(cert: Certificate | Root, now: float, skew: int, position: str) -> None:
    if cert.expiry != 0 and now > cert.expiry + skew:
        raise ChainError(REASON_EXPIRED, position)
    if cert.not_before > now + skew:
        raise ChainError(REASON_NOT_YET_VALID, position)


def validate_chain(chain: Chain, roots: Mapping[bytes, Root], denied: Collection[bytes], now: float,
                   skew: int) -> ValidatedChain:
    """The algorithm of docs/PROTOCOL.md section 5, in its documented order of checks.

    ``denied`` is only read (a set, for O(1) lookups); nothing here copies it.
    """
    certs = chain.certificates
    if len(certs) > MAX_CHAIN_LENGTH:
        raise ChainError(REASON_TOO_LONG, f"{len(certs)} certificates")
    root = roots.get(certs[0].issuer)
    if root is None:
        raise ChainError(REASON_UNKNOWN_ROOT, f"issuer {_fp(certs[0].issuer)}")
    for i in range(len(certs) - 1):
        if not hmac.compare_digest(certs[i + 1].issuer, certs[i].subject):
            raise ChainError(REASON_BROKEN_LINK, f"certificate {i + 1}")
    if root.subject in denied:
        raise ChainError(REASON_DENYLISTED, f"root {_fp(root.subject)}")
    for key in root.lineage:
        if key in denied:
            raise ChainError(REASON_DENYLISTED, f"root {_fp(root.subject)} was admitted through {_fp(key)}")
    for i, cert in enumerate(certs):
        for key in (cert.issuer, cert.subject):
            if key in denied:
                raise ChainError(REASON_DENYLISTED, f"certificate {i} key {_fp(key)}")
    for i, cert in enumerate(certs):
        try:
            cert.verify_signature()
        except SignatureError as exc:
            raise ChainError(REASON_BAD_SIGNATURE, f"certificate {i}") from exc
    # every signature is good: only now may this chain's patterns be compiled (and cached)
    compile_patterns(root.topics)
    for cert in certs:
        compile_patterns(cert.topics)
    _check_time(root, now, skew, "root")
    for i, cert in enumerate(certs):
        _check_time(cert, now, skew, f"certificate {i}")
    parent: Certificate | Root = root
    remaining = root.pathlen
    for i, cert in enumerate(certs):
        if not _topics_narrow(parent.topics, cert.topics):
            raise ChainError(REASON_WIDENED_TOPICS, f"certificate {i}")
        if not cert.usages <= parent.usages:
            raise ChainError(REASON_WIDENED_USAGES, f"certificate {i}")
        if remaining is not None:
            if remaining < 1:
                raise ChainError(REASON_PATHLEN_EXCEEDED, f"certificate {i}")
            remaining -= 1
        if cert.pathlen is not None:
            remaining = cert.pathlen if remaining is None else min(remaining, cert.pathlen)
        parent = cert
    expiries = [root.expiry] if root.expiry != 0 else []
    expiries += [c.expiry for c in certs if c.expiry != 0]
    leaf = chain.leaf
    keys = {root.subject, *root.lineage}
    for cert in certs:
        keys.update((cert.issuer, cert.subject))
    return ValidatedChain(subject=leaf.subject, root=root.subject, topics=leaf.topics, usages=leaf.usages,
                          expiry=min(expiries) if expiries else 0, keys=frozenset(keys))
