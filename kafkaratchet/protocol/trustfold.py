"""The fold: what a set of trust updates makes a node trust, whatever order they arrived in.

Entries are judged in the order of their signed issue time (ties by digest),
each against the state the earlier ones built (docs/PROTOCOL.md section 5,
"The fold"). Pure: no locks, files or clocks; :class:`~kafkaratchet.protocol.trust.TrustStore`
owns the entries and replaces its snapshot with the result.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kafkaratchet.errors import ChainError
from kafkaratchet.protocol.certs import (
    REASON_DENYLISTED,
    REASON_MISSING_CHAIN,
    REASON_NOT_YET_VALID,
    REASON_PROVISIONED_ROOT,
    REASON_ROOT_EXISTS,
    REASON_SIGNER_MISMATCH,
    REASON_USAGE_NOT_ALLOWED,
    REASON_WIDENED_PATHLEN,
    REASON_WIDENED_TOPICS,
    REASON_WIDENED_USAGES,
    REASON_WIDENED_VALIDITY,
    Certificate,
    Chain,
    Usage,
    _fp,
    topic_allowed,
    topics_narrow,
)
from kafkaratchet.protocol.trustupdate import KIND_DENY, Scope, TrustUpdate
from kafkaratchet.protocol.validation import Root, ValidatedChain, validate_chain

__all__ = ["TrustState", "TrustChange", "Fold", "scope_matches", "as_root", "diff"]

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


class Fold:
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


def as_root(root: Certificate | Root) -> Root:
    if isinstance(root, Root):
        return root
    if isinstance(root, Certificate):
        return Root.of(root)
    raise TypeError("a root is a Certificate or a Root")


def diff(before: TrustState, after: TrustState) -> TrustChange:
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
