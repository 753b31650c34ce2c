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

from kafkaratchet.errors import KafkaRatchetError

from .daemon import configure_logging, stop_event


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kafkaratchet-chainserver", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="the chain server's .config file")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: debug logs, -vv: also kafka's")
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


def _public_key(text: str) -> bytes:
    """A key given as hex, or read from a node's config (its first chain's subject)."""
    path = Path(text)
    if path.suffix == ".config" and path.exists():
        from kafkaratchet.credentials import Credentials
        from kafkaratchet.store import KafkaCryptoStore

        return Credentials(KafkaCryptoStore(path)).public_key
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SystemExit(f"kafkaratchet-chainserver: error: {text!r} is neither a 64-digit hex key nor a .config")
    return key


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    from kafkaratchet.chainserver import KafkaCryptoChainServer
    from kafkaratchet.identity import fingerprint
    from kafkaratchet.provisioning import ROLE_USAGES

    try:
        server = KafkaCryptoChainServer(None, config=args.config)
        if args.command == "add-key":
            if args.role not in ROLE_USAGES or args.role in {"controller", "chainserver"}:
                raise SystemExit(f"kafkaratchet-chainserver: error: unknown or unservable role {args.role!r}")
            served = server.add_key(_public_key(args.key), ROLE_USAGES[args.role], args.topics or None)
            print(f"serving {fingerprint(served.public_key)} as {args.role}")
            return 0
        if args.command == "remove-key":
            key = _public_key(args.key)
            if not server.remove_key(key):
                print(f"kafkaratchet-chainserver: error: {fingerprint(key)} is not served", file=sys.stderr)
                return 2
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
    except KafkaRatchetError as exc:
        print(f"kafkaratchet-chainserver: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
