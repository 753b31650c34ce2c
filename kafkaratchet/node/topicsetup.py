"""The topics a root and the trust layer need, with their settings, and creating them.

A cluster without automatic topic creation (the norm for production Apache
Kafka) must have ``R.reqs``, ``R.keys``, ``R.subs`` for every root, and the
cluster-wide ``chains``, ``allowlist`` and ``denylist``, before nodes use them
(names and suffixes as the node's ``[crypto]`` settings say). They are created
by ``kafkaratchet topics create`` (an administrator), or by a node itself when
its principal may create topics; otherwise the node logs an ERROR naming the
missing topic and the command (:class:`~kafkaratchet.node.topiccreator.TopicCreator`).

The key-exchange topics keep their records for a day: a request or an answer
matters for minutes, and a day leaves room for a consumer that was down. The
trust topics are compacted and never expire (:mod:`kafkaratchet.node.trusttopics`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node.trusttopics import (
    _REDACT,
    TRUST_TOPIC_CONFIGS,
    TRUST_TOPIC_PARTITIONS,
    _admin_config,
    check_trust_topics,
)

__all__ = [
    "TRUST_TOPICS",
    "EXCHANGE_TOPIC_CONFIGS",
    "MAX_TOPIC_NAME",
    "TopicSpec",
    "Ensured",
    "Checked",
    "exchange_topic_specs",
    "trust_topic_specs",
    "node_topic_specs",
    "trust_topic_names",
    "root_name_problem",
    "ensure_topics",
    "check_topics",
    "create_command",
]

log = logging.getLogger(__name__)

#: The cluster-wide trust topics every node replays from the beginning (their default names).
TRUST_TOPICS: tuple[str, ...] = ("chains", "allowlist", "denylist")

#: Settings of ``R.reqs`` / ``R.keys`` / ``R.subs``: records matter for minutes; a day bounds the disk.
EXCHANGE_TOPIC_CONFIGS: Mapping[str, str] = MappingProxyType({
    "cleanup.policy": "delete",
    "retention.ms": "86400000",
})

#: Kafka's limit on a topic name, and the characters it allows.
MAX_TOPIC_NAME = 249
_LEGAL = re.compile(r"[A-Za-z0-9._-]+")
_MIN_ISR = "min.insync.replicas"
_AUTHORIZATION_ERRORS = ("TopicAuthorizationFailedError", "ClusterAuthorizationFailedError")


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: ``partitions`` / ``replication_factor`` of -1 take the broker's defaults."""

    name: str
    partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Ensured:
    """What :func:`ensure_topics` found: topics that existed, it created, it may not create, or failed.

    ``notes`` says what was adapted to the cluster (a lowered ``min.insync.replicas``), and ``asked`` holds
    each topic as creation was asked for, adaptations included.
    """

    existing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    asked: dict[str, TopicSpec] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        return self.forbidden + sorted(self.failed)


@dataclass
class Checked:
    """What :func:`check_topics` found: topics that exist, topics that do not, and trust-topic problems."""

    existing: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    #: trust topic -> what is wrong with its settings (each naming the fix)
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problems


def exchange_topic_specs(root: str, *, reqs_suffix: str = ".reqs", keys_suffix: str = ".keys",
                         subs_suffix: str = ".subs", partitions: int = -1,
                         replication_factor: int = -1) -> list[TopicSpec]:
    """``R.reqs``, ``R.keys`` and ``R.subs`` of ``root`` (-1: the broker's default partitions / replication)."""
    return [TopicSpec(root + suffix, partitions, replication_factor, EXCHANGE_TOPIC_CONFIGS)
            for suffix in (reqs_suffix, keys_suffix, subs_suffix)]


def trust_topic_specs(topics: Iterable[str] = TRUST_TOPICS, *, replication_factor: int = -1) -> list[TopicSpec]:
    """``chains``, ``allowlist``, ``denylist``: one partition (one order), compacted, never expiring.

    With an explicit ``replication_factor`` below ``min.insync.replicas`` (2), the latter is lowered to
    it: otherwise no ``acks=all`` write could ever succeed.
    """
    configs = dict(TRUST_TOPIC_CONFIGS)
    if 0 < replication_factor < int(configs[_MIN_ISR]):
        configs[_MIN_ISR] = str(replication_factor)
    return [TopicSpec(name, TRUST_TOPIC_PARTITIONS, replication_factor, MappingProxyType(configs))
            for name in topics]


def trust_topic_names(settings: NodeSettings) -> tuple[str, str, str]:
    """The trust topics as ``settings`` name them: chains, allowlist, denylist."""
    return settings.chains_topic, settings.allowlist_topic, settings.denylist_topic


def node_topic_specs(settings: NodeSettings, roots: Iterable[str] = (), *, trust: bool = False,
                     partitions: int = -1, replication_factor: int = -1) -> list[TopicSpec]:
    """Every topic ``roots`` need (their key-exchange topics) and, with ``trust``, the trust topics,
    named as ``settings`` say; ``partitions`` applies to the key-exchange topics only."""
    specs: list[TopicSpec] = []
    for root in dict.fromkeys(roots):
        specs += exchange_topic_specs(root, reqs_suffix=settings.reqs_suffix, keys_suffix=settings.keys_suffix,
                                      subs_suffix=settings.subs_suffix, partitions=partitions,
                                      replication_factor=replication_factor)
    if trust:
        specs += trust_topic_specs(trust_topic_names(settings), replication_factor=replication_factor)
    return specs


def root_name_problem(root: str, settings: NodeSettings) -> str | None:
    """Why ``root`` cannot be a root topic whose key-exchange topics are created, or None."""
    if not root:
        return "a root topic name is empty"
    separator = settings.topic_separator
    if separator and separator in root:
        return (f"{root} is not a root topic: a root ends at the first {separator!r} "
                f"(its root is {settings.root(root)})")
    longest = max((settings.reqs_suffix, settings.keys_suffix, settings.subs_suffix), key=len)
    for name in (root, root + longest):
        if not _LEGAL.fullmatch(name) or name in (".", ".."):
            return f"{name} is not a legal Kafka topic name (letters, digits, '.', '_', '-')"
        if len(name) > MAX_TOPIC_NAME:
            return f"{name} is longer than Kafka's {MAX_TOPIC_NAME} characters"
    return None


def create_command(specs: Sequence[TopicSpec], *, settings: NodeSettings | None = None,
                   config: str = "NODE.config", bootstrap_servers: str | None = None) -> str:
    """The command an administrator runs to create ``specs`` (named in errors and logs): with the node
    config ``config``, or with ``bootstrap_servers`` instead when given (default names only)."""
    s = settings or NodeSettings()
    trust_names = trust_topic_names(s)
    suffixes = (s.reqs_suffix, s.keys_suffix, s.subs_suffix)
    roots = sorted({next((n.name[:-len(x)] for x in suffixes if n.name.endswith(x)), n.name)
                    for n in specs if n.name not in trust_names})
    connect = f"--bootstrap-servers {bootstrap_servers}" if bootstrap_servers else f"--config {config}"
    parts = [f"kafkaratchet topics create {connect}", *(f"--root {r}" for r in roots)]
    if any(n.name in trust_names for n in specs):
        parts.append("--trust")
    return " ".join(parts)


# ---------------------------------------------------------------------------------- asking the broker


def _admin(kafka_config: Mapping[str, Any]) -> Any:
    from kafka import KafkaAdminClient

    logging.getLogger("kafka.admin.client").addFilter(_REDACT)
    return KafkaAdminClient(**_admin_config(kafka_config, KafkaAdminClient.DEFAULT_CONFIG))


def _fit_to_cluster(admin: Any, specs: list[TopicSpec], notes: list[str]) -> list[TopicSpec]:
    """Lower ``min.insync.replicas`` of specs whose replicas cannot reach it (fewer brokers than that):
    on a one-broker cluster a trust topic with 2 would refuse every ``acks=all`` write."""
    if not any(_MIN_ISR in s.configs and s.replication_factor <= 0 for s in specs):
        return specs
    try:
        brokers = len(admin.describe_cluster().get("brokers") or ())
    except Exception as exc:  # a broker that cannot say: keep the settings as asked
        log.debug("cannot count the brokers: %s: %s", type(exc).__name__, exc)
        return specs
    fitted = []
    for spec in specs:
        wanted = spec.configs.get(_MIN_ISR)
        if (spec.replication_factor <= 0 and brokers and wanted is not None and wanted.isdigit()
                and int(wanted) > brokers):
            spec = replace(spec, configs=MappingProxyType({**spec.configs, _MIN_ISR: str(brokers)}))
            notes.append(f"{spec.name}: {_MIN_ISR}={brokers} instead of {wanted}: the cluster has {brokers} "
                         f"broker{'s' if brokers != 1 else ''}")
        fitted.append(spec)
    return fitted


def _error_text(error_type: Any, message: str | None) -> str:
    name = getattr(error_type, "__name__", str(error_type))
    message = " ".join((message or "").split())
    return f"{name}: {message}" if message else name


def ensure_topics(kafka_config: Mapping[str, Any], specs: Sequence[TopicSpec], *,
                  admin: Any = None) -> Ensured:
    """Create those of ``specs`` that do not exist; never raises for what the broker answers per topic.

    ``kafka_config`` is a node's kafka-python settings (keys the admin client does not know are
    dropped); ``admin`` is an existing ``KafkaAdminClient`` to use instead. A client that cannot reach
    the cluster (or authenticate) raises its ``KafkaError``.
    """
    from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    result = Ensured()
    own = admin is None
    if own:
        admin = _admin(kafka_config)
    try:
        present = set(admin.list_topics())
        wanted = []
        for spec in specs:
            (result.existing.append(spec.name) if spec.name in present else wanted.append(spec))
        wanted = _fit_to_cluster(admin, wanted, result.notes)
        for spec in wanted:  # one at a time: one refusal must not hide which others were created
            result.asked[spec.name] = spec
            request = {spec.name: {"num_partitions": spec.partitions, "replication_factor": spec.replication_factor,
                                   "configs": dict(spec.configs)}}
            try:
                answer = admin.create_topics(request, raise_errors=False)
                error_type, message = None, None
                for topic in answer.get("topics") or ():
                    if topic.get("name") == spec.name and topic.get("error_code"):
                        error_type, message = for_code(topic["error_code"]), topic.get("error_message")
            except KafkaError as exc:  # kafka-python's text names the error already
                text, name = " ".join(str(exc).split()), type(exc).__name__
                message = text.split(f"{name}:", 1)[1].strip() if f"{name}:" in text else text.replace(name, "")
                error_type = type(exc)
            if error_type is None:
                result.created.append(spec.name)
                log.info("created topic %s (%s)", spec.name,
                         ", ".join(f"{k}={v}" for k, v in sorted(spec.configs.items())) or "broker defaults")
            elif error_type is TopicAlreadyExistsError:
                result.existing.append(spec.name)  # another node was quicker
            elif getattr(error_type, "__name__", "") in _AUTHORIZATION_ERRORS:
                result.forbidden.append(spec.name)
            else:
                result.failed[spec.name] = _error_text(error_type, message)
    finally:
        if own:
            admin.close()
    return result


def check_topics(kafka_config: Mapping[str, Any], specs: Sequence[TopicSpec], *,
                 trust: Iterable[str] = (), admin: Any = None) -> Checked:
    """Which of ``specs`` exist, and what is wrong with the settings of those named in ``trust``
    (:func:`~kafkaratchet.node.trusttopics.check_trust_topics`: nothing is found where the principal may
    not describe configs). A client that cannot reach the cluster raises its ``KafkaError``."""
    result = Checked()
    own = admin is None
    if own:
        admin = _admin(kafka_config)
    try:
        present = set(admin.list_topics())
    finally:
        if own:
            admin.close()
    for spec in specs:
        (result.existing if spec.name in present else result.missing).append(spec.name)
    trust_existing = [name for name in dict.fromkeys(trust) if name in present]
    if trust_existing:
        for problem in check_trust_topics(dict(kafka_config), trust_existing):
            topic = next((t for t in trust_existing if problem.startswith(f"trust topic {t}:")), "")
            result.problems.setdefault(topic, []).append(problem)
    return result
