"""``kafkaratchet-chainserver --config S.config COMMAND``: run the chain server, or manage its keys.

    run                                     issue and renew chains until SIGTERM
    add-key KEY --role ROLE [--topics ...]  serve a node key (hex, or a node's .config file)
    remove-key KEY                          stop serving it (its chain then expires on its own)
    list                                    the keys served and their rights
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kafkaratchet.tools.clirunner import ArgumentParser, UsageError, add_verbosity_flags, run

from .daemon import stop_event

PROG = "kafkaratchet-chainserver"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=PROG, description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="the chain server's .config file")
    add_verbosity_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="issue and renew chains until stopped")
    add = commands.add_parser("add-key", help="serve a node key")
    add.add_argument("key", help="the node's public key in hex, or the path of its .config file")
    add.add_argument("--role", required=True, help="producer, consumer, prodcon, consumer-limited, prodcon-limited")
    add.add_argument("--topics", nargs="*", help="root topics it may use (default: all the server may grant)")
    remove = commands.add_parser("remove-key", help="stop serving a node key")
    remove.add_argument("key", help="public key in hex, or the node's .config file")
    commands.add_parser("list", help="show the served keys")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when done or stopped; 2 for a bad command line, key or config; 1 for a runtime failure."""
    return run(PROG, build_parser(), _command, argv)


def _command(args: argparse.Namespace) -> int:
    from kafkaratchet.files.nodefiles import parse_public_key_arg
    from kafkaratchet.files.provisioning import ROLE_USAGES
    from kafkaratchet.protocol.identity import fingerprint
    from kafkaratchet.services.chainserver import KafkaCryptoChainServer

    server = KafkaCryptoChainServer(None, config=args.config)
    if args.command == "add-key":
        if args.role not in ROLE_USAGES or args.role in {"controller", "chainserver"}:
            raise UsageError(f"unknown or unservable role {args.role!r}")
        served = server.add_key(parse_public_key_arg(args.key), ROLE_USAGES[args.role], args.topics or None)
        print(f"serving {fingerprint(served.public_key)} as {args.role}")
        return 0
    if args.command == "remove-key":
        key = parse_public_key_arg(args.key)  # ConfigError (exit 2) for neither hex nor a readable .config
        if not server.remove_key(key):
            raise UsageError(f"{fingerprint(key)} is not served")
        print(f"no longer serving {fingerprint(key)}")
        return 0
    if args.command == "list":
        for served in server.served():
            topics = ",".join(served.topics) if served.topics else "*"
            print(f"{fingerprint(served.public_key)}  {served.public_key.hex()}  "
                  f"usages={','.join(sorted(served.usages))}  topics={topics}")
        return 0
    stop = stop_event()
    server.start()
    stop.wait()
    server.close(timeout=3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
