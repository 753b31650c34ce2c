"""What a node knows about trust: its identity, its chains, the allowlist and the denylist.

Loaded from the node's store and kept in step with it: a valid trust update or a
renewed chain read from the management topics is applied live and persisted, so
a restart sees it. Shared by :class:`~kafkaratchet.KafkaCrypto`, the controller
and the chain server.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from .certs import KIND_ALLOW, Certificate, Chain, TrustStore, TrustUpdate, ValidatedChain
from .errors import ConfigError, FormatError, KafkaRatchetError
from .identity import SigningIdentity, decode_identity_file, fingerprint
from .secretfile import read_secret
from .store import KafkaCryptoStore

__all__ = ["Credentials", "chain_expiry", "outlives"]

log = logging.getLogger(__name__)


def chain_expiry(chain: Chain) -> int:
    """The effective expiry of a chain: its earliest non-zero expiry (0 = never)."""
    expiries = [c.expiry for c in chain.certificates if c.expiry]
    return min(expiries) if expiries else 0


def outlives(a: int, b: int) -> bool:
    """Does expiry ``a`` come later than ``b`` (0 meaning never)?"""
    if a == 0:
        return b != 0
    return b != 0 and a > b


class Credentials:
    """Identity, chains and trust lists of one node; thread-safe."""

    def __init__(self, store: KafkaCryptoStore, *, cryptokey: str | os.PathLike[str] | None = None,
                 clock_skew: int = 300) -> None:
        self.store = store
        identity_path = Path(cryptokey) if cryptokey else store.secret_path("cryptokey", ".crypto")
        try:
            self.identity: SigningIdentity = decode_identity_file(read_secret(identity_path, max_size=4096))
        except FormatError as exc:
            raise ConfigError(f"{identity_path}: {exc}") from None
        self.trust = TrustStore(self._certificates("allowlist"), self._denied(), skew=clock_skew)
        try:
            self._chains = [Chain.decode(blob) for blob in self._blobs("chains")]
        except FormatError as exc:
            raise ConfigError(f"{store.path}: [chains] holds an invalid chain: {exc}") from None
        for chain in self._chains:
            if chain.subject != self.identity.public_key:
                raise ConfigError(f"{store.path}: a chain in [chains] is not for this node's key")
        self._lock = threading.Lock()
        self._changed = threading.Condition()

    def wait_until(self, predicate: Callable[[Credentials], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds after a live update (or at once), at most ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    @property
    def chains(self) -> list[Chain]:
        with self._lock:
            return list(self._chains)

    # -- loading ---------------------------------------------------------------------------------
    def _blobs(self, section: str) -> list[bytes]:
        blobs = []
        for name in sorted(self.store.load_section(section)):
            blob = self.store.load_bytes(name, section)
            if blob is not None:
                blobs.append(blob)
        return blobs

    def _certificates(self, section: str) -> list[Certificate]:
        try:
            return [Certificate.decode(b) for b in self._blobs(section)]
        except FormatError as exc:
            raise ConfigError(f"{self.store.path}: [{section}] holds an invalid certificate: {exc}") from None

    def _denied(self) -> list[bytes]:
        keys = self._blobs("denylist")
        if any(len(k) != 32 for k in keys):
            raise ConfigError(f"{self.store.path}: [denylist] holds a key that is not 32 bytes")
        return keys

    # -- choosing a chain ----------------------------------------------------------------------------
    def chain_for(self, usage: str, root: str) -> tuple[Chain, ValidatedChain] | None:
        """The longest-lived valid chain of ours allowing ``usage`` on ``root``."""
        best: tuple[Chain, ValidatedChain] | None = None
        for chain in self.chains:
            try:
                checked = self.trust.validate(chain)
            except KafkaRatchetError:
                continue
            if checked.allows(usage, root) and (best is None or outlives(checked.expiry, best[1].expiry)):
                best = (chain, checked)
        return best

    def any_chain(self, usage: str) -> Chain | None:
        """A chain of ours whose leaf names ``usage`` at all (valid or not), to be judged by others."""
        return next((c for c in self.chains if usage in c.leaf.usages), None)

    # -- live updates ----------------------------------------------------------------------------------
    def apply_trust_update(self, kind: str, value: bytes) -> TrustUpdate | None:
        """Apply a signed allowlist/denylist entry read from the broker; the update if it changed anything.

        Raises a KafkaRatchetError for an invalid entry, which then changes nothing.
        """
        update = TrustUpdate.decode(value)
        if update.kind != kind:
            raise FormatError(f"a {update.kind!r} entry on the {kind}list topic")
        if not self.trust.apply(update):
            return None
        subject = update.entry.subject
        if update.kind == KIND_ALLOW:
            self.store.store_value(subject.hex(), update.entry.encode(), "allowlist")
            log.info("key %s added to the allowlist", fingerprint(subject))
        else:
            self.store.store_value(subject.hex(), subject, "denylist")
            if subject == self.identity.public_key:
                log.warning("this node's own key %s is denylisted: others will refuse it", fingerprint(subject))
            else:  # a node starting up replays every entry ever made: one line each, not a wall of warnings
                log.info("key %s is denylisted", fingerprint(subject))
        self._notify()
        return update

    def offer_chain(self, value: bytes) -> bool:
        """Adopt a chain for our key that validates and outlives the one we hold for the same rights."""
        chain = Chain.decode(value)
        if chain.subject != self.identity.public_key:
            return False
        checked = self.trust.validate(chain)
        with self._lock:
            same = [c for c in self._chains
                    if c.leaf.usages == chain.leaf.usages and c.leaf.topics == chain.leaf.topics]
            if chain in same or any(not outlives(checked.expiry, chain_expiry(c)) for c in same):
                return False
            self._chains = [c for c in self._chains if c not in same] + [chain]
            chains = list(self._chains)
        self.store.replace_section("chains", {f"chain{i}": c.encode() for i, c in enumerate(chains)})
        log.info("adopted a renewed chain for %s (expiry %d)", self.fingerprint, checked.expiry)
        self._notify()
        return True

    def __repr__(self) -> str:
        return f"Credentials({self.fingerprint}, chains={len(self._chains)})"
