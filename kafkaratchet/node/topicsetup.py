"""The topics a root and the trust layer need, with their settings, and creating them.

A cluster without automatic topic creation (the norm for production Apache
Kafka) must have ``R.reqs``, ``R.keys``, ``R.subs`` for every root, and the
cluster-wide ``chains``, ``allowlist`` and ``denylist``, before nodes use them.
They are created by ``kafkaratchet topics create`` (an administrator), or by a
node itself when its principal may create topics; otherwise the node names the
missing topic and the command in a :class:`~kafkaratchet.errors.MissingTopicError`.

The key-exchange topics keep their records for a day: a request or an answer
matters for minutes, and a day leaves room for a consumer that was down. The
trust topics are compacted and never expire (:mod:`kafkaratchet.node.trusttopics`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node.trusttopics import (
    _REDACT,
    TRUST_TOPIC_CONFIGS,
    TRUST_TOPIC_PARTITIONS,
    _admin_config,
)

__all__ = [
    "TRUST_TOPICS",
    "EXCHANGE_TOPIC_CONFIGS",
    "TopicSpec",
    "Ensured",
    "exchange_topic_specs",
    "trust_topic_specs",
    "ensure_topics",
    "create_command",
]

log = logging.getLogger(__name__)

#: The cluster-wide trust topics every node replays from the beginning.
TRUST_TOPICS: tuple[str, ...] = ("chains", "allowlist", "denylist")

#: Settings of ``R.reqs`` / ``R.keys`` / ``R.subs``: records matter for minutes; a day bounds the disk.
EXCHANGE_TOPIC_CONFIGS: Mapping[str, str] = MappingProxyType({
    "cleanup.policy": "delete",
    "retention.ms": "86400000",
})


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: ``partitions`` / ``replication_factor`` of -1 take the broker's defaults."""

    name: str
    partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Ensured:
    """What :func:`ensure_topics` found: topics that existed, it created, it may not create, or failed."""

    existing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return self.forbidden + sorted(self.failed)


def exchange_topic_specs(root: str, *, reqs_suffix: str = ".reqs", keys_suffix: str = ".keys",
                         subs_suffix: str = ".subs") -> list[TopicSpec]:
    """``R.reqs``, ``R.keys`` and ``R.subs`` of ``root``: broker-default partitions and replication."""
    return [TopicSpec(root + suffix, configs=EXCHANGE_TOPIC_CONFIGS)
            for suffix in (reqs_suffix, keys_suffix, subs_suffix)]


def trust_topic_specs(topics: Iterable[str] = TRUST_TOPICS) -> list[TopicSpec]:
    """``chains``, ``allowlist``, ``denylist``: one partition (one order), compacted, never expiring."""
    return [TopicSpec(name, TRUST_TOPIC_PARTITIONS, -1, TRUST_TOPIC_CONFIGS) for name in topics]


def create_command(specs: Sequence[TopicSpec], *, settings: NodeSettings | None = None,
                   config: str = "NODE.config") -> str:
    """The command an administrator runs to create ``specs`` (named in errors and logs)."""
    s = settings or NodeSettings()
    trust_names = (s.chains_topic, s.allowlist_topic, s.denylist_topic)
    suffixes = (s.reqs_suffix, s.keys_suffix, s.subs_suffix)
    roots = sorted({next((n.name[:-len(x)] for x in suffixes if n.name.endswith(x)), n.name)
                    for n in specs if n.name not in trust_names})
    parts = [f"kafkaratchet topics create --config {config}", *(f"--root {r}" for r in roots)]
    if any(n.name in trust_names for n in specs):
        parts.append("--trust")
    return " ".join(parts)


def ensure_topics(kafka_config: Mapping[str, Any], specs: Sequence[TopicSpec], *,
                  admin: Any = None) -> Ensured:
    """Create those of ``specs`` that do not exist; never raises for what the broker answers.

    ``kafka_config`` is a node's kafka-python settings (keys the admin client does not know are
    dropped); ``admin`` is an existing ``KafkaAdminClient`` to use instead.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import (
        ClusterAuthorizationFailedError,
        KafkaError,
        TopicAlreadyExistsError,
        TopicAuthorizationFailedError,
    )

    result = Ensured()
    own = admin is None
    if own:
        logging.getLogger("kafka.admin.client").addFilter(_REDACT)
        admin = KafkaAdminClient(**_admin_config(kafka_config, KafkaAdminClient.DEFAULT_CONFIG))
    try:
        present = set(admin.list_topics())
        wanted = []
        for spec in specs:
            (result.existing.append(spec.name) if spec.name in present else wanted.append(spec))
        for spec in wanted:  # one at a time: one refusal must not hide which others were created
            topic = NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.configs))
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                result.existing.append(spec.name)  # another node was quicker
            except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                result.forbidden.append(spec.name)
            except KafkaError as exc:
                result.failed[spec.name] = f"{type(exc).__name__}: {exc}"
            else:
                result.created.append(spec.name)
                log.info("created topic %s (%s)", spec.name,
                         ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items())) or "broker defaults")
    finally:
        if own:
            admin.close()
    return result

