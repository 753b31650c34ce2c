"""Certificates, chains of trust and the allow/deny lists that anchor them.

A certificate binds a subject's Ed25519 key to constraints (topics, usages, path
length, validity) under its issuer's signature. A chain walks from a key on the
allowlist down to a node's own key, and every step may only narrow what its
parent allowed: a chain that tries to widen anything is rejected, never silently
intersected, so a mis-issued certificate is noticed instead of half-working.

The byte-level layout and the validation algorithm are specified in
docs/PROTOCOL.md (section 5); tests/vectors/ holds the conformance cases.
"""

from __future__ import annotations

import functools
import hmac
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import wire
from .errors import ChainError, FormatError, SignatureError, UnsupportedVersionError
from .identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningIdentity, fingerprint, verify

__all__ = [
    "Usage",
    "Certificate",
    "Chain",
    "ValidatedChain",
    "TrustStore",
    "TrustUpdate",
    "issue_certificate",
    "self_signed_root",
    "make_trust_update",
    "CERT_CONTEXT",
    "FORMAT_VERSION",
    "MAX_CHAIN_LENGTH",
    "MAX_CHAIN_SIZE",
    "MAX_CERTIFICATE_SIZE",
    "MAX_TRUST_UPDATE_SIZE",
    "MAX_TOPIC_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_USAGES",
    "MAX_USAGE_LENGTH",
    "MAX_PATHLEN",
    "DEFAULT_SKEW",
    "KIND_ALLOW",
    "KIND_DENY",
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
    "REASONS",
]

#: Signature context of a certificate body (domain separation, see identity.py).
CERT_CONTEXT = b"kr-cert-v1"
#: The only version of Certificate, Chain and TrustUpdate this code reads or writes.
FORMAT_VERSION = 1
MAX_CHAIN_LENGTH = 8
MAX_CHAIN_SIZE = 64 * 1024
#: A certificate never needs more room than the chain that carries it.
MAX_CERTIFICATE_SIZE = MAX_CHAIN_SIZE
#: An entry and a chain, plus framing.
MAX_TRUST_UPDATE_SIZE = MAX_CERTIFICATE_SIZE + MAX_CHAIN_SIZE + 64
#: Kafka's own limit on a topic name.
MAX_TOPIC_LENGTH = 249
MAX_REGEX_LENGTH = 256
MAX_USAGES = 32
MAX_USAGE_LENGTH = 64
MAX_PATHLEN = 255
#: Seconds of clock difference tolerated on not_before and expiry.
DEFAULT_SKEW = 300

KIND_ALLOW = "allow"
KIND_DENY = "deny"

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
REASONS: frozenset[str] = frozenset({
    REASON_UNKNOWN_ROOT, REASON_BROKEN_LINK, REASON_BAD_SIGNATURE, REASON_EXPIRED, REASON_NOT_YET_VALID,
    REASON_WIDENED_TOPICS, REASON_WIDENED_USAGES, REASON_PATHLEN_EXCEEDED, REASON_DENYLISTED,
    REASON_TOO_LONG, REASON_EMPTY_CHAIN, REASON_USAGE_NOT_ALLOWED, REASON_TOPIC_NOT_ALLOWED,
    REASON_SIGNER_MISMATCH, REASON_MISSING_CHAIN,
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


# --------------------------------------------------------------------------- topics


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    """Compiled once per distinct pattern: chains are validated over and over."""
    return re.compile(pattern)


def _check_topic(value: Any, what: str) -> str:
    topic = wire.expect(value, str, what)
    if topic.startswith("^"):
        if len(topic) > MAX_REGEX_LENGTH:
            raise FormatError(f"{what}: regex longer than {MAX_REGEX_LENGTH} characters")
        try:
            _compile(topic)
        except (re.error, OverflowError, RecursionError, ValueError):
            raise FormatError(f"{what}: regex does not compile") from None
    elif not 1 <= len(topic) <= MAX_TOPIC_LENGTH:
        raise FormatError(f"{what}: topic must be 1..{MAX_TOPIC_LENGTH} characters")
    return topic


def _topic_allowed(topics: tuple[str, ...] | None, root_topic: str) -> bool:
    """None allows every topic; a literal must be equal; a "^" entry must fullmatch."""
    if topics is None:
        return True
    for entry in topics:
        if entry.startswith("^"):
            if _compile(entry).fullmatch(root_topic) is not None:
                return True
        elif entry == root_topic:
            return True
    return False


def _topics_narrow(parent: tuple[str, ...] | None, child: tuple[str, ...] | None) -> bool:
    """Is every topic the child claims already allowed by the parent?

    A child regex can only be proven narrower by being the very same string (or
    the parent allowing everything): deciding regex inclusion in general is not
    something to attempt in a trust check.
    """
    if parent is None:
        return True
    if child is None:
        return False
    for entry in child:
        if entry.startswith("^"):
            if entry not in parent:
                return False
        elif not _topic_allowed(parent, entry):
            return False
    return True


# --------------------------------------------------------------------------- certificates


def _unwrap_version(obj: Any, what: str) -> list[Any]:
    """The outer array, after checking its leading version (before its length, so v2 reads as v2)."""
    items = wire.expect_list(obj, what, min_size=1)
    version = wire.expect_int(items[0], f"{what}.version")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(f"{what}: version {version} is not supported")
    return items


def _parse_body(body: bytes) -> dict[str, Any]:
    items = wire.expect_list(wire.unpack(body, max_size=MAX_CERTIFICATE_SIZE), "certificate body",
                             size=len(_BODY_FIELDS))
    subject, issuer, not_before, expiry, topics, usages, pathlen, extra = items
    out: dict[str, Any] = {
        "subject": wire.expect_bytes(subject, "subject", size=PUBLIC_KEY_SIZE),
        "issuer": wire.expect_bytes(issuer, "issuer", size=PUBLIC_KEY_SIZE),
        "not_before": wire.expect_int(not_before, "not_before", lo=0),
        "expiry": wire.expect_int(expiry, "expiry", lo=0),
    }
    if topics is None:
        out["topics"] = None
    else:
        out["topics"] = tuple(
            _check_topic(t, f"topics[{i}]") for i, t in enumerate(wire.expect_list(topics, "topics"))
        )
    usage_list = wire.expect_list(usages, "usages")
    if len(usage_list) > MAX_USAGES:
        raise FormatError(f"usages: more than {MAX_USAGES} items")
    for i, usage in enumerate(usage_list):
        wire.expect(usage, str, f"usages[{i}]")
        if not 1 <= len(usage) <= MAX_USAGE_LENGTH:
            raise FormatError(f"usages[{i}]: must be 1..{MAX_USAGE_LENGTH} characters")
    out["usages"] = frozenset(usage_list)
    if len(out["usages"]) != len(usage_list):
        raise FormatError("usages: duplicate entry")
    out["pathlen"] = None if pathlen is None else wire.expect_int(pathlen, "pathlen", lo=0, hi=MAX_PATHLEN)
    extra_map = wire.expect(extra, dict, "extra")
    for key in extra_map:
        wire.expect(key, str, "extra key")
    out["extra"] = MappingProxyType(extra_map)
    return out


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
        """Raise SignatureError unless the issuer's key signed this body."""
        verify(self.issuer, CERT_CONTEXT, self.body, self.signature)

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


@dataclass(frozen=True)
class ValidatedChain:
    """What a chain proved at validation time: whose key, under which root, allowed to do what."""

    subject: bytes
    root: bytes
    topics: tuple[str, ...] | None
    usages: frozenset[str]
    expiry: int

    def allows(self, usage: str, root_topic: str) -> bool:
        return usage in self.usages and _topic_allowed(self.topics, root_topic)

    def require(self, usage: str, root_topic: str) -> None:
        if usage not in self.usages:
            raise ChainError(REASON_USAGE_NOT_ALLOWED, usage)
        if not _topic_allowed(self.topics, root_topic):
            raise ChainError(REASON_TOPIC_NOT_ALLOWED, root_topic)

    def __repr__(self) -> str:
        topics = "*" if self.topics is None else ",".join(self.topics)
        return (f"ValidatedChain(subject={_fp(self.subject)}, root={_fp(self.root)}, "
                f"usages={','.join(sorted(self.usages))}, topics={topics}, expiry={self.expiry})")


def _check_time(cert: Certificate, now: float, skew: int, position: str) -> None:
    if cert.expiry != 0 and now > cert.expiry + skew:
        raise ChainError(REASON_EXPIRED, position)
    if cert.not_before > now + skew:
        raise ChainError(REASON_NOT_YET_VALID, position)


def _validate(chain: Chain, roots: Mapping[bytes, Certificate], denied: frozenset[bytes], now: float,
              skew: int) -> ValidatedChain:
    """The algorithm of docs/PROTOCOL.md section 5, in its documented order of checks."""
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
    for i, cert in enumerate(certs):
        for key in (cert.issuer, cert.subject):
            if key in denied:
                raise ChainError(REASON_DENYLISTED, f"certificate {i} key {_fp(key)}")
    for i, cert in enumerate(certs):
        try:
            cert.verify_signature()
        except SignatureError as exc:
            raise ChainError(REASON_BAD_SIGNATURE, f"certificate {i}") from exc
    _check_time(root, now, skew, "root")
    for i, cert in enumerate(certs):
        _check_time(cert, now, skew, f"certificate {i}")
    parent = root
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
    expiries = [c.expiry for c in (root, *certs) if c.expiry != 0]
    leaf = chain.leaf
    return ValidatedChain(subject=leaf.subject, root=root.subject, topics=leaf.topics, usages=leaf.usages,
                          expiry=min(expiries) if expiries else 0)


# --------------------------------------------------------------------------- trust updates


@dataclass(frozen=True)
class TrustUpdate:
    """A signed edit of the allowlist ("allow": entry becomes a root) or denylist ("deny": entry.subject)."""

    kind: str
    entry: Certificate
    chain: Chain | None = None

    def __post_init__(self) -> None:
        if self.kind not in (KIND_ALLOW, KIND_DENY):
            raise FormatError("trust update kind: must be 'allow' or 'deny'")

    def encode(self) -> bytes:
        return wire.pack([FORMAT_VERSION, self.kind, self.entry.encode(),
                          None if self.chain is None else self.chain.encode()])

    @classmethod
    def decode(cls, data: bytes) -> TrustUpdate:
        items = _unwrap_version(wire.unpack(data, max_size=MAX_TRUST_UPDATE_SIZE), "trust update")
        wire.expect_list(items, "trust update", size=4)
        kind = wire.expect(items[1], str, "trust update kind")
        if kind not in (KIND_ALLOW, KIND_DENY):
            raise FormatError("trust update kind: must be 'allow' or 'deny'")
        entry = Certificate.decode(wire.expect_bytes(items[2], "trust update entry"))
        chain = None if items[3] is None else Chain.decode(wire.expect_bytes(items[3], "trust update chain"))
        return cls(kind, entry, chain)


def make_trust_update(
    kind: str,
    signer: SigningIdentity,
    signer_chain: Chain | None,
    subject: bytes,
    *,
    cert_usages: Iterable[str] | None = None,
    topics: Iterable[str] | None = None,
    pathlen: int | None = None,
    expiry: int = 0,
    not_before: int | None = None,
) -> TrustUpdate:
    """Sign an allow/deny entry for ``subject``.

    ``cert_usages`` defaults to every usage for "allow" (a new root) and to none
    for "deny" (where the entry's constraints mean nothing). A key denylisting
    itself passes ``signer_chain=None``.
    """
    if kind not in (KIND_ALLOW, KIND_DENY):
        raise FormatError("trust update kind: must be 'allow' or 'deny'")
    if cert_usages is None:
        cert_usages = Usage.ALL if kind == KIND_ALLOW else ()
    entry = issue_certificate(signer, subject, usages=cert_usages, topics=topics, pathlen=pathlen,
                              expiry=expiry, not_before=not_before)
    return TrustUpdate(kind, entry, signer_chain)


# --------------------------------------------------------------------------- the store


class TrustStore:
    """allowlist (root certificates keyed by subject key) + denylist (set of keys). Thread-safe (a lock).

    ``skew`` is the clock difference in seconds tolerated on every not_before and expiry.
    """

    def __init__(self, roots: Iterable[Certificate] = (), denied: Iterable[bytes] = (), *,
                 skew: int = DEFAULT_SKEW) -> None:
        if isinstance(skew, bool) or not isinstance(skew, int) or skew < 0:
            raise ValueError("skew must be a non-negative int")
        self._lock = threading.RLock()
        self._skew = skew
        self._roots: dict[bytes, Certificate] = {}
        self._denied: set[bytes] = set()
        for cert in roots:
            self.add_root(cert)
        for key in denied:
            self.deny(key)

    @property
    def skew(self) -> int:
        return self._skew

    @property
    def roots(self) -> dict[bytes, Certificate]:
        with self._lock:
            return dict(self._roots)

    @property
    def denied(self) -> frozenset[bytes]:
        with self._lock:
            return frozenset(self._denied)

    def add_root(self, cert: Certificate) -> None:
        """Trust a provisioned root as is (no check: whoever calls this vouches for it)."""
        if not isinstance(cert, Certificate):
            raise TypeError("add_root takes a Certificate")
        with self._lock:
            self._roots[cert.subject] = cert

    def remove_root(self, key: bytes) -> None:
        with self._lock:
            self._roots.pop(bytes(key), None)

    def deny(self, key: bytes) -> None:
        wire.expect_bytes(key, "denied key", size=PUBLIC_KEY_SIZE)
        with self._lock:
            self._denied.add(bytes(key))

    def is_denied(self, key: bytes) -> bool:
        with self._lock:
            return bytes(key) in self._denied

    def validate(self, chain: Chain, *, now: float | None = None) -> ValidatedChain:
        """Check ``chain`` against this store; ChainError with a stable ``reason`` on failure."""
        if not isinstance(chain, Chain):
            raise TypeError("validate takes a Chain")
        with self._lock:
            roots = dict(self._roots)
            denied = frozenset(self._denied)
        return _validate(chain, roots, denied, time.time() if now is None else now, self._skew)

    def apply(self, update: TrustUpdate, *, now: float | None = None) -> bool:
        """Authenticate and apply ``update``; True if the store changed. Invalid: raise, store unchanged.

        The lock is held throughout so a concurrent deny cannot slip between the
        check of an allow update and its application.
        """
        if not isinstance(update, TrustUpdate):
            raise TypeError("apply takes a TrustUpdate")
        entry = update.entry
        with self._lock:
            if update.kind == KIND_DENY and entry.self_signed:
                entry.verify_signature()  # a key may always denylist itself
            else:
                needed = Usage.DENYLIST if update.kind == KIND_DENY else Usage.ALLOWLIST
                if update.chain is None:
                    raise ChainError(REASON_MISSING_CHAIN, f"{update.kind} update needs the signer's chain")
                signer = self.validate(update.chain, now=now)
                if needed not in signer.usages:
                    raise ChainError(REASON_USAGE_NOT_ALLOWED, needed)
                if not hmac.compare_digest(signer.subject, entry.issuer):
                    raise ChainError(REASON_SIGNER_MISMATCH, "entry not issued by the chain's key")
                entry.verify_signature()
                if update.kind == KIND_ALLOW:
                    # a new root can never be wider than the key that vouches for it
                    if not _topics_narrow(signer.topics, entry.topics):
                        raise ChainError(REASON_WIDENED_TOPICS, "allowlisted root is wider than its signer")
                    if not entry.usages <= signer.usages:
                        raise ChainError(REASON_WIDENED_USAGES, "allowlisted root is wider than its signer")
            if update.kind == KIND_DENY:
                if entry.subject in self._denied:
                    return False
                self._denied.add(entry.subject)
                return True
            if entry.subject in self._denied:
                raise ChainError(REASON_DENYLISTED, f"key {_fp(entry.subject)} cannot be allowed again")
            current = self._roots.get(entry.subject)
            if current is not None and (current == entry or entry.not_before < current.not_before):
                return False  # a replay, or an older entry that must not roll a root back
            self._roots[entry.subject] = entry
            return True

    def __repr__(self) -> str:
        with self._lock:
            return f"TrustStore({len(self._roots)} roots, {len(self._denied)} denied, skew={self._skew})"
