"""``kafkaratchet-controller --config C.config``: the controller daemon.

Several instances with the same ``group_id`` share the ``R.subs`` partitions;
stopping one hands its partitions to the others. SIGTERM stops it within 5 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafkaratchet.tools.clirunner import ArgumentParser, add_verbosity_flags, run

from .daemon import stop_event

PROG = "kafkaratchet-controller"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Judge key requests of subscribe-only nodes on every R.subs topic, re-sign the allowed ones "
                    "and forward them to R.reqs. Each decision about an identified requester is one audit line "
                    "on the kafkaratchet.audit logger; records that do not verify are summed up once a minute.")
    parser.add_argument("--config", required=True, type=Path, help="the controller node's .config file")
    parser.add_argument("--group-id", help="consumer group shared by cooperating controllers (default: "
                                           "[kafka-crypto-consumer] group_id, else 'kafkaratchet-controller')")
    add_verbosity_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when stopped; 2 for a bad command line or config, 1 when the brokers fail it."""
    # the audit lines are this daemon's output, not diagnostics: shown unless -q
    return run(PROG, build_parser(), _serve, argv, always_info=("kafkaratchet.audit",))


def _serve(args: argparse.Namespace) -> int:
    stop = stop_event()
    from kafka import KafkaConsumer, KafkaProducer

    from kafkaratchet.files.store import KafkaCryptoStore
    from kafkaratchet.services.controller import KafkaCryptoController

    store = KafkaCryptoStore(args.config)
    consumer_config = store.get_kafka_config("consumer", extra="crypto")
    consumer_config["group_id"] = args.group_id or consumer_config.get("group_id") or "kafkaratchet-controller"
    consumer_config.setdefault("auto_offset_reset", "earliest")  # a request waiting before we joined counts
    consumer_config.setdefault("metadata_max_age_ms", 5000)  # notice new R.subs topics within seconds
    consumer_config.setdefault("session_timeout_ms", 10000)
    consumer_config.setdefault("heartbeat_interval_ms", 3000)
    # also the rebalance timeout: a controller that vanished mid-rebalance is given up on after 15 s,
    # not kafka-python's default 5 minutes (the loop polls several times a second)
    consumer_config.setdefault("max_poll_interval_ms", 15000)
    # a group request the broker never answers (seen with Tansu: a follower's SyncGroup) is retried after
    # 15 s instead of kafka-python's consumer default of 305 s
    consumer_config.setdefault("request_timeout_ms", 15000)
    consumer_config["enable_auto_commit"] = False  # offsets are committed after the forward is acknowledged
    producer = KafkaProducer(**store.get_kafka_config("producer", extra="crypto"))
    try:
        consumer = KafkaConsumer(**consumer_config)
    except BaseException:
        producer.close(timeout=1)
        raise
    try:
        controller = KafkaCryptoController(None, producer, consumer, config=store)
    except BaseException:
        consumer.close(autocommit=False)
        producer.close(timeout=1)
        raise
    try:
        stop.wait()
    finally:
        controller.close(timeout=3)
        consumer.close(autocommit=False)
        producer.close(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
