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

The signed structure is :mod:`~kafkaratchet.protocol.trustupdate`, the fold
:mod:`~kafkaratchet.protocol.trustfold`; this module is the store that holds the
entries and their result, and the names of all three, re-exported.
"""

from __future__ import annotations

import collections
import hmac
import threading
import time
from collections.abc import Iterable, Mapping

from kafkaratchet.errors import ChainError, KafkaRatchetError
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    DEFAULT_SKEW,
    REASON_MISSING_CHAIN,
    REASON_NOT_YET_VALID,
    REASON_SIGNER_MISMATCH,
    REASON_UNKNOWN_ROOT,
    REASON_USAGE_NOT_ALLOWED,
    Certificate,
    Chain,
    Usage,
    _fp,
)
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE
from kafkaratchet.protocol.trustfold import Fold, TrustChange, TrustState, as_root, diff, scope_matches
from kafkaratchet.protocol.trustupdate import (
    KIND_ALLOW,
    KIND_DENY,
    LEGACY_VERSION,
    MAX_UPDATE_SIZE,
    TRUST_CONTEXT,
    VERSION,
    LegacyTrustUpdateError,
    TrustUpdate,
    entry_digest,
    make_trust_update,
)
from kafkaratchet.protocol.validation import Root, ValidatedChain, validate_chain

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
    "scope_matches",
]

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
            self._provisioned[root.subject] = as_root(root)
        for key in denied:
            self._provisioned_denied.add(wire.expect_bytes(key, "denied key", size=PUBLIC_KEY_SIZE))
        self._fold = Fold(self._provisioned, self._provisioned_denied, skew)
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
            self._provisioned[cert.subject] = as_root(cert)
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
        return diff(before, self._state), refused

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
        fold = Fold(self._provisioned, self._provisioned_denied, self._skew)
        self._outcome = {}
        for update in sorted(self._entries.values(), key=lambda e: e.order):
            self._fold_one(fold, update)
        self._fold = fold
        self._state = fold.snapshot()

    def _fold_one(self, fold: Fold, update: TrustUpdate) -> None:
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


