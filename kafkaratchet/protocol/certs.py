"""Certificates, chains of trust and the allow/deny lists that anchor them.

A certificate binds a subject's Ed25519 key to constraints (topics, usages, path
length, validity) under its issuer's signature. A chain walks from a key on the
allowlist down to a node's own key, and every step may only narrow what its
parent allowed: a chain that tries to widen anything is rejected, never silently
intersected, so a mis-issued certificate is noticed instead of half-working.

Topic patterns are only ever compiled from certificates whose signatures
verified inside a chain that starts at a trusted root: decoding checks their
length and number, never their syntax, so hostile bytes cost no regex work.
Trust updates (the allow/deny entries that edit the trust lists) live in
:mod:`kafkaratchet.protocol.trust`.

The byte-level layout and the validation algorithm are specified in
docs/PROTOCOL.md (section 5); tests/vectors/ holds the conformance cases.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from kafkaratchet.errors import ChainError, FormatError, UnsupportedVersionError
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningIdentity, fingerprint, verify
from kafkaratchet.protocol.topics import (
    MAX_PATTERNS,
    MAX_REGEX_LENGTH,
    MAX_TOPIC_LENGTH,
    MAX_TOPICS,
    _topic_allowed,
    compile_patterns,
    parse_topics,
    topic_allowed,
    topics_narrow,
)

__all__ = [
    "Usage",
    "Certificate",
    "Chain",
    "issue_certificate",
    "self_signed_root",
    "topics_narrow",
    "topic_allowed",
    "parse_topics",
    "parse_usages",
    "parse_extra",
    "compile_patterns",
    "CERT_CONTEXT",
    "FORMAT_VERSION",
    "MAX_CHAIN_LENGTH",
    "MAX_CHAIN_SIZE",
    "MAX_CERTIFICATE_SIZE",
    "MAX_TOPIC_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_TOPICS",
    "MAX_PATTERNS",
    "MAX_USAGES",
    "MAX_USAGE_LENGTH",
    "MAX_PATHLEN",
    "DEFAULT_SKEW",
    "REASON_UNKNOWN_ROOT",
    "REASON_BROKEN_LINK",
    "REASON_BAD_SIGNATURE",
    "REASON_EXPIRED",
    "REASON_NOT_YET_VALID",
    "REASON_WIDENED_TOPICS",
    "REASON_WIDENED_USAGES",
    "REASON_PATHLEN_EXCEEDED",
    "REASON_DENYLISTED",
    "REASON_TOO_LONG",
    "REASON_EMPTY_CHAIN",
    "REASON_USAGE_NOT_ALLOWED",
    "REASON_TOPIC_NOT_ALLOWED",
    "REASON_SIGNER_MISMATCH",
    "REASON_MISSING_CHAIN",
    "REASON_ROOT_EXISTS",
    "REASON_PROVISIONED_ROOT",
    "REASON_WIDENED_VALIDITY",
    "REASON_WIDENED_PATHLEN",
    "REASONS",
]

#: Signature context of a certificate body (domain separation, see identity.py).
CERT_CONTEXT = b"kr-cert-v1"
#: The only version of Certificate and Chain this code reads or writes.
FORMAT_VERSION = 1
MAX_CHAIN_LENGTH = 8
MAX_CHAIN_SIZE = 64 * 1024
#: A certificate never needs more room than the chain that carries it.
MAX_CERTIFICATE_SIZE = MAX_CHAIN_SIZE
MAX_USAGES = 32
MAX_USAGE_LENGTH = 64
MAX_PATHLEN = 255
#: Seconds of clock difference tolerated on not_before and expiry.
DEFAULT_SKEW = 300

REASON_UNKNOWN_ROOT = "unknown-root"
REASON_BROKEN_LINK = "broken-link"
REASON_BAD_SIGNATURE = "bad-signature"
REASON_EXPIRED = "expired"
REASON_NOT_YET_VALID = "not-yet-valid"
REASON_WIDENED_TOPICS = "widened-topics"
REASON_WIDENED_USAGES = "widened-usages"
REASON_PATHLEN_EXCEEDED = "pathlen-exceeded"
REASON_DENYLISTED = "denylisted"
REASON_TOO_LONG = "too-long"
REASON_EMPTY_CHAIN = "empty-chain"
REASON_USAGE_NOT_ALLOWED = "usage-not-allowed"
REASON_TOPIC_NOT_ALLOWED = "topic-not-allowed"
REASON_SIGNER_MISMATCH = "signer-mismatch"
REASON_MISSING_CHAIN = "missing-chain"
REASON_ROOT_EXISTS = "root-exists"
REASON_PROVISIONED_ROOT = "provisioned-root"
REASON_WIDENED_VALIDITY = "widened-validity"
REASON_WIDENED_PATHLEN = "widened-pathlen"
REASONS: frozenset[str] = frozenset({
    REASON_UNKNOWN_ROOT, REASON_BROKEN_LINK, REASON_BAD_SIGNATURE, REASON_EXPIRED, REASON_NOT_YET_VALID,
    REASON_WIDENED_TOPICS, REASON_WIDENED_USAGES, REASON_PATHLEN_EXCEEDED, REASON_DENYLISTED,
    REASON_TOO_LONG, REASON_EMPTY_CHAIN, REASON_USAGE_NOT_ALLOWED, REASON_TOPIC_NOT_ALLOWED,
    REASON_SIGNER_MISMATCH, REASON_MISSING_CHAIN, REASON_ROOT_EXISTS, REASON_PROVISIONED_ROOT,
    REASON_WIDENED_VALIDITY, REASON_WIDENED_PATHLEN,
})

_BODY_FIELDS = ("subject", "issuer", "not_before", "expiry", "topics", "usages", "pathlen", "extra")


class Usage:
    """What a key may do; unknown strings are kept (forward compatibility) and obey the same subset rule."""

    PRODUCE = "produce"  # hand out data keys
    CONSUME = "consume"  # ask a producer for keys directly
    SUBSCRIBE = "subscribe"  # ask for keys through a controller
    CONTROLLER = "controller"  # re-sign subscribers' requests
    CHAIN_ISSUE = "chain-issue"  # issue chains to other keys
    ALLOWLIST = "allowlist"  # add roots of trust
    DENYLIST = "denylist"  # denylist keys
    ALL: frozenset[str] = frozenset(
        {PRODUCE, CONSUME, SUBSCRIBE, CONTROLLER, CHAIN_ISSUE, ALLOWLIST, DENYLIST}
    )


# --------------------------------------------------------------------------- certificates


def _unwrap_version(obj: Any, what: str) -> list[Any]:
    """The outer array, after checking its leading version (before its length, so v2 reads as v2)."""
    items = wire.expect_list(obj, what, min_size=1)
    version = wire.expect_int(items[0], f"{what}.version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(f"{what}: version {version} is not supported")
    return items


def _parse_body(body: bytes) -> dict[str, Any]:
    items = wire.expect_list(wire.unpack(body, max_size=MAX_CERTIFICATE_SIZE, max_items=MAX_TOPICS),
                             "certificate body", size=len(_BODY_FIELDS))
    subject, issuer, not_before, expiry, topics, usages, pathlen, extra = items
    out: dict[str, Any] = {
        "subject": wire.expect_bytes(subject, "subject", size=PUBLIC_KEY_SIZE),
        "issuer": wire.expect_bytes(issuer, "issuer", size=PUBLIC_KEY_SIZE),
        "not_before": wire.expect_int(not_before, "not_before", lo=0),
        "expiry": wire.expect_int(expiry, "expiry", lo=0),
    }
    out["topics"] = parse_topics(topics)
    out["usages"] = parse_usages(usages)
    out["pathlen"] = None if pathlen is None else wire.expect_int(pathlen, "pathlen", lo=0, hi=MAX_PATHLEN)
    out["extra"] = parse_extra(extra)
    return out


def parse_usages(value: Any) -> frozenset[str]:
    """A ``usages`` field: 0..32 distinct strings of 1..64 characters."""
    usage_list = wire.expect_list(value, "usages")
    if len(usage_list) > MAX_USAGES:
        raise FormatError(f"usages: more than {MAX_USAGES} items")
    for i, usage in enumerate(usage_list):
        wire.expect(usage, str, f"usages[{i}]")
        if not 1 <= len(usage) <= MAX_USAGE_LENGTH:
            raise FormatError(f"usages[{i}]: must be 1..{MAX_USAGE_LENGTH} characters")
    usages = frozenset(usage_list)
    if len(usages) != len(usage_list):
        raise FormatError("usages: duplicate entry")
    return usages


def parse_extra(value: Any) -> Mapping[str, Any]:
    """An ``extra`` field: a map with str keys, kept read-only and otherwise ignored."""
    extra_map = wire.expect(value, dict, "extra")
    for key in extra_map:
        wire.expect(key, str, "extra key")
    return MappingProxyType(extra_map)


@dataclass(frozen=True, eq=False, repr=False)
class Certificate:
    """A signed statement "issuer grants subject these constraints".

    Build one with :func:`issue_certificate` or :meth:`decode`; the fields are the
    parsed view of ``body``, and the signature covers ``body`` exactly as received.
    Equality and hashing are over (body, signature).
    """

    subject: bytes
    issuer: bytes
    not_before: int
    expiry: int
    topics: tuple[str, ...] | None
    usages: frozenset[str]
    pathlen: int | None
    extra: Mapping[str, Any]
    body: bytes
    signature: bytes

    def encode(self) -> bytes:
        return wire.pack([FORMAT_VERSION, self.body, self.signature])

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        """Parse (FormatError on anything malformed); does not check the signature."""
        items = _unwrap_version(wire.unpack(data, max_size=MAX_CERTIFICATE_SIZE), "certificate")
        wire.expect_list(items, "certificate", size=3)
        body = wire.expect_bytes(items[1], "certificate.body")
        signature = wire.expect_bytes(items[2], "certificate.signature", size=SIGNATURE_SIZE)
        return cls(**_parse_body(body), body=body, signature=signature)

    def verify_signature(self) -> None:
        """Raise SignatureError unless the issuer's key signed this body (remembered once it did)."""
        if self.__dict__.get("_verified"):
            return
        verify(self.issuer, CERT_CONTEXT, self.body, self.signature)
        object.__setattr__(self, "_verified", True)

    def allows_topic(self, root_topic: str) -> bool:
        """Only meaningful once the signature is verified: patterns of forged certificates are not run."""
        return _topic_allowed(self.topics, root_topic)

    @property
    def self_signed(self) -> bool:
        """Issuer and subject are the same key (says nothing about the signature)."""
        return hmac.compare_digest(self.subject, self.issuer)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Certificate):
            return NotImplemented
        return self.body == other.body and self.signature == other.signature

    def __hash__(self) -> int:
        return hash((self.body, self.signature))

    def __repr__(self) -> str:
        topics = "*" if self.topics is None else ",".join(self.topics)
        return (
            f"Certificate(subject={_fp(self.subject)}, issuer={_fp(self.issuer)}, "
            f"usages={','.join(sorted(self.usages))}, topics={topics}, pathlen={self.pathlen}, "
            f"not_before={self.not_before}, expiry={self.expiry})"
        )


def _fp(key: bytes) -> str:
    return fingerprint(key) if len(key) == PUBLIC_KEY_SIZE else "?"


def issue_certificate(
    issuer: SigningIdentity,
    subject: bytes,
    *,
    usages: Iterable[str],
    topics: Iterable[str] | None = None,
    pathlen: int | None = 0,
    expiry: int = 0,
    not_before: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Certificate:
    """Sign a certificate for ``subject``; the result is re-parsed, so it is always decodable.

    ``not_before`` defaults to a minute ago, so a freshly issued certificate is
    accepted by nodes whose clocks are a little behind. ``pathlen`` defaults to
    0: a leaf, which may not issue further certificates.
    """
    if not_before is None:
        not_before = max(0, int(time.time()) - 60)
    if topics is not None:
        topics = list(topics)
        compile_patterns(tuple(topics))  # we sign it: our own patterns must compile
    body = wire.pack([
        subject,
        issuer.public_key,
        not_before,
        expiry,
        None if topics is None else list(topics),
        sorted(usages),
        pathlen,
        dict(extra or {}),
    ])
    return Certificate.decode(wire.pack([FORMAT_VERSION, body, issuer.sign(CERT_CONTEXT, body)]))


def self_signed_root(
    identity: SigningIdentity,
    *,
    usages: Iterable[str] = Usage.ALL,
    topics: Iterable[str] | None = None,
    pathlen: int | None = None,
    expiry: int = 0,
    not_before: int | None = None,
) -> Certificate:
    """A root's certificate for the allowlist: its own key, its own constraints."""
    return issue_certificate(identity, identity.public_key, usages=usages, topics=topics, pathlen=pathlen,
                             expiry=expiry, not_before=not_before)


# --------------------------------------------------------------------------- chains


@dataclass(frozen=True)
class Chain:
    """Certificates from the one a root signed down to the leaf (the node's own key)."""

    certificates: tuple[Certificate, ...]

    def __post_init__(self) -> None:
        certs = tuple(self.certificates)
        if not certs:
            raise ChainError(REASON_EMPTY_CHAIN)
        if not all(isinstance(c, Certificate) for c in certs):
            raise TypeError("a Chain holds Certificate objects")
        object.__setattr__(self, "certificates", certs)

    @property
    def leaf(self) -> Certificate:
        return self.certificates[-1]

    @property
    def subject(self) -> bytes:
        return self.leaf.subject

    def encode(self) -> bytes:
        """Refuses what :meth:`decode` would refuse, so a chain we send is a chain others can read."""
        if len(self.certificates) > MAX_CHAIN_LENGTH:
            raise ChainError(REASON_TOO_LONG, f"{len(self.certificates)} certificates")
        data = wire.pack([FORMAT_VERSION, [c.encode() for c in self.certificates]])
        if len(data) > MAX_CHAIN_SIZE:
            raise FormatError(f"chain: {len(data)} bytes exceeds {MAX_CHAIN_SIZE}")
        return data

    @classmethod
    def decode(cls, data: bytes) -> Chain:
        """Parse (FormatError on anything malformed); links and signatures are checked by validate."""
        items = _unwrap_version(wire.unpack(data, max_size=MAX_CHAIN_SIZE), "chain")
        wire.expect_list(items, "chain", size=2)
        raw = wire.expect_list(items[1], "chain.certificates", min_size=1)
        if len(raw) > MAX_CHAIN_LENGTH:
            raise FormatError(f"chain.certificates: more than {MAX_CHAIN_LENGTH}")
        return cls(tuple(
            Certificate.decode(wire.expect_bytes(c, f"chain.certificates[{i}]")) for i, c in enumerate(raw)
        ))

    def extend(self, cert: Certificate) -> Chain:
        """A longer chain with ``cert`` below the current leaf (which must have issued it)."""
        if not hmac.compare_digest(cert.issuer, self.leaf.subject):
            raise ChainError(REASON_BROKEN_LINK, "certificate not issued by the current leaf")
        return Chain(self.certificates + (cert,))

    @classmethod
    def of(cls, *certs: Certificate) -> Chain:
        if not certs:
            raise ChainError(REASON_EMPTY_CHAIN)
        chain = cls((certs[0],))
        for cert in certs[1:]:
            chain = chain.extend(cert)
        return chain
