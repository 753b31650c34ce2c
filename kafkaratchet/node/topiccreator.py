"""A node creating the key-exchange and trust topics it needs, or saying which are missing.

Used by the exchange loop's :class:`~kafkaratchet.node.subscriptions.Subscriptions` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node.topicsetup import (
    EXCHANGE_TOPIC_CONFIGS,
    TopicSpec,
    create_command,
    ensure_topics,
    trust_topic_specs,
)

__all__ = ["TopicCreator"]

log = logging.getLogger(__name__)

_MIN_BACKOFF = 1.0
_MAX_BACKOFF = 60.0


class TopicCreator:
    """A node's side: create a missing key-exchange or trust topic when allowed, else say which is missing.

    Each topic is tried again only after a backoff (1 s, doubling to 60 s), so a topic that does not
    exist costs no request a second; ``missing`` names the topics the node could neither find nor create.
    """

    def __init__(self, kafka_config: Mapping[str, Any], settings: NodeSettings, *, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = dict(kafka_config)
        self._settings = settings
        self.enabled = enabled and bool(kafka_config.get("bootstrap_servers"))
        self._clock = clock
        self._next: dict[str, tuple[float, float]] = {}  # topic -> (next attempt, current delay)
        #: topic -> why it is missing (the node's principal may not create it, or creation failed)
        self.missing: dict[str, str] = {}
        #: a ``KafkaAdminClient`` to create topics with (the running loop's lookup client); None: one per attempt
        self.admin: Any = None

    def spec(self, topic: str) -> TopicSpec:
        s = self._settings
        if topic in (s.chains_topic, s.allowlist_topic, s.denylist_topic):
            return trust_topic_specs([topic])[0]
        if topic.endswith((s.reqs_suffix, s.keys_suffix, s.subs_suffix)):
            return TopicSpec(topic, configs=EXCHANGE_TOPIC_CONFIGS)
        return TopicSpec(topic)

    def due(self, topic: str) -> bool:
        """Whether ``topic`` may be looked up (and created) now; each call that says yes starts a backoff."""
        now = self._clock()
        at, delay = self._next.get(topic, (0.0, 0.0))
        if now < at:
            return False
        delay = min(_MAX_BACKOFF, max(_MIN_BACKOFF, delay * 2))
        self._next[topic] = (now + delay, delay)
        return True

    def found(self, topic: str) -> None:
        """``topic`` exists now: forget its backoff and its problem."""
        self._next.pop(topic, None)
        self.missing.pop(topic, None)

    def ensure(self, topics: Sequence[str]) -> list[str]:
        """Create those of ``topics`` that do not exist; returns the ones that exist now."""
        if not topics:
            return []
        if not self.enabled:
            for topic in topics:
                self._missing(topic, "it does not exist and topic creation is off ([crypto] create_topics)")
            return []
        try:
            result = ensure_topics(self._config, [self.spec(t) for t in topics], admin=self.admin)
        except Exception as exc:  # no broker, a client error: weather, tried again after the backoff
            log.debug("cannot create topics %s now: %s: %s", ", ".join(topics), type(exc).__name__, exc)
            return []
        for topic in result.forbidden:
            self._missing(topic, "it does not exist and this node's principal may not create it")
        for topic, why in result.failed.items():
            self._missing(topic, f"it does not exist and creating it failed ({why})")
        return result.existing + result.created

    def _missing(self, topic: str, why: str) -> None:
        first = topic not in self.missing
        self.missing[topic] = why
        if first:
            log.error("topic %s is missing: %s. An administrator creates it with: %s", topic, why,
                      create_command([self.spec(topic)], settings=self._settings))
