"""Record keys and broker settings that make the trust topics last.

The cluster-wide topics ``chains``, ``allowlist`` and ``denylist`` carry signed
trust records, and every node replays them from the beginning at each start. On
Apache Kafka a topic created with the broker defaults deletes records after 7
days (``cleanup.policy=delete``, ``retention.ms=604800000``): a node started
after that would never learn an old denial. A trust topic must therefore be
compacted, with no time-based deletion. Compaction keeps the latest record per
Kafka key and drops records that have none, so every writer sets a key:

* ``allowlist`` / ``denylist``: :func:`entry_record_key`, a digest of the whole
  record value. Every distinct entry (every denial) keeps its own key and
  survives; only byte-identical replays collapse into one.
* ``chains``: :func:`chain_record_key`, the subject key and a digest of the
  leaf's rights. A renewal with the same rights replaces the previous chain;
  distinct rights of one subject are all kept.

Readers never trust the key (it is not authenticated): compaction keeps
whatever record came last under a key, so only admins and the chain server may
write these topics (broker ACLs, README "Creating the topics").

Everything here is pure except :func:`check_trust_topics` and
:func:`start_trust_topic_check`, which ask the broker how the topics are
configured (best effort: a broker that cannot say, or a principal that may not
ask, yields no problems and a DEBUG line), so that a node can warn at start.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nacl.bindings import crypto_generichash_blake2b_salt_personal

from kafkaratchet.protocol import wire

if TYPE_CHECKING:
    from kafkaratchet.protocol.certs import Chain

__all__ = [
    "ENTRY_KEY_PREFIX",
    "CHAIN_KEY_PREFIX",
    "TRUST_TOPIC_CONFIGS",
    "TRUST_TOPIC_PARTITIONS",
    "TRUST_TOPIC_REPLICATION_FACTOR",
    "entry_record_key",
    "chain_record_key",
    "trust_topic_problems",
    "check_trust_topics",
    "start_trust_topic_check",
]

log = logging.getLogger(__name__)

#: Kafka record key of an ``allowlist`` / ``denylist`` record: this prefix, then 16 digest bytes.
ENTRY_KEY_PREFIX = b"kr-trust-v2:"
#: Kafka record key of a ``chains`` record: this prefix, the 32-byte subject key, then 16 digest bytes.
CHAIN_KEY_PREFIX = b"kr-chain-v1:"
KEY_DIGEST_SIZE = 16
_ENTRY_PERSON = b"kr-trust-entry".ljust(16, b"\x00")
_CHAIN_PERSON = b"kr-chain-rights".ljust(16, b"\x00")

#: Topic configs for ``chains``, ``allowlist`` and ``denylist`` (``kafka-topics.sh --create --config k=v``):
#: compacted and never deleted by age or size, compaction held back a day so that every version stays
#: readable for a while (audit, slow readers), and no acknowledged entry lost to a replica election.
TRUST_TOPIC_CONFIGS: Mapping[str, str] = MappingProxyType({
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "min.compaction.lag.ms": "86400000",
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
})
TRUST_TOPIC_PARTITIONS = 1
TRUST_TOPIC_REPLICATION_FACTOR = 3

# what Apache Kafka uses when a topic does not override it (describe_configs reports these anyway)
_KAFKA_DEFAULT_RETENTION_MS = "604800000"
_KAFKA_DEFAULT_RETENTION_BYTES = "-1"
_ADMIN_TIMEOUT_MS = 10_000
_ADMIN_TIMEOUT_KEYS = ("request_timeout_ms", "bootstrap_timeout_ms", "api_version_auto_timeout_ms")


def _digest(data: bytes, person: bytes) -> bytes:
    return crypto_generichash_blake2b_salt_personal(data, digest_size=KEY_DIGEST_SIZE, person=person)


def entry_record_key(value: bytes) -> bytes:
    """The Kafka key of an ``allowlist`` / ``denylist`` record whose value is ``value`` (the encoded update).

    ``b"kr-trust-v2:" || BLAKE2b-128(value, personal="kr-trust-entry")``: distinct entries get distinct
    keys, so compaction keeps each of them; a byte-identical replay gets the same key and collapses.
    """
    return ENTRY_KEY_PREFIX + _digest(bytes(value), _ENTRY_PERSON)


def chain_record_key(chain: Chain) -> bytes:
    """The Kafka key of a ``chains`` record carrying ``chain``.

    ``b"kr-chain-v1:" || leaf.subject || BLAKE2b-128(msgpack([usages, topics, pathlen]),
    personal="kr-chain-rights")`` with the leaf's usages sorted, its topics sorted without duplicates
    (nil for every topic) and its pathlen (nil for none). Validity times and issuers are left out: a
    renewal of the same rights replaces the chain it renews, while each distinct set of rights a
    subject holds keeps its own latest chain.
    """
    leaf = chain.leaf
    topics = None if leaf.topics is None else sorted(set(leaf.topics))
    rights = wire.pack([sorted(leaf.usages), topics, leaf.pathlen])
    return CHAIN_KEY_PREFIX + bytes(leaf.subject) + _digest(rights, _CHAIN_PERSON)


def _limit(text: str) -> int | None:
    """A retention limit as an int, None when unlimited (Kafka: any negative value, -1 by convention);
    an unreadable value counts as a limit (0)."""
    try:
        number = int(text.strip())
    except ValueError:
        return 0
    return None if number < 0 else number


def _shown(text: str) -> str:
    """A value the broker reported, fit for a log line (at most 64 printable characters)."""
    return "".join(c if c.isprintable() else "?" for c in text[:64])


def _fix(topic: str, configs: str) -> str:
    return (f"kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name {topic} "
            f"--add-config {configs}")


def trust_topic_problems(topic: str, configs: Mapping[str, str | None]) -> list[str]:
    """What in ``configs`` (a topic's config name -> value, as the broker describes it) loses or piles up
    trust records, each naming the topic and the fix; empty when nothing does. An absent key takes
    Apache Kafka's default (``cleanup.policy=delete``, ``retention.ms`` 7 days, ``retention.bytes=-1``)."""
    policy = configs.get("cleanup.policy")
    policy = "delete" if policy is None else policy
    policies = {p.strip().lower() for p in policy.split(",")} - {""}
    policy = _shown(policy)
    problems: list[str] = []
    limits = []
    if "delete" in policies:
        for name, default in (("retention.ms", _KAFKA_DEFAULT_RETENTION_MS),
                              ("retention.bytes", _KAFKA_DEFAULT_RETENTION_BYTES)):
            text = configs.get(name)
            text = default if text is None else text
            if _limit(text) is not None:
                limits.append(f"{name}={_shown(text)}")
    if limits:
        problems.append(
            f"trust topic {topic}: cleanup.policy={policy} with {' and '.join(limits)} deletes trust entries, "
            "so a node started later never learns them (an old denial is forgotten). Fix: "
            f"{_fix(topic, 'cleanup.policy=compact,retention.ms=-1,retention.bytes=-1')} (re-publish entries "
            "written without a key first: compaction drops them; README, \"Creating the topics\")")
    elif "compact" not in policies:
        problems.append(
            f"trust topic {topic}: not compacted (cleanup.policy={policy}): every renewed chain and replayed "
            f"entry piles up and every node replays them all at start. Fix: {_fix(topic, 'cleanup.policy=compact')}"
            " (re-publish entries written without a key first: compaction drops them; README, \"Creating the "
            "topics\")")
    if str(configs.get("unclean.leader.election.enable") or "false").strip().lower() == "true":
        problems.append(
            f"trust topic {topic}: unclean.leader.election.enable=true can lose acknowledged trust entries "
            f"when a lagging replica becomes leader. Fix: {_fix(topic, 'unclean.leader.election.enable=false')}")
    return problems


# ---------------------------------------------------------------------------------- asking the broker


class _RedactAdminConfig(logging.Filter):
    """kafka-python's admin client logs its whole configuration (SASL and SSL passwords included) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Starting KafkaAdminClient with configuration"):
            record.msg = "Starting KafkaAdminClient (configuration not logged by kafkaratchet)"
            record.args = ()
        return True


_REDACT = _RedactAdminConfig()


def _admin_config(kafka_config: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """The keys of a node's Kafka settings the admin client knows (drops consumer-only keys and
    deserializers), with timeouts capped so that a check never lingers."""
    accepted = set(known)
    config = {k: v for k, v in kafka_config.items() if k in accepted}
    for key in _ADMIN_TIMEOUT_KEYS:
        if key in accepted:
            current = config.get(key)
            config[key] = min(current, _ADMIN_TIMEOUT_MS) if isinstance(current, int) else _ADMIN_TIMEOUT_MS
    if "client_id" in accepted:
        config.setdefault("client_id", "kafkaratchet-trust-check")
    return config


def _described(answer: Any) -> dict[str, dict[str, str | None] | str]:
    """Topic name -> {config: value}, or -> why nothing is known, from either kafka-python's answer:
    3.x returns {"topic": {name: {config: {"value": ...}}}} (per-topic errors dropped: no configs);
    2.x returns the raw responses, each resource a tuple (error_code, message, type, name, entries)."""
    out: dict[str, dict[str, str | None] | str] = {}
    if isinstance(answer, Mapping):
        for name, configs in dict(answer.get("topic") or {}).items():
            out[str(name)] = {str(k): (v.get("value") if isinstance(v, Mapping) else v)
                              for k, v in dict(configs or {}).items()}
        return out
    for response in answer or ():
        for resource in getattr(response, "resources", None) or ():
            error_code, _message, _type, name, entries = tuple(resource)[:5]
            if error_code:
                out[str(name)] = f"error code {error_code}"
            else:
                out[str(name)] = {str(entry[0]): entry[1] for entry in entries or ()}
    return out


def _check(kafka_config: Mapping[str, Any], topics: list[str]) -> list[tuple[str, str]]:
    """(topic, problem) pairs; never raises."""
    if not kafka_config.get("bootstrap_servers"):
        # the node's clients were built elsewhere (or are stand-ins): no cluster named here to ask
        log.debug("trust topic check skipped: the node's Kafka settings name no bootstrap servers")
        return []
    try:
        from kafka import KafkaAdminClient
        from kafka.admin import ConfigResource, ConfigResourceType
        from kafka.errors import KafkaError
    except ImportError as exc:
        log.debug("trust topic check skipped: kafka-python admin client unavailable (%s)", exc)
        return []
    logging.getLogger("kafka.admin.client").addFilter(_REDACT)
    admin = None
    try:
        admin = KafkaAdminClient(**_admin_config(kafka_config, KafkaAdminClient.DEFAULT_CONFIG))
        # every config of the topics, not a named few: Tansu drops the connection when names are given
        resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        if "config_filter" in inspect.signature(admin.describe_configs).parameters:
            answer = admin.describe_configs(resources, config_filter="all")  # kafka-python 3.x
        else:
            answer = admin.describe_configs(resources)  # kafka-python 2.x
        described = _described(answer)
    except KafkaError as exc:
        log.debug("trust topic check skipped: cannot describe topic configs: %s: %s", type(exc).__name__, exc)
        return []
    except Exception as exc:  # best effort: an unexpected client failure must not reach the node
        log.debug("trust topic check skipped: %s: %s", type(exc).__name__, exc)
        return []
    finally:
        if admin is not None:
            try:
                admin.close()
            except Exception as exc:  # closing is best effort too
                log.debug("closing the trust check's admin client: %s: %s", type(exc).__name__, exc)
    found: list[tuple[str, str]] = []
    for topic in topics:
        configs = described.get(topic)
        if isinstance(configs, str) or not configs or configs.get("cleanup.policy") is None:
            # missing topic, no DescribeConfigs right (kafka-python 3.x drops that error), or a broker
            # that reports only what a topic overrides (Tansu): nothing can be concluded
            log.debug("trust topic check: no cleanup.policy reported for %s (%s)", topic,
                      configs if isinstance(configs, str) else "topic missing, not authorised, or not reported")
            continue
        found += [(topic, problem) for problem in trust_topic_problems(topic, configs)]
    return found


def check_trust_topics(kafka_config: dict[str, Any], topics: list[str]) -> list[str]:
    """What is wrong with the trust ``topics``, as the broker describes them; [] when nothing is, or when
    it cannot be known (no DescribeConfigs support or right, missing topic: logged at DEBUG). Takes a
    node's kafka-python settings (keys the admin client does not know are dropped); never raises."""
    return [problem for _topic, problem in _check(kafka_config, list(topics))]


def _warn(kafka_config: dict[str, Any], topics: list[str]) -> None:
    for _topic, problem in _check(kafka_config, topics):
        log.warning("%s", problem)


def start_trust_topic_check(kafka_config: dict[str, Any], topics: list[str]) -> threading.Thread:
    """Check the trust ``topics`` on a short-lived daemon thread (a node's readiness does not wait for
    it) that logs one WARNING per problem, naming the topic and the fix."""
    thread = threading.Thread(target=_warn, args=(dict(kafka_config), list(topics)),
                              name="kafkaratchet-trust-topic-check", daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:  # no thread to spare: the check is advice, the node goes on without it
        log.debug("trust topic check not started: %s", exc)
    return thread
