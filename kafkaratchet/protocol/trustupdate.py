"""Trust updates v2: the signed structure (docs/PROTOCOL.md section 5, "Trust updates (v2)").

A trust update is its own structure, under its own signature context, with
everything that gives it meaning inside the signed bytes: the kind, the subject,
the scope and the issue time. Decoding checks the signature over the raw body
before the signer's chain is decoded, and compiles no topic pattern. What an
entry does to a node's trust is :mod:`kafkaratchet.protocol.trustfold`'s business.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import nacl.bindings as sodium

from kafkaratchet.errors import FormatError, UnsupportedVersionError
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    MAX_CHAIN_SIZE,
    MAX_PATHLEN,
    MAX_TOPICS,
    Chain,
    Usage,
    parse_extra,
    parse_topics,
    parse_usages,
)
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningIdentity, fingerprint, verify

__all__ = [
    "TRUST_CONTEXT", "VERSION", "LEGACY_VERSION", "KIND_ALLOW", "KIND_DENY", "MAX_BODY_SIZE", "MAX_UPDATE_SIZE",
    "LegacyTrustUpdateError", "TrustUpdate", "Scope", "make_trust_update", "entry_digest",
]

#: Signature context of a trust update body (no other structure is signed under it).
TRUST_CONTEXT = b"kr-trust-v2"
VERSION = 2
LEGACY_VERSION = 1
KIND_ALLOW = "allow"
KIND_DENY = "deny"
#: A body (a scope of up to 256 topics) and the signer's chain, plus framing.
MAX_BODY_SIZE = 64 * 1024
MAX_UPDATE_SIZE = MAX_BODY_SIZE + MAX_CHAIN_SIZE + 128
_BODY_FIELDS = 10
_DIGEST_PERSON = b"kr-trust-entry\x00\x00"
_KINDS = (KIND_ALLOW, KIND_DENY)


class LegacyTrustUpdateError(UnsupportedVersionError):
    """A version 1 trust update: its kind and chain sat outside any signature, so it is never applied."""


Scope = tuple[str, ...]


# --------------------------------------------------------------------------- the signed structure


@dataclass(frozen=True, eq=False)
class TrustUpdate:
    """One signed allow or deny entry, parsed; ``raw`` is the record exactly as received.

    For a deny, ``topics`` is the scope (None: every topic) and the root fields are unused
    (``usages`` empty, ``not_before`` = ``expiry`` = 0, ``pathlen`` None). For an allow they
    are the admitted root's constraints. ``chain`` is the signer's chain (None only for a root
    key speaking for itself).
    """

    kind: str
    subject: bytes
    signer: bytes
    issued_at: int
    topics: Scope | None
    usages: frozenset[str]
    not_before: int
    expiry: int
    pathlen: int | None
    extra: Mapping[str, Any]
    body: bytes
    signature: bytes
    chain: Chain | None
    raw: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    @property
    def self_signed(self) -> bool:
        return hmac.compare_digest(self.subject, self.signer)

    @property
    def order(self) -> tuple[int, bytes]:
        """Where this entry sits in the fold: by signed issue time, ties by digest."""
        return (self.issued_at, self.digest)

    def encode(self) -> bytes:
        return self.raw

    def verify_signature(self) -> None:
        """SignatureError unless ``signer`` signed ``body`` under the trust-update context."""
        verify(self.signer, TRUST_CONTEXT, self.body, self.signature)

    @classmethod
    def decode(cls, data: bytes, *, digest: bytes | None = None) -> TrustUpdate:
        """Parse and check the signature; FormatError, LegacyTrustUpdateError or SignatureError.

        ``digest`` is :func:`entry_digest` of ``data`` when the caller already computed it.

        Work before the signature check is bounded msgpack decoding of the body: the signer's
        chain is decoded only once the signature verified, and no topic pattern is compiled.
        """
        outer = wire.expect_list(wire.unpack(data, max_size=MAX_UPDATE_SIZE), "trust update", min_size=1)
        version = wire.expect_int(outer[0], "trust update version")
        if version == LEGACY_VERSION:
            raise LegacyTrustUpdateError("a version 1 trust update (no longer accepted: re-publish it as v2)")
        if version != VERSION:
            raise UnsupportedVersionError(f"trust update version {version} is not supported")
        wire.expect_list(outer, "trust update", size=4)
        body = wire.expect_bytes(outer[1], "trust update body", max_size=MAX_BODY_SIZE)
        signature = wire.expect_bytes(outer[2], "trust update signature", size=SIGNATURE_SIZE)
        raw_chain = None if outer[3] is None else wire.expect_bytes(outer[3], "trust update chain",
                                                                     max_size=MAX_CHAIN_SIZE)
        fields = _parse_body(body)
        verify(fields["signer"], TRUST_CONTEXT, body, signature)
        chain = None if raw_chain is None else Chain.decode(raw_chain)
        raw = bytes(data)
        return cls(**fields, body=body, signature=signature, chain=chain, raw=raw,
                   digest=entry_digest(raw) if digest is None else digest)

    def __repr__(self) -> str:
        scope = "*" if self.topics is None else ",".join(self.topics)
        return (f"TrustUpdate({self.kind} {_fp(self.subject)} by {_fp(self.signer)}, topics={scope}, "
                f"issued_at={self.issued_at})")


def _fp(key: bytes) -> str:
    return fingerprint(key) if len(key) == PUBLIC_KEY_SIZE else "?"


def entry_digest(raw: bytes) -> bytes:
    """An entry's identity (BLAKE2b-256 of the record as received): a replay is known before it is decoded."""
    return sodium.crypto_generichash_blake2b_salt_personal(bytes(raw), digest_size=32, person=_DIGEST_PERSON)


def _parse_body(body: bytes) -> dict[str, Any]:
    items = wire.expect_list(wire.unpack(body, max_size=MAX_BODY_SIZE, max_items=MAX_TOPICS), "trust update body",
                             size=_BODY_FIELDS)
    kind, subject, signer, issued_at, topics, usages, not_before, expiry, pathlen, extra = items
    kind = wire.expect(kind, str, "kind")
    if kind not in _KINDS:
        raise FormatError("trust update kind: must be 'allow' or 'deny'")
    usage_set = parse_usages(usages)
    out: dict[str, Any] = {
        "kind": kind,
        "subject": wire.expect_bytes(subject, "subject", size=PUBLIC_KEY_SIZE),
        "signer": wire.expect_bytes(signer, "signer", size=PUBLIC_KEY_SIZE),
        "issued_at": wire.expect_int(issued_at, "issued_at", lo=0, hi=1 << 62),
        "topics": parse_topics(topics),
        "usages": usage_set,
        "not_before": wire.expect_int(not_before, "not_before", lo=0, hi=1 << 62),
        "expiry": wire.expect_int(expiry, "expiry", lo=0, hi=1 << 62),
        "pathlen": None if pathlen is None else wire.expect_int(pathlen, "pathlen", lo=0, hi=MAX_PATHLEN),
    }
    out["extra"] = parse_extra(extra)
    if kind == KIND_DENY and (usage_set or out["not_before"] or out["expiry"] or out["pathlen"] is not None):
        raise FormatError("a deny entry carries no root constraints (usages [], not_before 0, expiry 0, "
                          "pathlen nil)")
    return out


def make_trust_update(
    kind: str,
    signer: SigningIdentity,
    signer_chain: Chain | None,
    subject: bytes,
    *,
    topics: Iterable[str] | None = None,
    usages: Iterable[str] | None = None,
    pathlen: int | None = None,
    expiry: int = 0,
    not_before: int | None = None,
    issued_at: int | None = None,
) -> TrustUpdate:
    """Sign an allow or deny entry for ``subject``; the result is re-parsed, so it always decodes.

    For a deny, ``topics`` is its scope (None: every topic). For an allow, ``topics``, ``usages``
    (default: every usage), ``pathlen``, ``not_before`` (default: the issue time) and ``expiry``
    are the new root's constraints. ``signer_chain`` is None only for a root key speaking for
    itself (narrowing or denying itself).
    """
    if kind not in _KINDS:
        raise FormatError("trust update kind: must be 'allow' or 'deny'")
    issued = int(time.time()) if issued_at is None else issued_at
    if kind == KIND_DENY:
        if usages or pathlen is not None or expiry or not_before:
            raise FormatError("a deny entry takes a topic scope only")
        usage_list: list[str] = []
        not_before = 0
    else:
        usage_list = sorted(Usage.ALL if usages is None else usages)
        not_before = issued if not_before is None else not_before
    body = wire.pack([kind, subject, signer.public_key, issued, None if topics is None else list(topics),
                      usage_list, not_before, expiry, pathlen, {}])
    data = wire.pack([VERSION, body, signer.sign(TRUST_CONTEXT, body),
                      None if signer_chain is None else signer_chain.encode()])
    return TrustUpdate.decode(data)


