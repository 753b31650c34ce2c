"""``kafkaratchet-provision``: the command line of the provisioning tool.

Thin on purpose: argparse, logging, and one rule for failures. Every refused
input (a bad flag, a short or wrong password, a corrupt file, a chain for
another node) ends the same way: exit status 2 and exactly one line on standard
error, ``kafkaratchet-provision: error: ...``, with nothing written. Scripts can
rely on that; humans get a sentence instead of a traceback. A failure while
writing or publishing (disk, broker) is one such line too, with exit status 1.
The rules are :mod:`kafkaratchet.tools.clirunner`'s, shared by every console script.
Output for the user goes to standard output, prompts to standard error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from kafkaratchet.tools.clirunner import EXIT_FAILURE, EXIT_USAGE, ArgumentParser, add_verbosity_flags, run

from . import offline, quickstart, trustupdates
from .inputs import PROVISIONING_PASSWORD_ENV, ROOT_PASSWORD_ENV, Prompter

__all__ = ["main", "build_parser", "PROG"]

PROG = "kafkaratchet-provision"
EXIT_BAD_INPUT = EXIT_USAGE
EXIT_IO_ERROR = EXIT_FAILURE


def _add_node_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-id", metavar="N", help="the node's id (also its file names: N.config, ...)")
    parser.add_argument("--role", metavar="ROLE",
                        help="producer, consumer, prodcon, consumer-limited, prodcon-limited, controller or "
                             "chainserver (the -limited roles ask for keys only through a controller)")
    topics = parser.add_mutually_exclusive_group()
    topics.add_argument("--topics", nargs="+", metavar="TOPIC",
                        help="root topics the node may use (space-separated; '^regex' allowed)")
    topics.add_argument("--all-topics", action="store_true", help="allow every topic (no confirmation prompt)")
    parser.add_argument("--pathlen", metavar="N",
                        help="how many certificates the node may sign below itself (default 0; chainserver 1)")
    parser.add_argument("--lifetime", metavar="SECONDS",
                        help="how long the chain is valid (default one year; 0: never expires)")
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="Kafka bootstrap servers for the config")
    parser.add_argument("--dir", default=".", metavar="DIR", help="where the node's files go (default: .)")
    parser.add_argument("--force", action="store_true", help="replace an existing node identity")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=PROG, description="Provision kafkaratchet nodes: a password quick start, or an "
                                                   "offline PKI where no secret travels. See docs/provisioning.md.")
    add_verbosity_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_password_parser(commands)
    _add_init_root_parser(commands)
    _add_request_parser(commands)
    _add_sign_parser(commands)
    _add_install_parser(commands)
    _add_denylist_parser(commands)
    _add_allowlist_parser(commands)
    return parser


def _add_password_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    password = commands.add_parser(
        "password", help="quick start: root and provisioner derived from two passwords",
        description="Create a node whose chain is signed on the spot by keys derived (Argon2id) from the root "
                    "and provisioning passwords. Nodes provisioned with the same passwords trust each other. "
                    "Asks, in order, for what the flags did not give: root password, provisioning password, "
                    "node id, role, topics, maximum path length, lifetime.")
    _add_node_flags(password)
    password.add_argument("--root-password-file", type=Path, metavar="FILE",
                          help=f"read the root password from FILE (else ${ROOT_PASSWORD_ENV}, else a prompt)")
    password.add_argument("--provisioning-password-file", type=Path, metavar="FILE",
                          help=f"read the provisioning password from FILE (else ${PROVISIONING_PASSWORD_ENV}, "
                               "else a prompt)")
    password.add_argument("--root-fingerprint", metavar="FP",
                          help="refuse unless the root password derives this root (catches a mistyped password)")
    password.add_argument("--new-root", action="store_true",
                          help="with --force: allow moving an existing node to a different root of trust")
    password.add_argument("--legacy-kdf", action="store_true",
                          help="derive with the v1 parameters (Argon2id 3 passes, 256 MiB, 12-character "
                               "passwords) to add a node to a deployment created before v2; weaker against "
                               "offline password guessing (a warning is printed)")


def _add_init_root_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    init_root = commands.add_parser(
        "init-root", help="offline: create a root key sealed under a password",
        description="Generate a new root key and write it sealed (Argon2id + XChaCha20-Poly1305) under a "
                    "password, mode 0600. Prints the public key and fingerprint.")
    init_root.add_argument("--out", required=True, type=Path, metavar="FILE", help="the root key file to write")
    init_root.add_argument("--root-password-file", type=Path, metavar="FILE",
                           help=f"read the password from FILE (else ${ROOT_PASSWORD_ENV}, else a prompt, twice)")
    init_root.add_argument("--force", action="store_true", help="replace an existing root key file")


def _add_request_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    request = commands.add_parser(
        "request", help="offline, on the node: create its identity and a public request",
        description="Create the node's identity and ratchet seed in DIR and write N.request, which holds only "
                    "public material, signed by the new key.")
    _add_node_flags(request)
    request.add_argument("--out", type=Path, metavar="FILE", help="where to write the request (default DIR/N.request)")
    request.add_argument("--renew", action="store_true",
                         help="keep the node's existing identity and seed; only write a new request")


def _add_sign_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    sign = commands.add_parser(
        "sign", help="offline, on the root's machine: sign a request into a chain",
        description="Show what a request asks for, optionally narrow it, sign it with the root key and write "
                    "N.chain (default: beside the request).")
    sign.add_argument("--root", required=True, type=Path, metavar="FILE", help="the root key file")
    sign.add_argument("--request", required=True, type=Path, metavar="FILE", help="the node's N.request")
    sign.add_argument("--role", metavar="ROLE", help="grant a narrower role than requested")
    sign.add_argument("--topics", nargs="+", metavar="TOPIC", help="grant only these of the requested topics")
    sign.add_argument("--pathlen", metavar="N", help="grant a smaller path length than requested")
    sign.add_argument("--lifetime", metavar="SECONDS", help="chain lifetime (default: as requested)")
    sign.add_argument("--out", type=Path, metavar="FILE", help="where to write the chain (default: beside the request)")
    sign.add_argument("--root-password-file", type=Path, metavar="FILE",
                      help=f"read the root key password from FILE (else ${ROOT_PASSWORD_ENV}, else a prompt)")
    sign.add_argument("--yes", action="store_true", help="do not ask for confirmation at a terminal")
    sign.add_argument("--force", action="store_true", help="replace an existing chain file")


def _add_install_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    install = commands.add_parser(
        "install", help="offline, on the node: install a signed chain",
        description="Check that N.chain certifies this node's own key and reaches a trusted root, then write "
                    "the chain and the root into the node's config.")
    install.add_argument("--chain", required=True, type=Path, metavar="FILE", help="the N.chain from sign")
    install.add_argument("--dir", default=".", metavar="DIR", help="the node's directory (default: .)")
    install.add_argument("--node-id", metavar="N", help="refuse unless the chain is for this node id")
    install.add_argument("--root-fingerprint", metavar="FP",
                         help="the root's fingerprint as init-root printed it (needed unless the node already "
                              "trusts that root, or you confirm it at a terminal)")
    install.add_argument("--yes", action="store_true", help="never ask; refuse an unknown root instead")


def _add_denylist_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    deny = commands.add_parser(
        "denylist", help="publish a signed denylist entry: every node cuts the key off",
        description="Sign a denylist entry for KEY with the node of --config (an admin node, whose chain has "
                    "the denylist usage) and publish it on the denylist topic. Every node applies it live and "
                    "persists it; producers of the covered roots step their ratchet so the key reads no new "
                    "record there. A denial reaches only as far as the signer's own topics.")
    deny.add_argument("key", nargs="?", help="the key to denylist: 64 hex digits, or the node's .config file")
    deny.add_argument("--self", action="store_true",
                      help="denylist the signing node's own key (any node with a valid chain may)")
    deny.add_argument("--topics", nargs="+", metavar="TOPIC",
                      help="deny only for these root topics or ^patterns (default: every topic the signer may "
                           "deny for; a denial of every topic needs a signer whose chain covers all topics)")
    deny.add_argument("--republish", action="store_true",
                      help="re-publish every key of the signer's [denylist] (denials persisted before trust "
                           "updates v2) as v2 entries for every topic")
    deny.add_argument("--config", required=True, type=Path, metavar="FILE", help="the signing node's .config")
    deny.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="override the config's bootstrap servers")


def _add_allowlist_parser(commands: argparse._SubParsersAction[ArgumentParser]) -> None:
    allow = commands.add_parser(
        "allowlist", help="publish a signed allowlist entry: every node trusts a new root",
        description="Sign an allowlist entry admitting KEY as a new root of trust, limited to --topics, "
                    "--usages, --pathlen and --lifetime (never wider than the signer's own chain), and publish "
                    "it on the allowlist topic. An existing root cannot be replaced, widened or re-dated this way.")
    allow.add_argument("key", help="the new root's public key: 64 hex digits, or a node's .config file")
    allow.add_argument("--config", required=True, type=Path, metavar="FILE", help="the signing node's .config")
    allow.add_argument("--topics", nargs="+", metavar="TOPIC", help="root topics the new root may cover "
                       "(default: all the signer may cover)")
    allow.add_argument("--usages", nargs="+", metavar="USAGE", help="usages it may grant (default: all the "
                       "signer holds)")
    allow.add_argument("--pathlen", type=int, metavar="N", help="how many certificates may follow below the "
                       "root (default: no limit of its own)")
    allow.add_argument("--lifetime", type=int, metavar="SECONDS", help="how long the root is valid (default: "
                       "as long as the signer's chain; 0 = never expires, only for a signer that never expires)")
    allow.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="override the config's bootstrap servers")


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run one command; returns the exit status (0 done, 1 I/O or broker failure, 2 bad input, 130 interrupted).

    Only this call's own thread is logged: ``main()`` may run in-process beside other threads.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr

    def body(args: argparse.Namespace) -> int:
        return _run(args, Prompter(stdin=stdin, stderr=err), out)

    return run(PROG, build_parser(), body, argv, stderr=err, this_thread_only=True)


def _run(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    runners = {
        "password": quickstart.run_password,
        "init-root": offline.run_init_root,
        "request": offline.run_request,
        "sign": offline.run_sign,
        "install": offline.run_install,
        "denylist": trustupdates.run_denylist,
        "allowlist": trustupdates.run_allowlist,
    }
    return runners[args.command](args, prompter, out)


if __name__ == "__main__":
    sys.exit(main())
