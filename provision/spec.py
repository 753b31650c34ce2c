"""What a node is to become (id, role, topics, path length, lifetime) and the checks shared by every flow.

Both the quick start and the offline ``request`` ask the same questions in the
same order and refuse the same things, so they share this module: collect the
answers (flags first, prompts for the rest), refuse to touch an existing
identity without ``--force`` *before* anything slow or irreversible happens,
and print the same closing summary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from kafkaratchet.errors import ProvisioningError
from kafkaratchet.files.provisioning import ROLE_PATHLEN, ROLE_USAGES, node_paths
from kafkaratchet.files.settings import RoleSettings
from kafkaratchet.protocol.certs import Certificate, Chain
from kafkaratchet.protocol.identity import fingerprint as key_fingerprint
from kafkaratchet.tools.keyinfo import describe_chain

from .inputs import (
    DEFAULT_LIFETIME,
    Prompter,
    parse_bootstrap,
    parse_lifetime,
    parse_node_id,
    parse_pathlen,
    parse_role,
    parse_topics,
)

__all__ = ["NodeSpec", "collect_spec", "validate_spec_flags", "check_directory", "check_node_free",
           "print_node_summary", "default_pathlen", "role_settings"]


@dataclass(frozen=True)
class NodeSpec:
    node_id: str
    role: str
    topics: tuple[str, ...] | None
    pathlen: int
    lifetime: int
    bootstrap_servers: str | None


def default_pathlen(role: str) -> int:
    """0 (a leaf) except for a chain server, which must be able to sign one certificate below itself."""
    return ROLE_PATHLEN.get(role, 0)


def role_settings(role: str) -> dict[str, str]:
    """The ``[crypto]`` entries written for a role (declared by ``RoleSettings``): the role itself, for
    ``keyinfo`` and for humans."""
    return {name: str(value) for name, value in asdict(RoleSettings(role=role)).items()}


def check_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ProvisioningError(f"--dir: {directory} exists and is not a directory")


def check_node_free(directory: Path, node_id: str, force: bool, extra: Iterable[Path] = ()) -> None:
    """Refuse to replace an existing identity (or another output) unless ``--force``: checked up front."""
    if force:
        return
    paths = node_paths(directory, node_id)
    for path in [paths["crypto"], paths["seed"], paths["config"], *extra]:
        if path.exists() or path.is_symlink():
            raise ProvisioningError(f"{path} already exists; pass --force to replace node {node_id}'s identity")


def validate_spec_flags(args: argparse.Namespace) -> None:
    """Parse every flag that was given before any prompt, so a typo fails before a password is typed."""
    if args.bootstrap_servers is not None:
        parse_bootstrap(args.bootstrap_servers)
    if args.node_id is not None:
        parse_node_id(args.node_id)
    if args.role is not None:
        parse_role(args.role)
    if args.topics is not None and parse_topics(args.topics) is None:
        raise ProvisioningError("--topics: no topic given (use --all-topics to allow every topic)")
    if args.pathlen is not None:
        parse_pathlen(str(args.pathlen))
    if args.lifetime is not None:
        parse_lifetime(str(args.lifetime))


def collect_spec(args: argparse.Namespace, prompter: Prompter, *,
                 on_node_id: Callable[[str], None] | None = None) -> NodeSpec:
    """Flags first; prompts, in the documented order, for node id, role, topics, path length, lifetime.

    ``on_node_id`` runs as soon as the id is known, so
    "that node already exists" is said before the remaining questions are asked.
    """
    bootstrap = parse_bootstrap(args.bootstrap_servers) if args.bootstrap_servers is not None else None
    if args.node_id is not None:
        node_id = parse_node_id(args.node_id)
    else:
        node_id = prompter.ask("Node id", "--node-id", parse_node_id)
    if on_node_id is not None:
        on_node_id(node_id)
    if args.role is not None:
        role = parse_role(args.role)
    else:
        role = prompter.ask(f"Role ({', '.join(ROLE_USAGES)})", "--role", parse_role)
    if args.all_topics:
        topics = None
    elif args.topics is not None:
        topics = parse_topics(args.topics)
        if topics is None:
            raise ProvisioningError("--topics: no topic given (use --all-topics to allow every topic)")
    else:
        topics = prompter.ask("Root topics, space-separated (empty: all topics)", "--topics",
                              lambda text: parse_topics([text]))
        if topics is None and not prompter.confirm("No topics given: allow this node EVERY topic?",
                                                   "--all-topics"):
            raise ProvisioningError("no topics given; pass --topics or --all-topics")
    if args.pathlen is not None:
        pathlen = parse_pathlen(str(args.pathlen))
    else:
        pathlen = prompter.ask("Maximum path length", "--pathlen", parse_pathlen, default=str(default_pathlen(role)))
    if args.lifetime is not None:
        lifetime = parse_lifetime(str(args.lifetime))
    else:
        lifetime = prompter.ask("Lifetime in seconds (0: never expires)", "--lifetime", parse_lifetime,
                                default=str(DEFAULT_LIFETIME))
    return NodeSpec(node_id, role, topics, pathlen, lifetime, bootstrap)


def print_node_summary(out: TextIO, verb: str, node_id: str, directory: Path, fingerprint: str,
                       chain: Chain | None, root: Certificate | None) -> None:
    """The closing lines every flow prints: where, which key, and what its chain allows until when."""
    out.write(f"{verb} node {node_id} in {directory}\n")
    out.write(f"  fingerprint  {fingerprint}\n")
    if chain is not None:
        out.write(f"  chain        {describe_chain(chain, root=root)}\n")
    if root is not None:
        out.write(f"  root         {key_fingerprint(root.subject)}\n")
    out.flush()
