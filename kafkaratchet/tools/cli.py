"""``kafkaratchet``: the command-line entry point (demo, keyinfo, topics)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafkaratchet.tools.clirunner import ArgumentParser, add_verbosity_flags, run
from kafkaratchet.tools.topicscli import add_topics_parser

__all__ = ["main", "build_parser", "PROG"]

PROG = "kafkaratchet"


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="End-to-end, message-layer encryption for Apache Kafka.",
    )
    add_verbosity_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo_parser(commands)
    _add_keyinfo_parser(commands)
    add_topics_parser(commands)
    return parser


def _add_demo_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="encrypted round trip between two throwaway nodes",
        description="Start the embedded broker (unless --bootstrap-servers is given), provision a producer "
                    "and a consumer with separate identities in a temporary directory, send records, decrypt "
                    "them, read the raw records back to show they are ciphertext, and report key-exchange "
                    "latency and throughput. Exit status 0 when every record made the trip.")
    demo.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                      help="use this Kafka cluster instead of starting the embedded broker")
    demo.add_argument("--records", "-n", type=_positive, default=5000, help="records to send (default 5000)")
    demo.add_argument("--size", type=_positive, default=1024, help="bytes per record value (default 1024)")
    demo.add_argument("--keep", type=Path, metavar="DIR",
                      help="provision the demo nodes in DIR and keep them, instead of a temporary directory")


def _add_keyinfo_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    keyinfo = commands.add_parser(
        "keyinfo", help="show a node's identity, chains, trust lists and keys (never key bytes)",
        description="Print the node's fingerprint, each chain (usages, topics, path length, expiry), the "
                    "allowlist and denylist, and the producer keys it holds per root topic.")
    keyinfo.add_argument("config", type=Path, help="the node's .config file")
    keyinfo.add_argument("--json", action="store_true", help="machine-readable output")
    keyinfo.add_argument("--warn-within", type=int, default=None, metavar="SECONDS",
                         help="warn when a chain expires within this many seconds (default: the chain "
                              "server's refresh window from the config, else one day)")


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from kafkaratchet.tools.demo import main as demo_main

        return demo_main(args.bootstrap_servers, args.records, args.size, args.keep, sys.stdout)
    if args.command == "topics":
        from kafkaratchet.tools.topicscli import main as topics_main

        return topics_main(args, sys.stdout)
    from kafkaratchet.tools.keyinfo import main as keyinfo_main

    return keyinfo_main(args.config, as_json=args.json, warn_within=args.warn_within, out=sys.stdout)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status follows :mod:`kafkaratchet.tools.clirunner` (keyinfo: 1 also for a
    warning; topics: 1 when a topic could not be created or is set up wrong)."""
    return run(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
