"""KafkaCryptoChainServer: short-lived chains, renewed before they expire, so an unrenewed one dies.

The chain server holds a list of node keys it serves, each with the usages and
topics it may have. It signs each a certificate living ``chain_lifetime`` seconds
below its own ``chain-issue`` chain and publishes the chain on the ``chains``
topic; nodes adopt a valid chain for their own key that outlives the one they
hold. It re-issues a chain when less than ``chain_refresh_fraction`` of its life
is left. Stop the chain server (or remove a key) and that node's chain simply
expires.

Served keys live in the ``[chainserver-keys]`` section of its config (hex public
key = JSON ``{"usages": [...], "topics": [...] or null}``), edited with
``kafkaratchet-chainserver add-key`` / ``remove-key``, never by hand.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafkaratchet.errors import ConfigError, KafkaRatchetError
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.settings import ChainServerSettings, NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.node.topicsetup import TopicSpec, check_topics
from kafkaratchet.node.trusttopics import chain_record_key
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, topics_narrow
from kafkaratchet.protocol.identity import PUBLIC_KEY_SIZE, fingerprint

__all__ = ["KafkaCryptoChainServer", "ServedKey"]

log = logging.getLogger(__name__)

SECTION = "chainserver-keys"


@dataclass(frozen=True)
class ServedKey:
    public_key: bytes
    usages: frozenset[str]
    topics: tuple[str, ...] | None

    def to_config(self) -> str:
        return json.dumps({"usages": sorted(self.usages), "topics": list(self.topics) if self.topics else None})

    @classmethod
    def from_config(cls, name: str, text: str) -> ServedKey:
        try:
            key = bytes.fromhex(name)
            data = json.loads(text)
            usages = frozenset(str(u) for u in data["usages"])
            topics = tuple(str(t) for t in data["topics"]) if data.get("topics") else None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"[{SECTION}] {name}: not a served key ({exc})") from None
        if len(key) != PUBLIC_KEY_SIZE or not usages:
            raise ConfigError(f"[{SECTION}] {name}: needs a 32-byte hex key and at least one usage")
        return cls(key, usages, topics)


class KafkaCryptoChainServer:
    """``KafkaCryptoChainServer(nodeID, config=None)``; ``start()`` runs it on a thread, ``close()`` stops it."""

    def __init__(self, nodeID: str | None, config: KafkaCryptoStore | str | os.PathLike[str] | None = None,  # noqa: N803
                 *, kp: Any = None) -> None:
        self.store = KafkaCryptoStore.open(nodeID, config)
        self.node_id = self.store.node_id
        self.settings = NodeSettings.from_store(self.store)
        chain_settings = ChainServerSettings.from_store(self.store)  # ConfigError naming key and file
        self.lifetime = chain_settings.chain_lifetime
        self.refresh_fraction = chain_settings.chain_refresh_fraction
        self.credentials = Credentials(self.store, clock_skew=self.settings.clock_skew)
        self._kp = kp
        # the chains topic is created when missing (and allowed), as a node creates its trust topics: a send to a
        # missing topic would block for the producer's max_block_ms (60 s) and fail
        self._admin_config = self.store.get_kafka_config("consumer", extra="crypto")
        self._creator = TopicCreator(self._admin_config, self.settings, enabled=self.settings.create_topics)
        # without Kafka settings of its own (a caller's kp) there is nothing to check the topic with
        self._topic_ready = not self._admin_config.get("bootstrap_servers")
        self._issued: dict[bytes, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the served keys
    def served(self) -> list[ServedKey]:
        return [ServedKey.from_config(name, str(text)) for name, text in
                sorted(self.store.load_section(SECTION).items())]

    def add_key(self, public_key: bytes, usages: set[str] | frozenset[str],
                topics: list[str] | tuple[str, ...] | None = None) -> ServedKey:
        """Serve ``public_key``: its chains carry ``usages`` on ``topics`` (None = all the server may grant)."""
        if len(public_key) != PUBLIC_KEY_SIZE:
            raise ConfigError("a served key is a 32-byte Ed25519 public key")
        unknown = set(usages) - Usage.ALL
        if unknown or not usages:
            raise ConfigError(f"unknown or no usages: {sorted(unknown) or '(none)'}")
        served = ServedKey(public_key, frozenset(usages), tuple(topics) if topics else None)
        self.store.store_value(public_key.hex(), served.to_config(), SECTION)
        with self._lock:
            self._issued.pop(public_key, None)  # issue at the next round with the new rights
        log.info("serving %s (%s)", fingerprint(public_key), ",".join(sorted(usages)))
        return served

    def remove_key(self, public_key: bytes) -> bool:
        if self.store.load_value(public_key.hex(), SECTION) is None:
            return False
        self.store.store_value(public_key.hex(), None, SECTION)
        with self._lock:
            self._issued.pop(public_key, None)
        log.info("no longer serving %s; its chain expires on its own", fingerprint(public_key))
        return True

    # ------------------------------------------------------------------ issuing
    def issue(self, served: ServedKey, now: float | None = None) -> Chain:
        """A fresh chain for ``served`` below our own chain-issue chain."""
        now = time.time() if now is None else now
        mine = self._issuing_chain(served)
        expiry = int(now) + self.lifetime
        cert = issue_certificate(self.credentials.identity, served.public_key, usages=served.usages,
                                 topics=served.topics, pathlen=0, expiry=expiry, not_before=int(now) - 60)
        return mine.extend(cert)

    def _issuing_chain(self, served: ServedKey) -> Chain:
        """Our first valid ``chain-issue`` chain that holds every usage *and* every topic ``served`` gets.

        A certificate never widens its parent, so a chain issued below a chain for other topics would be
        refused by every node: the topics decide the issuing chain as much as the usages do.
        """
        for chain in self.credentials.chains:
            try:
                checked = self.credentials.trust.validate(chain)
            except KafkaRatchetError:
                continue
            if (Usage.CHAIN_ISSUE in checked.usages and served.usages <= checked.usages
                    and topics_narrow(checked.topics, served.topics)):
                return chain
        topics = "all topics" if served.topics is None else f"topics {','.join(served.topics)}"
        raise ConfigError(f"no valid chain-issue chain of {self.node_id} covers usages "
                          f"{','.join(sorted(served.usages))} on {topics}")

    def run_once(self, now: float | None = None) -> int:
        """Issue and publish every chain that is missing or within its refresh window; returns how many
        (0 while the chains topic does not exist and cannot be created: an ERROR names it once)."""
        now = time.time() if now is None else now
        if not self._chains_topic_ready():
            return 0
        producer = self._producer()
        count = 0
        for served in self.served():
            with self._lock:
                expiry = self._issued.get(served.public_key)
            if expiry is not None and expiry - now > self.lifetime * self.refresh_fraction:
                continue
            try:
                chain = self.issue(served, now)
            except KafkaRatchetError as exc:
                log.error("cannot issue a chain for %s: %s", fingerprint(served.public_key), exc)
                continue
            producer.send(self.settings.chains_topic, key=chain_record_key(chain), value=chain.encode()).get(timeout=30)
            with self._lock:
                self._issued[served.public_key] = chain.leaf.expiry
            count += 1
            log.info("issued a %d s chain for %s", self.lifetime, fingerprint(served.public_key))
        return count

    def _chains_topic_ready(self) -> bool:
        """Whether the chains topic exists, creating it if it is missing; looked up again only after a backoff."""
        topic = self.settings.chains_topic
        if self._topic_ready or not self._creator.due(topic):
            return self._topic_ready
        try:
            exists = not check_topics(self._admin_config, [TopicSpec(topic)]).missing
        except Exception as exc:  # no broker yet: weather, looked up again after the backoff
            log.debug("cannot look up topic %s now: %s: %s", topic, type(exc).__name__, exc)
            return False
        if exists or topic in self._creator.ensure([topic]):
            self._creator.found(topic)
            self._topic_ready = True
        return self._topic_ready

    def _producer(self) -> Any:
        if self._kp is None:
            from kafka import KafkaProducer

            self._kp = KafkaProducer(**self.store.get_kafka_config("producer", extra="crypto"))
        return self._kp

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> KafkaCryptoChainServer:
        self._thread = threading.Thread(target=self._run, name=f"kafkaratchet-chainserver-{self.node_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = max(0.5, min(5.0, self.lifetime * self.refresh_fraction / 4))
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # broker weather must not kill the daemon
                log.warning("chain server %s: %s: %s (continuing)", self.node_id, type(exc).__name__, exc)
            self._stop.wait(interval)

    def close(self, timeout: float = 4.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._kp is not None:
            self._kp.close(timeout=1)
        log.info("chain server %s stopped", self.node_id)

    def __repr__(self) -> str:
        return f"KafkaCryptoChainServer(node_id={self.node_id!r}, lifetime={self.lifetime})"
