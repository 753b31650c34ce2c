"""What a node knows about trust: its identity, its chains, the allowlist and the denylist.

Loaded from the node's store and kept in step with it: valid trust updates and
renewed chains read from the management topics are applied live and persisted, so
a restart sees them. Trust updates are kept, as received, in ``<node>.trust`` and
folded again at start (the config's ``[allowlist]`` and ``[denylist]`` hold only
what was provisioned, or persisted before trust updates v2); that file is written
at most once a second, never once per entry. Shared by
:class:`~kafkaratchet.KafkaCrypto`, the controller and the chain server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafkaratchet.errors import ChainError, ConfigError, FormatError, KafkaRatchetError
from kafkaratchet.files.nodefiles import NodeFiles, same_constraints, write_chains
from kafkaratchet.files.secretfile import read_secret, write_atomic
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Chain
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint
from kafkaratchet.protocol.trust import (
    MAX_ENTRIES,
    MAX_STORED_BYTES,
    LegacyTrustUpdateError,
    TrustChange,
    TrustStore,
    TrustUpdate,
    entry_digest,
)
from kafkaratchet.protocol.validation import ValidatedChain, chain_expiry
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["Credentials", "chain_expiry", "outlives", "read_trust_file"]

log = logging.getLogger(__name__)

#: ``<node>.trust``: ``[1, [entry, ...]]`` in msgpack, each entry a trust update exactly as received
_TRUST_FILE_VERSION = 1
_MAX_TRUST_FILE = MAX_STORED_BYTES + MAX_ENTRIES * 8 + 64  # the entries, their msgpack bin headers, framing
_PERSIST_INTERVAL = 1.0
_LOG_INTERVAL = 60.0
REPUBLISH_HINT = ("re-publish them as v2 entries with `kafkaratchet-provision denylist --republish "
                  "--config ADMIN.config`")


def outlives(a: int, b: int) -> bool:
    """Does expiry ``a`` come later than ``b`` (0 meaning never)?"""
    if a == 0:
        return b != 0
    return b != 0 and a > b


def read_trust_file(path: Path) -> tuple[list[TrustUpdate], list[str]]:
    """The entries kept in a node's ``<node>.trust`` (none if it does not exist), and what was skipped.

    ConfigError when the file is not one; an entry that no longer verifies is skipped and named.
    """
    if not path.exists():
        return [], []
    try:
        items = wire.expect_list(wire.unpack(read_secret(path, max_size=_MAX_TRUST_FILE), max_size=_MAX_TRUST_FILE),
                                 "trust file", size=2)
        if wire.expect_int(items[0], "trust file version") != _TRUST_FILE_VERSION:
            raise FormatError("unsupported trust file version")
        raw = wire.expect_list(items[1], "trust file entries")
    except FormatError as exc:
        raise ConfigError(f"{path}: not a trust entries file ({exc})") from None
    updates: list[TrustUpdate] = []
    problems: list[str] = []
    for value in raw:
        try:
            updates.append(TrustUpdate.decode(wire.expect_bytes(value, "trust entry")))
        except KafkaRatchetError as exc:
            problems.append(f"{path}: skipping an entry that does not verify: {exc}")
    return updates, problems


class Credentials:
    """Identity, chains and trust lists of one node; thread-safe."""

    def __init__(self, store: KafkaCryptoStore, *, cryptokey: str | os.PathLike[str] | None = None,
                 clock_skew: int = 300) -> None:
        self.store = store
        files, skipped = NodeFiles.read(store, strict=True, identity_path=cryptokey)
        assert files.identity is not None  # a strict read has one
        self.identity: SigningIdentity = files.identity
        self.trust = TrustStore(files.root_certificates, files.denied_keys, skew=clock_skew)
        self._chains = list(files.chains.values())
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._trust_path = files.trust_path
        self._dirty = False
        self._last_persist = 0.0
        self._limiter = RateLimiter(_LOG_INTERVAL)
        self._load_trust_entries(files.trust_updates, skipped)

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
    def apply_trust_update(self, kind: str, value: bytes) -> TrustChange | None:
        """Apply one signed entry read from the ``kind``-list topic; the change, or None if nothing changed.

        Raises a KafkaRatchetError for an entry that cannot take effect, which then changes nothing.
        """
        update = TrustUpdate.decode(value)
        if update.kind != kind:
            raise FormatError(f"a {update.kind!r} entry on the {kind}list topic")
        count = self.trust.entry_count
        change, refused = self.trust.apply_many([update])
        self._after_change(change, stored=self.trust.entry_count != count)
        if update.digest in refused:
            raise refused[update.digest]
        return change if change else None

    def apply_trust_records(self, records: Iterable[tuple[str, bytes]]) -> TrustChange:
        """Apply a batch of (expected kind, record value) read from the trust topics, in one fold.

        Never raises for bad input: unreadable, forged and ineffective entries are counted and
        logged (at most once a minute per reason); version 1 entries are ignored with one line
        saying how to re-publish them.
        """
        updates: list[TrustUpdate] = []
        for kind, value in records:
            digest = entry_digest(value)
            if self.trust.holds(digest):
                continue  # a replay of an entry we keep: a hash, not a signature check
            try:
                update = TrustUpdate.decode(value, digest=digest)
            except LegacyTrustUpdateError:
                self._log_once("legacy", logging.WARNING, "ignoring version 1 trust updates on the %slist "
                               "topic: they are no longer accepted; %s", kind, REPUBLISH_HINT)
                continue
            except KafkaRatchetError as exc:
                self._log_once(f"bad:{type(exc).__name__}", logging.INFO,
                               "ignored an unreadable or forged trust update: %s", exc)
                continue
            if update.kind != kind:
                self._log_once("wrong-topic", logging.INFO, "ignored a %s entry on the %slist topic",
                               update.kind, kind)
                continue
            updates.append(update)
        if not updates:
            return TrustChange()
        count = self.trust.entry_count
        change, refused = self.trust.apply_many(updates)
        for error in refused.values():
            reason = error.reason if isinstance(error, ChainError) else type(error).__name__
            self._log_once(f"refused:{reason}", logging.INFO, "a trust update has no effect here: %s", error)
        self._after_change(change, stored=self.trust.entry_count != count)
        return change

    def _after_change(self, change: TrustChange, *, stored: bool) -> None:
        if stored:
            self._dirty = True
            self.persist_trust()
        if not change:
            return
        own = self.identity.public_key
        for key, scope in change.denial_scopes():
            where = "every topic" if scope is None else "topics " + " ".join(scope)
            if key == own:
                log.warning("this node's own key %s is denylisted for %s: others will refuse it",
                            fingerprint(key), where)
            else:  # a node starting up replays every entry ever made: one line each, not a wall of warnings
                log.info("key %s is denylisted for %s", fingerprint(key), where)
        for key in sorted(change.roots_added):
            log.info("key %s added to the allowlist", fingerprint(key))
        for key in sorted(change.roots_changed):
            log.info("root %s narrowed its constraints", fingerprint(key))
        self._notify()

    def _log_once(self, what: str, level: int, message: str, *args: object) -> None:
        if self._limiter.allow(what):
            log.log(level, message, *args)

    # -- the entries file --------------------------------------------------------------------------------
    def persist_trust(self, *, force: bool = False) -> None:
        """Write ``<node>.trust`` if entries arrived since the last write (at most once a second unless
        ``force``): a burst of entries costs one write, never one per entry."""
        if not self._dirty or (not force and time.monotonic() - self._last_persist < _PERSIST_INTERVAL):
            return
        with self._lock:
            self._dirty = False
            self._last_persist = time.monotonic()
            entries = [e.raw for e in self.trust.entries()]
            try:
                write_atomic(self._trust_path, wire.pack([_TRUST_FILE_VERSION, entries]))
            except OSError as exc:
                self._dirty = True
                log.error("cannot persist trust updates to %s: %s", self._trust_path, exc.strerror)

    def _load_trust_entries(self, updates: list[TrustUpdate], problems: list[str]) -> None:
        for problem in problems:
            log.warning("%s", problem)
        _, refused = self.trust.apply_many(updates)
        if refused:
            log.info("%s: %d of %d stored trust updates have no effect under the current config",
                     self._trust_path, len(refused), len(updates))

    def close(self) -> None:
        self.persist_trust(force=True)

    def offer_chain(self, value: bytes) -> bool:
        """Adopt a chain for our key that validates and outlives the one we hold for the same rights."""
        chain = Chain.decode(value)
        if chain.subject != self.identity.public_key:
            return False
        checked = self.trust.validate(chain)
        with self._lock:
            same = [c for c in self._chains if same_constraints(c, chain)]
            if chain in same or any(not outlives(checked.expiry, chain_expiry(c)) for c in same):
                return False
            self._chains = [c for c in self._chains if c not in same] + [chain]
            chains = list(self._chains)
        write_chains(self.store, chains)
        log.info("adopted a renewed chain for %s (expiry %d)", self.fingerprint, checked.expiry)
        self._notify()
        return True

    def __repr__(self) -> str:
        return f"Credentials({self.fingerprint}, chains={len(self._chains)})"
