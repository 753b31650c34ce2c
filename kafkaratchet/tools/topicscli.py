"""``kafkaratchet topics create|check``: the key-exchange and trust topics, with the settings nodes need.

Import-light (the standard library and the runner): the Kafka client and the node's modules are
imported when a command runs, not for ``--help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.tools.clirunner import ArgumentParser, UsageError

if TYPE_CHECKING:
    from kafkaratchet.files.settings import NodeSettings
    from kafkaratchet.node.topicsetup import TopicSpec

__all__ = ["TopicSetupError", "add_topics_parser", "main"]


class TopicSetupError(KafkaRatchetError):
    """Topics could not be created or are not as nodes need them (exit status 1)."""


_COMMON_HELP = {
    "config": "the node config whose [crypto] settings name the topics (suffixes, trust topic names) and "
              "whose [kafka] / [kafka-crypto] sections say how to connect (bootstrap servers, SASL, SSL); "
              "without it the default names and --bootstrap-servers (plaintext) are used",
    "root": "a root topic (the name up to the first '.'): its R.reqs, R.keys and R.subs; repeatable",
    "trust": "the cluster-wide trust topics chains, allowlist and denylist",
    "bootstrap": "connect here instead of the config's bootstrap_servers",
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="NODE.config", help=_COMMON_HELP["config"])
    parser.add_argument("--root", action="append", default=[], metavar="R", help=_COMMON_HELP["root"])
    parser.add_argument("--trust", action="store_true", help=_COMMON_HELP["trust"])
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", help=_COMMON_HELP["bootstrap"])


def add_topics_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    """``topics`` with its ``create`` and ``check`` actions, under the ``kafkaratchet`` command."""
    topics = commands.add_parser(
        "topics", help="create or check the key-exchange and trust topics (a cluster without auto-creation)",
        description="Create or check the topics kafkaratchet needs on a cluster that does not create topics "
                    "by itself: R.reqs, R.keys and R.subs for each root R (deleted after a day), and the trust "
                    "topics chains, allowlist and denylist (one partition, compacted, never expiring). Names "
                    "follow the node config's [crypto] settings. Exit status 0 when every topic exists as "
                    "nodes need it, 1 when one could not be created or is wrong (each named, with why), 2 for "
                    "a bad command line or config.")
    actions = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create the topics that do not exist yet",
        description="Create those of the topics that do not exist yet, with the settings nodes need, and print "
                    "one line per topic: created (with its settings), exists, or refused / failed and why "
                    "(e.g. the principal may not create topics: it needs Create on the topic or the cluster). "
                    "Existing trust topics are checked too: a wrong setting is printed with its fix and makes "
                    "the exit status 1.",
        epilog="example: kafkaratchet topics create --config admin.config --root orders --root payments --trust")
    _add_common(create)
    create.add_argument("--partitions", type=_positive, metavar="N",
                        help="partitions of each key-exchange topic (default: the broker's num.partitions); "
                             "trust topics always have 1")
    create.add_argument("--replication-factor", type=_positive, metavar="N",
                        help="replicas of each topic (default: the broker's default.replication.factor); "
                             "below 2, the trust topics' min.insync.replicas is lowered to it")
    check = actions.add_parser(
        "check", help="report missing topics and trust topics that lose entries",
        description="Report which of the topics do not exist, and trust topics whose settings delete entries, "
                    "are not compacted, or allow unclean leader election (each with its fix). Settings are "
                    "checked where the principal may describe them (DescribeConfigs); nothing is reported "
                    "otherwise. Exit status 1 when anything is missing or wrong.",
        epilog="example: kafkaratchet topics check --config admin.config --root orders --trust")
    _add_common(check)


# ---------------------------------------------------------------------------------------- running


def _principal(config: Mapping[str, Any]) -> str:
    """Who the broker will think we are, for messages (never a secret)."""
    protocol = str(config.get("security_protocol") or "PLAINTEXT").upper()
    user = config.get("sasl_plain_username")
    if protocol.startswith("SASL") and user:
        return f"User:{user}"
    if protocol == "SSL":
        return "the principal of the client certificate"
    if protocol == "PLAINTEXT":
        return "User:ANONYMOUS"
    return "this client's principal"


def _settings_and_config(args: argparse.Namespace) -> tuple[NodeSettings, dict[str, Any]]:
    from kafkaratchet.files.settings import NodeSettings
    from kafkaratchet.files.store import KafkaCryptoStore

    if args.config is not None:
        store = KafkaCryptoStore(args.config)
        settings = NodeSettings.from_store(store)
        settings.validate(store.path)
        config = store.get_kafka_config("consumer", extra="crypto")
        config.pop("group_id", None)
        where = f"bootstrap_servers in the [kafka] section of {args.config}"
    else:
        settings, config, where = NodeSettings(), {}, "--config NODE.config"
    if args.bootstrap_servers:
        config["bootstrap_servers"] = args.bootstrap_servers
    if not config.get("bootstrap_servers"):
        raise UsageError(f"no Kafka cluster named: give --bootstrap-servers or {where}")
    return settings, config


def _specs(args: argparse.Namespace, settings: NodeSettings) -> list[TopicSpec]:
    from kafkaratchet.node.topicsetup import node_topic_specs, root_name_problem

    for root in args.root:
        problem = root_name_problem(root, settings)
        if problem:
            raise UsageError(f"--root {root}: {problem}")
    return node_topic_specs(settings, args.root, trust=args.trust,
                            partitions=getattr(args, "partitions", None) or -1,
                            replication_factor=getattr(args, "replication_factor", None) or -1)


def _unreachable(config: Mapping[str, Any], exc: BaseException) -> TopicSetupError:
    name = type(exc).__name__
    message = " ".join(str(exc).split()).removeprefix(f"{name}: ").removeprefix(name).strip()
    detail = f"{name}: {message}" if message else name
    return TopicSetupError(f"cannot work with Kafka at {config.get('bootstrap_servers')} as "
                           f"{_principal(config)}: {detail}")


def _settings_text(spec: TopicSpec) -> str:
    shape = []
    if spec.partitions > 0:
        shape.append(f"partitions={spec.partitions}")
    if spec.replication_factor > 0:
        shape.append(f"replication.factor={spec.replication_factor}")
    return " ".join(shape + [f"{k}={v}" for k, v in sorted(spec.configs.items())])


def _row(out: TextIO, state: str, topic: str, text: str = "") -> None:
    out.write(f"{state:<8} {topic}{'  ' + text if text else ''}\n")


def _create(args: argparse.Namespace, out: TextIO) -> int:
    from kafka.errors import KafkaError

    from kafkaratchet.node.topicsetup import ensure_topics, trust_topic_names
    from kafkaratchet.node.trusttopics import check_trust_topics

    settings, config = _settings_and_config(args)
    specs = _specs(args, settings)
    try:
        result = ensure_topics(config, specs)
    except KafkaError as exc:
        raise _unreachable(config, exc) from None
    by_name = {spec.name: spec for spec in specs}
    forbidden = (f"not authorised: {_principal(config)} may not create it (it needs Create on the topic "
                 "or on the cluster)")
    why = {**{name: forbidden for name in result.forbidden}, **result.failed}
    for note in result.notes:
        _row(out, "note", note)
    for spec in specs:
        if spec.name in result.created:
            _row(out, "created", spec.name, _settings_text(result.asked.get(spec.name, spec)))
        elif spec.name in result.existing:
            _row(out, "exists", spec.name)
        else:
            _row(out, "refused" if spec.name in result.forbidden else "failed", spec.name,
                 why.get(spec.name, "not created"))
    trust = [name for name in trust_topic_names(settings) if name in result.existing and name in by_name]
    problems = check_trust_topics(dict(config), trust) if args.trust and trust else []
    for problem in problems:
        _row(out, "problem", problem)
    out.flush()
    grouped: dict[str, list[str]] = {}  # one reason, all the topics it stopped, in the order given
    for spec in specs:
        if spec.name in result.forbidden or spec.name in result.failed:
            grouped.setdefault(why.get(spec.name, "not created"), []).append(spec.name)
    if grouped or problems:
        parts = []
        if grouped:
            count = sum(len(names) for names in grouped.values())
            reasons = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in grouped.items())
            parts.append(f"could not create {count} of {len(specs)} topics: {reasons}")
        if problems:
            wrong = sorted({name for name in trust if any(p.startswith(f'trust topic {name}:') for p in problems)})
            parts.append(f"trust topics set up so that they lose entries: {', '.join(wrong)} (fix printed above)")
        raise TopicSetupError("; ".join(parts))
    return 0


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from kafka.errors import KafkaError

    from kafkaratchet.node.topicsetup import check_topics, trust_topic_names

    settings, config = _settings_and_config(args)
    specs = _specs(args, settings)
    trust = trust_topic_names(settings) if args.trust else ()
    try:
        result = check_topics(config, specs, trust=trust)
    except KafkaError as exc:
        raise _unreachable(config, exc) from None
    for spec in specs:
        _row(out, "exists" if spec.name in result.existing else "missing", spec.name)
    for problems in result.problems.values():
        for problem in problems:
            _row(out, "problem", problem)
    out.flush()
    if result.ok:
        return 0
    parts = []
    if result.missing:
        missing_specs = [spec for spec in specs if spec.name in result.missing]
        parts.append(f"{len(result.missing)} of {len(specs)} topics missing ({', '.join(result.missing)}); "
                     f"create them with: {_command(args, missing_specs, settings)}")
    if result.problems:
        parts.append(f"trust topics set up so that they lose entries: {', '.join(sorted(result.problems))} "
                     "(fix printed above)")
    raise TopicSetupError("; ".join(parts))


def _command(args: argparse.Namespace, specs: list[TopicSpec], settings: NodeSettings) -> str:
    from kafkaratchet.node.topicsetup import create_command

    if args.config is not None:
        command = create_command(specs, settings=settings, config=str(args.config))
        return command + (f" --bootstrap-servers {args.bootstrap_servers}" if args.bootstrap_servers else "")
    return create_command(specs, settings=settings, bootstrap_servers=args.bootstrap_servers)


def main(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``topics create`` or ``topics check`` as parsed by :func:`add_topics_parser`."""
    if not args.root and not args.trust:
        raise UsageError("nothing to do: give --root R (repeatable) and/or --trust")
    if args.topics_command == "create":
        return _create(args, out)
    return _check(args, out)
