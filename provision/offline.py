"""The offline PKI flow, where no secret ever travels: init-root, request, sign, install.

- ``init-root`` (root machine): a new root key, sealed under a password in
  ``root.key`` (:mod:`provision.rootkey`).
- ``request`` (node): a new identity and seed in ``DIR``, and ``N.request``
  holding only the public key and the wanted constraints, signed by that key.
- ``sign`` (root machine): shows the request, lets the operator narrow it, and
  writes ``N.chain``: the node's chain and the root certificate.
- ``install`` (node): checks that the chain certifies this node's own key and
  reaches a root the operator trusts, then writes it and the root into the
  node's config.

Only ``N.request`` and ``N.chain`` cross between machines; both are public
(:mod:`provision.formats`). Every command checks all its inputs before it
writes anything, so a refused run leaves every file as it was.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import re
import time
from pathlib import Path
from typing import TextIO

from kafkaratchet.errors import ChainError, ConfigError, FormatError, ProvisioningError, SignatureError
from kafkaratchet.files.nodefiles import NodeFiles, read_identity, same_constraints, write_chains
from kafkaratchet.files.provisioning import ROLE_USAGES, issue_node_chain, node_paths, write_node
from kafkaratchet.files.secretfile import read_secret, write_atomic
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.tools.keyinfo import describe_chain, format_duration, format_time

from .formats import ChainFile, NodeRequest, read_public_file
from .inputs import (
    ROOT_PASSWORD_ENV,
    Prompter,
    parse_fingerprint,
    parse_lifetime,
    parse_node_id,
    parse_pathlen,
    parse_role,
    parse_topics,
)
from .password import password_bytes
from .rootkey import RootKey, open_root_key, peek_root_key, seal_root_key
from .spec import (
    check_directory,
    check_node_free,
    collect_spec,
    print_node_summary,
    role_settings,
    validate_spec_flags,
)

__all__ = ["run_init_root", "run_request", "run_sign", "run_install"]

log = logging.getLogger(__name__)

_PUBLIC_MODE = 0o644


def _check_output(path: Path, force: bool, what: str, *, parent_created: bool = False) -> None:
    """Refuse an output we must not or cannot write, before anything is written."""
    if path.is_dir():
        raise ProvisioningError(f"{path} is a directory; give the {what} file's path")
    if (path.exists() or path.is_symlink()) and not force:
        raise ProvisioningError(f"{path} already exists; pass --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir() and not (parent_created and not parent.exists()):
        raise ProvisioningError(f"{parent} is not a directory")


def _check_root_password(value: str) -> None:
    password_bytes(value, "root key password")


# --------------------------------------------------------------------------------------- init-root


def run_init_root(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    """A new random root key, sealed under a (confirmed) password, written 0600."""
    target = Path(args.out)
    _check_output(target, args.force, "root key")
    secret = prompter.password("root key password", file=args.root_password_file, env_var=ROOT_PASSWORD_ENV,
                               check=_check_root_password, flag="--root-password-file", confirm=True)
    identity = SigningIdentity.generate()
    data = seal_root_key(identity, password_bytes(secret, "root key password"))
    write_atomic(target, data, mode=0o600)
    out.write(f"created root key {target} (sealed under its password; keep it offline)\n")
    out.write(f"  fingerprint  {identity.fingerprint}\n")
    out.write(f"  public key   {identity.public_key.hex()}\n")
    out.write("  give this fingerprint to node operators: install --root-fingerprint checks it\n")
    return 0


# ----------------------------------------------------------------------------------------- request


def run_request(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    """Create the node's identity and seed (or reuse them with ``--renew``) and write ``N.request``."""
    directory = Path(args.dir)
    check_directory(directory)
    validate_spec_flags(args)
    outputs: dict[str, Path] = {}

    def check_node(node_id: str) -> None:
        request_path = Path(args.out) if args.out else directory / f"{node_id}.request"
        _check_output(request_path, args.force, "request", parent_created=not args.out)
        outputs["request"] = request_path
        if args.renew:
            if not node_paths(directory, node_id)["crypto"].exists():
                raise ProvisioningError(f"--renew: node {node_id} has no identity in {directory}")
        else:
            check_node_free(directory, node_id, args.force)

    spec = collect_spec(args, prompter, on_node_id=check_node)
    paths = node_paths(directory, spec.node_id)
    identity = read_identity(paths["crypto"]) if args.renew else SigningIdentity.generate()
    request = NodeRequest(spec.node_id, spec.role, identity.public_key, spec.topics, spec.pathlen, spec.lifetime,
                          int(time.time()))
    data = request.encode(identity)
    if not args.renew:
        write_node(directory, spec.node_id, identity, bootstrap_servers=spec.bootstrap_servers,
                   crypto=role_settings(spec.role), force=args.force)
    write_atomic(outputs["request"], data, mode=_PUBLIC_MODE)
    print_node_summary(out, "renewal requested for" if args.renew else "created", spec.node_id, directory,
                       identity.fingerprint, None, None)
    out.write(f"  request      {outputs['request']} (public: carry it to the root's machine)\n")
    out.write(f"  next         kafkaratchet-provision sign --root root.key --request {outputs['request']}\n")
    return 0


# -------------------------------------------------------------------------------------------- sign


def _narrow_topics(asked: tuple[str, ...] | None, given: tuple[str, ...]) -> tuple[str, ...]:
    """``given`` when it asks for no topic the request did not (a literal may fall under an asked pattern)."""
    if asked is None:
        return given
    for topic in given:
        if topic in asked:
            continue
        if not topic.startswith("^") and any(a.startswith("^") and re.fullmatch(a, topic) for a in asked):
            continue
        raise ProvisioningError(f"--topics may only narrow the request: {topic!r} was not asked for "
                                f"(asked: {' '.join(asked)})")
    return given


def _describe_request(out: TextIO, request: NodeRequest, path: Path, now: float) -> None:
    topics = "ALL topics" if request.topics is None else " ".join(request.topics)
    lifetime = ("never expires" if request.lifetime == 0
                else f"{request.lifetime} s ({format_duration(request.lifetime)})")
    out.write(f"request {path}\n")
    out.write(f"  node         {request.node_id}\n")
    out.write(f"  fingerprint  {fingerprint(request.public_key)}\n")
    out.write(f"  role         {request.role} ({', '.join(sorted(ROLE_USAGES[request.role]))})\n")
    out.write(f"  topics       {topics}\n")
    out.write(f"  pathlen      {request.pathlen}\n")
    out.write(f"  lifetime     {lifetime}\n")
    age = now - request.created
    when = f"{format_duration(age)} ago" if age >= 0 else f"{format_duration(-age)} in the FUTURE (check clocks)"
    out.write(f"  created      {format_time(request.created)} ({when})\n")


def run_sign(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    """Sign a node's request with the root key (narrowed by the flags) and write ``N.chain``."""
    root_path = Path(args.root)
    request_path = Path(args.request)
    root_bytes = read_secret(root_path, max_size=4096)
    try:
        root_public, _ = peek_root_key(root_bytes)
    except FormatError as exc:
        raise ProvisioningError(f"{root_path}: {exc}") from None
    try:
        request = NodeRequest.decode(read_public_file(request_path, "request"))
    except (FormatError, SignatureError) as exc:
        raise ProvisioningError(f"{request_path}: corrupt or forged request file: {exc}") from None

    role = request.role
    if args.role is not None:
        role = parse_role(args.role)
        if not ROLE_USAGES[role] <= ROLE_USAGES[request.role]:
            raise ProvisioningError(f"--role may only narrow the request: {role} can do more than the "
                                    f"requested {request.role}")
    topics = request.topics
    if args.topics is not None:
        given = parse_topics(args.topics)
        if given is None:
            raise ProvisioningError("--topics: no topic given")
        topics = _narrow_topics(request.topics, given)
    pathlen = request.pathlen
    if args.pathlen is not None:
        pathlen = parse_pathlen(str(args.pathlen))
        if pathlen > request.pathlen:
            raise ProvisioningError(f"--pathlen may only narrow the request (asked: {request.pathlen})")
    lifetime = parse_lifetime(str(args.lifetime)) if args.lifetime is not None else request.lifetime
    target = Path(args.out) if args.out else request_path.with_name(f"{request.node_id}.chain")
    _check_output(target, args.force, "chain")

    now = time.time()
    _describe_request(out, request, request_path, now)
    changes = (("role", request.role, role), ("topics", request.topics, topics),
               ("pathlen", request.pathlen, pathlen), ("lifetime", request.lifetime, lifetime))
    narrowed = [name for name, asked, granted in changes if asked != granted]
    if narrowed:
        out.write(f"  signing with {', '.join(narrowed)} changed: role {role}, topics "
                  f"{'ALL' if topics is None else ' '.join(topics)}, pathlen {pathlen}, lifetime {lifetime} s\n")
    out.write(f"  root         {fingerprint(root_public)} ({root_path})\n")
    out.flush()
    if prompter.interactive and not args.yes and not prompter.confirm("Sign this request?", "--yes"):
        raise ProvisioningError("not signed; nothing was written")

    secret = prompter.password("root key password", file=args.root_password_file, env_var=ROOT_PASSWORD_ENV,
                               check=_check_root_password, flag="--root-password-file")
    root: RootKey = open_root_key(root_bytes, password_bytes(secret, "root key password"))
    chain = issue_node_chain(root.identity, None, request.public_key, role, topics=topics, lifetime=lifetime,
                             pathlen=pathlen)
    root_cert = root.certificate
    TrustStore([root_cert]).validate(chain)
    write_atomic(target, ChainFile(request.node_id, chain, root_cert).encode(), mode=_PUBLIC_MODE)
    out.write(f"wrote {target} for node {request.node_id}\n")
    out.write(f"  chain        {describe_chain(chain, root=root_cert)}\n")
    out.write(f"  next         kafkaratchet-provision install --chain {target} --dir DIR "
              f"--root-fingerprint {root.identity.fingerprint}\n")
    return 0


# ----------------------------------------------------------------------------------------- install


def run_install(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    """Check ``N.chain`` against this node's key and a trusted root, then add it to the node's config."""
    chain_path = Path(args.chain)
    try:
        chain_file = ChainFile.decode(read_public_file(chain_path, "chain"))
    except (FormatError, ChainError) as exc:
        raise ProvisioningError(f"{chain_path}: corrupt chain file: {exc}") from None
    node_id = chain_file.node_id
    if args.node_id is not None and parse_node_id(args.node_id) != node_id:
        raise ProvisioningError(f"{chain_path} is for node {node_id}, not {args.node_id}")
    expected_root = parse_fingerprint(args.root_fingerprint) if args.root_fingerprint else None
    directory = Path(args.dir)
    config = node_paths(directory, node_id)["config"]
    if not config.exists():
        raise ProvisioningError(f"{chain_path} is for node {node_id}, which has no {config.name} in {directory} "
                                "(run request there first)")
    store = KafkaCryptoStore(config)
    if store.node_id != node_id:
        raise ProvisioningError(f"{config} is the config of node {store.node_id}, not {node_id}")
    # lenient: a node's unparsable or foreign chains are what an install may repair; its key and trust
    # lists are not
    files, _ = NodeFiles.read(store, strict=False)
    for part in ("identity", "allowlist", "denylist"):
        if files.problems.get(part):
            raise ConfigError(files.problems[part][0])
    assert files.identity is not None
    identity = files.identity
    chain = chain_file.chain
    if not hmac.compare_digest(chain.subject, identity.public_key):
        raise ProvisioningError(f"{chain_path} is not for this node: it certifies key {fingerprint(chain.subject)}, "
                                f"node {node_id}'s key is {identity.fingerprint}")

    roots = {cert.subject: cert for cert in files.root_certificates}
    denied = files.denied_keys
    offered = chain_file.root
    offered_fp = fingerprint(offered.subject)
    if expected_root is not None:
        if offered_fp != expected_root:
            raise ProvisioningError(f"{chain_path} does not reach a trusted root: its root is {offered_fp}, "
                                    f"not {expected_root}")
    elif offered.subject not in roots:
        if not (prompter.interactive and not args.yes
                and prompter.confirm(f"Trust root {offered_fp} (compare with what init-root printed)?",
                                     "--root-fingerprint")):
            raise ProvisioningError(f"{chain_path} does not reach a trusted root: root {offered_fp} is not in "
                                    f"node {node_id}'s allowlist; pass --root-fingerprint with the fingerprint "
                                    "init-root printed")
    trusted = dict(roots)
    trusted.setdefault(offered.subject, offered)
    try:
        checked = TrustStore(trusted.values(), denied).validate(chain)
    except ChainError as exc:
        raise ProvisioningError(f"{chain_path} does not reach a trusted root: {exc}") from None

    for name in files.bad_chains:
        log.warning("%s: dropping unparsable chain %s", config, name)
    # a chain with the same constraints is a renewal: it replaces the old one, like a chain server's would
    kept = [c for c in files.chains.values() if not same_constraints(c, chain)]
    if offered.subject not in roots and checked.root == offered.subject:
        store.store_value(offered.subject.hex(), offered.encode(), "allowlist")
    write_chains(store, [*kept, chain])
    print_node_summary(out, "installed a chain on", node_id, directory, identity.fingerprint, chain,
                       trusted[checked.root])
    return 0
