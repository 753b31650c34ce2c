"""Trust updates (v2) and the trust store they edit: who is a root of trust, and who is denied.

A trust update is its own signed structure, under its own signature context, with
everything that gives it meaning inside the signed bytes: the kind (allow or deny),
the subject key, the scope (topics; for an allow also the admitted root's usages,
path length and validity) and the time it was issued. No certificate, key request
or answer can be presented as one (version 1 entries, which wrapped an ordinary
certificate, are refused).

Authority is scoped. An allow entry may add a *new* root only within its signer's
own rights; an existing root changes only by its own signature and only to
narrow. A deny entry takes effect within its signer's topics only; a global denial
comes from an unrestricted denylister or from the key itself. A node's provisioned
roots are removed only by themselves (or by editing the config).

What a node trusts is a function of the *set* of entries it has read, never of the
order they arrived in (they interleave across partitions, and a node started later
replays them all): the store folds its entries in the order of their signed issue
time (ties broken by a digest), judging each against the state the earlier ones
built. An entry is stored only after its signature verified over the raw bytes and
its signer's chain validated to a known root; nothing costlier (and no topic
pattern) is touched before that. See docs/PROTOCOL.md section 5.
"""

from __future__ import annotations

import collections
import hmac
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import nacl.bindings as sodium

from .. import wire
from ..certs import (
    DEFAULT_SKEW,
    MAX_CHAIN_SIZE,
    MAX_PATHLEN,
    MAX_TOPICS,
    REASON_DENYLISTED,
    REASON_MISSING_CHAIN,
    REASON_NOT_YET_VALID,
    REASON_PROVISIONED_ROOT,
    REASON_ROOT_EXISTS,
    REASON_SIGNER_MISMATCH,
    REASON_UNKNOWN_ROOT,
    REASON_USAGE_NOT_ALLOWED,
    REASON_WIDENED_PATHLEN,
    REASON_WIDENED_TOPICS,
    REASON_WIDENED_USAGES,
    REASON_WIDENED_VALIDITY,
    Certificate,
    Chain,
    Root,
    Usage,
    ValidatedChain,
    parse_extra,
    parse_topics,
    parse_usages,
    topic_allowed,
    topics_narrow,
    validate_chain,
)
from ..errors import ChainError, FormatError, KafkaRatchetError, UnsupportedVersionError
from ..identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningIdentity, fingerprint, verify

__all__ = [
    "TRUST_CONTEXT",
    "VERSION",
    "LEGACY_VERSION",
    "KIND_ALLOW",
    "KIND_DENY",
    "MAX_UPDATE_SIZE",
    "MAX_ENTRIES",
    "MAX_STORED_BYTES",
    "MAX_ENTRIES_PER_SIGNER",
    "MAX_SELF_ENTRIES_PER_SIGNER",
    "MAX_PENDING",
    "LegacyTrustUpdateError",
    "TrustUpdate",
    "TrustState",
    "TrustChange",
    "TrustStore",
    "make_trust_update",
    "entry_digest",
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
#: Entries a store keeps in all, and their total encoded size; past either, new entries are refused
#: (logged by the caller), so the node's trust file always stays readable.
MAX_ENTRIES = 20_000
MAX_STORED_BYTES = 64 << 20
#: Entries kept per signer holding allowlist or denylist rights, and per signer without them
#: (whose only possible entries are denials of itself).
MAX_ENTRIES_PER_SIGNER = 10_000
MAX_SELF_ENTRIES_PER_SIGNER = 2
#: Entries whose signer chain starts at a root not known yet (its allow entry may still be on its way).
MAX_PENDING = 256

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
    def decode(cls, data: bytes) -> TrustUpdate:
        """Parse and check the signature; FormatError, LegacyTrustUpdateError or SignatureError.

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
        return cls(**fields, body=body, signature=signature, chain=chain, raw=raw, digest=entry_digest(raw))

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


# --------------------------------------------------------------------------- the state and the fold


@dataclass(frozen=True)
class TrustState:
    """An immutable snapshot: roots by key, globally denied keys, scoped denials by key."""

    roots: Mapping[bytes, Root]
    denied: frozenset[bytes]
    scoped: Mapping[bytes, tuple[Scope, ...]]

    def excluded(self, keys: Iterable[bytes]) -> tuple[Scope, ...]:
        scoped = self.scoped
        if not scoped:
            return ()
        return tuple(scope for key in keys for scope in scoped.get(key, ()))


@dataclass(frozen=True)
class TrustChange:
    """What one batch of entries changed: new global denials, new scoped denials, root edits."""

    denied: frozenset[bytes] = frozenset()
    scoped: Mapping[bytes, tuple[Scope, ...]] = field(default_factory=dict)
    roots_added: frozenset[bytes] = frozenset()
    roots_changed: frozenset[bytes] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.denied or self.scoped or self.roots_added or self.roots_changed)

    def denial_scopes(self) -> list[tuple[bytes, Scope | None]]:
        """Every new denial as (key, scope), scope None for a global one."""
        out: list[tuple[bytes, Scope | None]] = [(key, None) for key in sorted(self.denied)]
        for key, scopes in sorted(self.scoped.items()):
            out += [(key, scope) for scope in scopes]
        return out


class _Fold:
    """The mutable state while entries are folded in order (only ever used under the store's lock)."""

    def __init__(self, roots: Mapping[bytes, Root], denied: Iterable[bytes], skew: int) -> None:
        self.roots: dict[bytes, Root] = dict(roots)
        self.denied: set[bytes] = set(denied)
        self.scoped: dict[bytes, list[Scope]] = {}
        self.skew = skew
        self.last: tuple[int, bytes] = (-1, b"")

    def snapshot(self) -> TrustState:
        return TrustState(roots=MappingProxyType(dict(self.roots)), denied=frozenset(self.denied),
                          scoped=MappingProxyType({k: tuple(v) for k, v in self.scoped.items()}))

    def validate(self, chain: Chain, now: float) -> ValidatedChain:
        checked = validate_chain(chain, self.roots, self.denied, now, self.skew)
        excluded = tuple(scope for key in checked.keys for scope in self.scoped.get(key, ()))
        if excluded:
            checked = ValidatedChain(subject=checked.subject, root=checked.root, topics=checked.topics,
                                     usages=checked.usages, expiry=checked.expiry, excluded=excluded,
                                     keys=checked.keys)
        return checked

    def apply(self, entry: TrustUpdate) -> None:
        """Judge ``entry`` against the state so far and apply it; ChainError (state unchanged) if invalid."""
        self.last = max(self.last, entry.order)
        if entry.kind == KIND_DENY:
            self._deny(entry)
        else:
            self._allow(entry)

    def _signer_chain(self, entry: TrustUpdate) -> ValidatedChain:
        if entry.chain is None:
            raise ChainError(REASON_MISSING_CHAIN, f"{entry.kind} entry needs the signer's chain")
        if not hmac.compare_digest(entry.chain.subject, entry.signer):
            raise ChainError(REASON_SIGNER_MISMATCH, "entry not signed by the chain's key")
        return self.validate(entry.chain, entry.issued_at)

    def _deny(self, entry: TrustUpdate) -> None:
        subject = entry.subject
        root = self.roots.get(subject)
        if entry.self_signed:
            # a key may deny itself, but only one that can show it is somebody: a root, or a valid chain
            if root is None:
                self._signer_chain(entry)
        else:
            if root is not None and root.provisioned:
                raise ChainError(REASON_PROVISIONED_ROOT, "a provisioned root is removed only by itself")
            signer = self._signer_chain(entry)
            if Usage.DENYLIST not in signer.usages:
                raise ChainError(REASON_USAGE_NOT_ALLOWED, Usage.DENYLIST)
            _require_within(signer, entry.topics, Usage.DENYLIST)
        if entry.topics is None:
            self.denied.add(subject)
        else:
            scopes = self.scoped.setdefault(subject, [])
            if entry.topics not in scopes:
                scopes.append(entry.topics)

    def _allow(self, entry: TrustUpdate) -> None:
        subject = entry.subject
        if entry.not_before > entry.issued_at + self.skew:
            raise ChainError(REASON_NOT_YET_VALID, "an entry may not start later than its issue time")
        if subject in self.denied:
            raise ChainError(REASON_DENYLISTED, f"key {_fp(subject)} cannot be allowed again")
        current = self.roots.get(subject)
        if current is not None:
            if not entry.self_signed:
                raise ChainError(REASON_ROOT_EXISTS, "only a root itself may change its constraints")
            _require_narrower(current, entry)
            self.roots[subject] = Root(subject=subject, topics=entry.topics, usages=entry.usages,
                                       pathlen=entry.pathlen, not_before=entry.not_before, expiry=entry.expiry,
                                       provisioned=current.provisioned, lineage=current.lineage,
                                       certificate=current.certificate)
            return
        signer = self._signer_chain(entry)
        if Usage.ALLOWLIST not in signer.usages:
            raise ChainError(REASON_USAGE_NOT_ALLOWED, Usage.ALLOWLIST)
        _require_within(signer, entry.topics, Usage.ALLOWLIST)
        if not entry.usages <= signer.usages:
            raise ChainError(REASON_WIDENED_USAGES, "an admitted root is wider than its signer")
        if signer.expiry and not 0 < entry.expiry <= signer.expiry:
            raise ChainError(REASON_WIDENED_VALIDITY, "an admitted root outlives its signer's chain")
        self.roots[subject] = Root(subject=subject, topics=entry.topics, usages=entry.usages,
                                   pathlen=entry.pathlen, not_before=entry.not_before, expiry=entry.expiry,
                                   lineage=signer.keys - {subject})


def _require_within(signer: ValidatedChain, topics: Scope | None, usage: str) -> None:
    """The entry's topics must lie inside what the signer may do ``usage`` on."""
    if topics is None:
        if signer.topics is not None or signer.excluded:
            raise ChainError(REASON_WIDENED_TOPICS, "every topic, but the signer's rights are scoped")
        return
    if not topics_narrow(signer.topics, topics):
        raise ChainError(REASON_WIDENED_TOPICS, "outside the signer's topics")
    for entry in topics:
        if entry.startswith("^"):
            if any(entry in scope for scope in signer.excluded):
                raise ChainError(REASON_WIDENED_TOPICS, "a pattern the signer was denied")
        elif not signer.allows(usage, entry):
            raise ChainError(REASON_WIDENED_TOPICS, f"the signer may not act on {entry}")


def _require_narrower(current: Root, entry: TrustUpdate) -> None:
    if not topics_narrow(current.topics, entry.topics):
        raise ChainError(REASON_WIDENED_TOPICS, "a root may only narrow its topics")
    if not entry.usages <= current.usages:
        raise ChainError(REASON_WIDENED_USAGES, "a root may only narrow its usages")
    if current.pathlen is not None and (entry.pathlen is None or entry.pathlen > current.pathlen):
        raise ChainError(REASON_WIDENED_PATHLEN, "a root may only shorten its path length")
    if current.expiry and not 0 < entry.expiry <= current.expiry:
        raise ChainError(REASON_WIDENED_VALIDITY, "a root may only end sooner")
    if entry.not_before < current.not_before:
        raise ChainError(REASON_WIDENED_VALIDITY, "a root may only start later")


# --------------------------------------------------------------------------- the store


class TrustStore:
    """Provisioned roots and denials, plus every accepted trust update, folded into one snapshot.

    Thread-safe. Validation reads the current immutable snapshot (no copy, O(1) denial lookups);
    entries replace it under the lock. ``skew`` is the clock difference in seconds tolerated on
    every not_before and expiry.
    """

    def __init__(self, roots: Iterable[Certificate | Root] = (), denied: Iterable[bytes] = (), *,
                 skew: int = DEFAULT_SKEW) -> None:
        if isinstance(skew, bool) or not isinstance(skew, int) or skew < 0:
            raise ValueError("skew must be a non-negative int")
        self._lock = threading.RLock()
        self._skew = skew
        self._provisioned: dict[bytes, Root] = {}
        self._provisioned_denied: set[bytes] = set()
        self._entries: dict[bytes, TrustUpdate] = {}
        self._per_signer: collections.Counter[bytes] = collections.Counter()
        self._stored_bytes = 0
        self._pending: collections.OrderedDict[bytes, TrustUpdate] = collections.OrderedDict()
        self._outcome: dict[bytes, str | None] = {}
        for root in roots:
            self._provisioned[root.subject] = _as_root(root)
        for key in denied:
            self._provisioned_denied.add(wire.expect_bytes(key, "denied key", size=PUBLIC_KEY_SIZE))
        self._fold = _Fold(self._provisioned, self._provisioned_denied, skew)
        self._state = self._fold.snapshot()

    # -- reading -------------------------------------------------------------------------------
    @property
    def skew(self) -> int:
        return self._skew

    @property
    def state(self) -> TrustState:
        return self._state

    @property
    def roots(self) -> Mapping[bytes, Root]:
        return self._state.roots

    @property
    def denied(self) -> frozenset[bytes]:
        """Keys denied everywhere (scoped denials: :attr:`state`)."""
        return self._state.denied

    @property
    def provisioned_denied(self) -> frozenset[bytes]:
        with self._lock:
            return frozenset(self._provisioned_denied)

    @property
    def entry_count(self) -> int:
        return len(self._entries)

    def holds(self, digest: bytes) -> bool:
        """Is the entry with this digest stored already (a replay needs no decoding)?"""
        return digest in self._entries

    def entries(self) -> list[TrustUpdate]:
        """Every stored entry (effective or not), in fold order."""
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.order)

    def outcome(self, entry: TrustUpdate) -> str | None:
        """Why a stored entry has no effect in the current fold (None: it took effect)."""
        with self._lock:
            return self._outcome.get(entry.digest, "not stored")

    def is_denied(self, key: bytes) -> bool:
        return bytes(key) in self._state.denied

    def validate(self, chain: Chain, *, now: float | None = None) -> ValidatedChain:
        """Check ``chain`` against the current snapshot; ChainError with a stable ``reason`` on failure."""
        if not isinstance(chain, Chain):
            raise TypeError("validate takes a Chain")
        state = self._state
        checked = validate_chain(chain, state.roots, state.denied, time.time() if now is None else now, self._skew)
        excluded = state.excluded(checked.keys)
        if excluded:
            checked = ValidatedChain(subject=checked.subject, root=checked.root, topics=checked.topics,
                                     usages=checked.usages, expiry=checked.expiry, excluded=excluded,
                                     keys=checked.keys)
        return checked

    def copy(self) -> TrustStore:
        """An independent store with the same provisioned lists and entries (to rehearse an update)."""
        with self._lock:
            other = TrustStore(self._provisioned.values(), self._provisioned_denied, skew=self._skew)
            other._add(list(self._entries.values()), now=None, check=False)
            return other

    # -- provisioned lists (the node's own config: trusted as given) -----------------------------
    def add_root(self, cert: Certificate | Root) -> None:
        with self._lock:
            self._provisioned[cert.subject] = _as_root(cert)
            self._refold()

    def remove_root(self, key: bytes) -> None:
        with self._lock:
            self._provisioned.pop(bytes(key), None)
            self._refold()

    def deny(self, key: bytes) -> None:
        wire.expect_bytes(key, "denied key", size=PUBLIC_KEY_SIZE)
        with self._lock:
            self._provisioned_denied.add(bytes(key))
            self._refold()

    # -- entries ------------------------------------------------------------------------------------
    def apply(self, update: TrustUpdate, *, now: float | None = None) -> bool:
        """Store and fold one entry; True if the trust state changed.

        Raises (and the state is unchanged) when the entry cannot take effect: its signer chain does
        not validate to a known root at its issue time, it lacks the right, it reaches beyond its
        signer's scope, it was issued in the future... An entry that is valid but changes nothing
        (a replay, a denial of a key already denied) returns False.
        """
        change = self.apply_many([update], now=now)
        if update.digest in change[1]:
            raise change[1][update.digest]
        return bool(change[0])

    def apply_many(self, updates: Iterable[TrustUpdate], *, now: float | None = None
                   ) -> tuple[TrustChange, dict[bytes, KafkaRatchetError]]:
        """Fold a batch of entries at once (one fold, however many); the change and the refusals."""
        with self._lock:
            return self._add(list(updates), now=now, check=True)

    def _add(self, updates: list[TrustUpdate], *, now: float | None, check: bool
             ) -> tuple[TrustChange, dict[bytes, KafkaRatchetError]]:
        now = time.time() if now is None else now
        refused: dict[bytes, KafkaRatchetError] = {}
        fresh: list[TrustUpdate] = []
        for update in updates:
            if not isinstance(update, TrustUpdate):
                raise TypeError("apply takes a TrustUpdate")
            if update.digest in self._entries or any(u.digest == update.digest for u in fresh):
                continue  # a replay: nothing to do
            try:
                if check:
                    self._admit(update, now, pending_ok=True)
            except KafkaRatchetError as exc:
                refused[update.digest] = exc
                continue
            fresh.append(update)
        before = self._state
        if fresh:
            self._store(fresh)
            self._retry_pending(now)
        for update in fresh:
            reason = self._outcome.get(update.digest)
            if reason is not None and update.digest not in refused:
                refused[update.digest] = ChainError(reason, "no effect in the current trust state")
        return _diff(before, self._state), refused

    def _admit(self, update: TrustUpdate, now: float, *, pending_ok: bool) -> None:
        """The cheap checks that decide whether an entry is worth keeping at all."""
        if update.issued_at > now + self._skew:
            raise ChainError(REASON_NOT_YET_VALID, "entry issued in the future")
        if len(self._entries) >= MAX_ENTRIES or self._stored_bytes + len(update.raw) > MAX_STORED_BYTES:
            raise ChainError(REASON_USAGE_NOT_ALLOWED, f"the store is full ({len(self._entries)} entries, "
                                                       f"{self._stored_bytes} bytes)")
        roots = self._fold.roots
        if update.chain is None:
            if not update.self_signed:
                raise ChainError(REASON_MISSING_CHAIN, f"a {update.kind} entry needs the signer's chain")
            if update.signer not in roots:
                if pending_ok:
                    self._park(update)
                raise ChainError(REASON_MISSING_CHAIN, "only a root key speaks for itself without a chain")
            limit = MAX_ENTRIES_PER_SIGNER
        else:
            chain = update.chain
            if not hmac.compare_digest(chain.subject, update.signer):
                raise ChainError(REASON_SIGNER_MISMATCH, "entry not signed by the chain's key")
            leaf = chain.leaf.usages
            needed = Usage.DENYLIST if update.kind == KIND_DENY else Usage.ALLOWLIST
            if needed not in leaf and not (update.kind == KIND_DENY and update.self_signed):
                raise ChainError(REASON_USAGE_NOT_ALLOWED, needed)
            if chain.certificates[0].issuer not in roots:
                if pending_ok:
                    self._park(update)
                raise ChainError(REASON_UNKNOWN_ROOT, "the signer's chain starts at a root not known (yet)")
            # signatures, links, times at issue and narrowing; denials are the fold's business
            validate_chain(chain, roots, (), update.issued_at, self._skew)
            limit = MAX_ENTRIES_PER_SIGNER if needed in leaf else MAX_SELF_ENTRIES_PER_SIGNER
        if self._per_signer[update.signer] >= limit:
            raise ChainError(REASON_USAGE_NOT_ALLOWED, f"signer {_fp(update.signer)} has {limit} entries already")

    def _park(self, update: TrustUpdate) -> None:
        self._pending[update.digest] = update
        self._pending.move_to_end(update.digest)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def _retry_pending(self, now: float) -> None:
        while self._pending:
            ready = []
            for digest, update in list(self._pending.items()):
                try:
                    self._admit(update, now, pending_ok=False)
                except KafkaRatchetError:
                    continue
                del self._pending[digest]
                ready.append(update)
            if not ready:
                return
            self._store(ready)

    def _store(self, fresh: list[TrustUpdate]) -> None:
        for update in fresh:
            self._entries[update.digest] = update
            self._per_signer[update.signer] += 1
            self._stored_bytes += len(update.raw)
        if min(u.order for u in fresh) > self._fold.last:
            for update in sorted(fresh, key=lambda u: u.order):  # the common case: newer than all before
                self._fold_one(self._fold, update)
            self._state = self._fold.snapshot()
        else:
            self._refold()

    def _refold(self) -> None:
        fold = _Fold(self._provisioned, self._provisioned_denied, self._skew)
        self._outcome = {}
        for update in sorted(self._entries.values(), key=lambda e: e.order):
            self._fold_one(fold, update)
        self._fold = fold
        self._state = fold.snapshot()

    def _fold_one(self, fold: _Fold, update: TrustUpdate) -> None:
        try:
            fold.apply(update)
        except KafkaRatchetError as exc:
            self._outcome[update.digest] = exc.reason if isinstance(exc, ChainError) else type(exc).__name__
        else:
            self._outcome[update.digest] = None

    def __repr__(self) -> str:
        state = self._state
        return (f"TrustStore({len(state.roots)} roots, {len(state.denied)} denied, {len(state.scoped)} scoped, "
                f"{len(self._entries)} entries, skew={self._skew})")


def _as_root(root: Certificate | Root) -> Root:
    if isinstance(root, Root):
        return root
    if isinstance(root, Certificate):
        return Root.of(root)
    raise TypeError("a root is a Certificate or a Root")


def _diff(before: TrustState, after: TrustState) -> TrustChange:
    if before is after:
        return TrustChange()
    scoped = {key: tuple(s for s in scopes if s not in before.scoped.get(key, ()))
              for key, scopes in after.scoped.items()}
    return TrustChange(
        denied=after.denied - before.denied,
        scoped={k: v for k, v in scoped.items() if v},
        roots_added=frozenset(after.roots.keys() - before.roots.keys()),
        roots_changed=frozenset(k for k, r in after.roots.items() if k in before.roots and before.roots[k] != r),
    )


def scope_matches(scope: Scope | None, root_topic: str) -> bool:
    """Does a denial's scope (None: every topic) cover ``root_topic``? Scopes come from verified entries."""
    return scope is None or topic_allowed(scope, root_topic)
