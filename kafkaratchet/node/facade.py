"""``KafkaCrypto``, the object an application holds: kafkacrypto's API over the node's three parts.

The parts follow the threads that use them. :class:`~.sealers.Sealers` serves the
producer threads (serializers); :class:`~.waiter.KeyWaiter` serves the consumer
threads (deserializers); :class:`~.exchange.ExchangeLoop` is the node's one
background thread and alone holds the key-exchange state. This class only builds
them, hands out serializers and stops the loop.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.secretfile import remove_stale_temps
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.exchange import Commands, ExchangeLoop
from kafkaratchet.node.sealers import Sealers, TopicRoots
from kafkaratchet.node.waiter import KeyWaiter
from kafkaratchet.protocol.identity import derive_subkey
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.ratelimit import RateLimiter

__all__ = ["KafkaCrypto"]

log = logging.getLogger(__name__)


class KafkaCrypto:
    """kafkacrypto's node object: ``KafkaCrypto(nodeID, kp, kc, config=None, cryptokey=None, seed=None)``.

    ``kp`` and ``kc`` are a kafka-python producer and consumer dedicated to the key
    exchange (the consumer needs no group). ``config`` is a :class:`KafkaCryptoStore` or the
    path of the node's ``.config`` (default ``<nodeID>.config``); ``cryptokey`` and ``seed``
    override the paths of the secret files.
    """

    def __init__(self, nodeID: str | None, kp: Any, kc: Any, config: KafkaCryptoStore | str | os.PathLike[str] |  # noqa: N803
                 None = None, cryptokey: str | os.PathLike[str] | None = None,
                 seed: str | os.PathLike[str] | None = None) -> None:
        self._build(nodeID, kp, kc, config, cryptokey, seed)
        self.exchange.start()
        log.info("node %s (%s) started with %d chain(s), %d root(s) of trust", self.node_id,
                 self.fingerprint, len(self.credentials.chains), len(self.trust.roots))

    @classmethod
    def unstarted(cls, nodeID: str | None, kp: Any, kc: Any, config: KafkaCryptoStore | str | os.PathLike[str] |  # noqa: N803
                  None = None, cryptokey: str | os.PathLike[str] | None = None,
                  seed: str | os.PathLike[str] | None = None) -> KafkaCrypto:
        """A node whose exchange loop never runs: tests and fuzzers call its handlers in the loop's place."""
        node = cls.__new__(cls)
        node._build(nodeID, kp, kc, config, cryptokey, seed)
        return node

    def _build(self, nodeID: str | None, kp: Any, kc: Any, config: Any, cryptokey: Any, seed: Any) -> None:  # noqa: N803
        store = KafkaCryptoStore.open(nodeID, config)
        self.store = store
        self.node_id = store.node_id
        self.settings = settings = NodeSettings.from_section(store.load_section("crypto"))
        self.credentials = credentials = Credentials(store, cryptokey=cryptokey, clock_skew=settings.clock_skew)
        identity = credentials.identity
        seed_path = Path(seed) if seed else store.secret_path("ratchet", ".seed")
        archive_path = store.secret_path("keyarchive", ".keys")
        for path in (store.path, seed_path, archive_path):
            # a write killed before its rename may have left an old seed or an erased key in a temp file
            remove_stale_temps(path.parent, [path.name])
        ratchet = Ratchet(seed_path) if seed_path.exists() else Ratchet.create(seed_path)
        self._ring = ring = KeyRing(archive_path, derive_subkey(identity, b"kr-key-archive"))
        self._identity, self._trust = identity, credentials.trust
        roots, commands, limiter, self._stop = TopicRoots(settings.root), Commands(), \
            RateLimiter(settings.log_interval), threading.Event()
        self.sealers = Sealers(ratchet, ring, roots, commands.produce)
        self.waiter = KeyWaiter(ring, roots, commands.want, self._stop, limiter,
                                allow_plaintext=settings.allow_plaintext)
        self.exchange = ExchangeLoop(self.node_id, store, settings, identity, credentials, self._trust, ring,
                                     self.sealers, self.waiter, kp, kc, commands, limiter, self._stop)

    # ------------------------------------------------------------------ kafkacrypto's API
    def getKeySerializer(self) -> Any:  # noqa: N802
        from kafkaratchet.node.serdes import key_serializer

        return key_serializer(self.sealers, name=self.node_id)

    def getValueSerializer(self) -> Any:  # noqa: N802
        from kafkaratchet.node.serdes import value_serializer

        return value_serializer(self.sealers, name=self.node_id)

    def getKeyDeserializer(self, max_key_wait_intervals: int | None = None,  # noqa: N802
                           key_wait_interval: float | None = None) -> Any:
        from kafkaratchet.node.serdes import key_deserializer

        return key_deserializer(self.waiter, self._wait_bound(max_key_wait_intervals, key_wait_interval),
                                name=self.node_id)

    def getValueDeserializer(self, max_key_wait_intervals: int | None = None,  # noqa: N802
                             key_wait_interval: float | None = None) -> Any:
        from kafkaratchet.node.serdes import value_deserializer

        return value_deserializer(self.waiter, self._wait_bound(max_key_wait_intervals, key_wait_interval),
                                  name=self.node_id)

    def _wait_bound(self, intervals: int | None, interval: float | None) -> float:
        count = self.settings.max_key_wait_intervals if intervals is None else intervals
        step = self.settings.key_wait_interval if interval is None else interval
        return max(0.0, count * step)

    def ratchet(self) -> int:
        """Step the ratchet now: new keys and key ids for every root. Returns the new epoch."""
        return self.sealers.step(None)

    def close(self) -> None:
        """Stop the management thread and persist the key archive. ``kp`` and ``kc`` stay open."""
        if self._stop.is_set():
            return
        self.exchange.stop(timeout=10)
        try:
            self._ring.persist()
        except OSError as exc:
            log.error("could not persist the key archive on close: %s", exc.strerror)
        self.credentials.close()
        log.info("node %s closed", self.node_id)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until the management topics are being followed (tests, demos, daemons)."""
        return self.exchange.ready.wait(timeout)

    def missing_topics(self) -> dict[str, str]:
        """The key-exchange and trust topics this node needs but could neither find nor create, each with
        why (its principal may not create topics, creation is off, or creation failed); {} when none is.

        A topic leaves this map as soon as the node finds it. The node looks for a missing topic again
        after a backoff (1 s, doubling to a minute), and logs one ERROR per topic with the command an
        administrator runs to create it. A node whose trust topics are missing is not ready
        (:meth:`wait_ready`); this says why."""
        creator = self.exchange.subscriptions.creator
        return {} if creator is None else creator.missing.copy()

    def __enter__(self) -> KafkaCrypto:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaCrypto(node_id={self.node_id!r}, fingerprint={self._identity.fingerprint})"

    # ------------------------------------------------------------------ read-only views
    @property
    def fingerprint(self) -> str:
        return self._identity.fingerprint

    @property
    def public_key(self) -> bytes:
        return self._identity.public_key

    @property
    def epoch(self) -> int:
        """The producer ratchet's current epoch (it only ever grows)."""
        return self.sealers.epoch

    @property
    def trust(self) -> TrustStore:
        """The trust store this node judges chains with (roots, allow- and denylist)."""
        return self._trust

    @property
    def keyring(self) -> KeyRing:
        """The node's keys: its own, and those received from other nodes."""
        return self._ring
