"""``kafkaratchet-provision password``: a working node from two passwords, on the spot.

The root of trust and the provisioner are derived from the root and
provisioning passwords (:mod:`provision.password`), so no key file has to reach
the node and every node provisioned with the same passwords trusts the same
root. The node's own identity is fresh randomness and never leaves ``DIR``.
Its chain is ``[provisioner certificate (signed by the root), node certificate
(signed by the provisioner)]`` and the root's self-signed certificate is its
allowlist.

Order of work, so that a bad input changes nothing: every flag is parsed, the
passwords are read and length-checked, the remaining questions are asked, the
target files are checked, and only then are the passwords derived (about a
second each) and the three files written.
"""

from __future__ import annotations

import argparse
import unicodedata
from pathlib import Path
from typing import TextIO

from kafkaratchet.certs import Chain, TrustStore
from kafkaratchet.errors import ChainError, KafkaRatchetError, ProvisioningError
from kafkaratchet.identity import SigningIdentity
from kafkaratchet.provisioning import issue_node_chain, node_paths, write_node
from kafkaratchet.store import KafkaCryptoStore

from . import password as pw
from .inputs import PROVISIONING_PASSWORD_ENV, ROOT_PASSWORD_ENV, Prompter, parse_fingerprint
from .spec import (
    check_directory,
    check_node_free,
    collect_spec,
    print_node_summary,
    role_settings,
    validate_spec_flags,
)

__all__ = ["run_password"]


def _existing_roots(config: Path) -> set[bytes]:
    """The roots an existing node trusts (empty when there is no readable config to compare with)."""
    if not config.exists():
        return set()
    try:
        store = KafkaCryptoStore(config)
        return {bytes.fromhex(name) for name in store.load_section("allowlist")}
    except (KafkaRatchetError, ValueError):
        return set()


def run_password(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    directory = Path(args.dir)
    check_directory(directory)
    validate_spec_flags(args)
    expected_root = parse_fingerprint(args.root_fingerprint) if args.root_fingerprint else None

    root_password = prompter.password(
        "root password", file=args.root_password_file, env_var=ROOT_PASSWORD_ENV,
        check=lambda value: pw.password_bytes(value, "root password"), flag="--root-password-file")

    def check_provisioning(value: str) -> None:
        pw.password_bytes(value, "provisioning password")
        if unicodedata.normalize("NFC", value) == unicodedata.normalize("NFC", root_password):
            raise ProvisioningError("the provisioning password must differ from the root password "
                                    "(whoever provisions nodes must not hold the root)")

    provisioning_password = prompter.password(
        "provisioning password", file=args.provisioning_password_file, env_var=PROVISIONING_PASSWORD_ENV,
        check=check_provisioning, flag="--provisioning-password-file")

    spec = collect_spec(args, prompter, on_node_id=lambda node: check_node_free(directory, node, args.force))
    trusted_before = _existing_roots(node_paths(directory, spec.node_id)["config"]) if args.force else set()

    root = pw.root_identity(root_password)
    if expected_root is not None and root.fingerprint != expected_root:
        raise ProvisioningError(f"wrong root password: it derives root {root.fingerprint}, "
                                f"not the expected {expected_root}")
    if trusted_before and root.public_key not in trusted_before and not args.new_root:
        raise ProvisioningError(f"wrong root password? it derives root {root.fingerprint}, which node "
                                f"{spec.node_id} does not trust yet; pass --new-root to move it to this root")
    provisioner = pw.provisioner_identity(provisioning_password)

    root_cert = pw.root_certificate(root)
    identity = SigningIdentity.generate()
    if spec.role == "admin":  # trust-list editors hang directly off the root: no provisioner may make them
        chain = issue_node_chain(root, None, identity.public_key, spec.role, topics=spec.topics,
                                 lifetime=spec.lifetime, pathlen=spec.pathlen)
    else:
        provisioner_chain = Chain.of(pw.provisioner_certificate(root, provisioner.public_key,
                                                                node_pathlen=spec.pathlen))
        chain = issue_node_chain(provisioner, provisioner_chain, identity.public_key, spec.role,
                                 topics=spec.topics, lifetime=spec.lifetime, pathlen=spec.pathlen)
    try:
        TrustStore([root_cert]).validate(chain)
    except ChainError as exc:  # a bug, not an input: the chain we just made must validate
        raise ProvisioningError(f"the new chain does not validate ({exc}); nothing was written") from None

    write_node(directory, spec.node_id, identity, chains=[chain], roots=[root_cert],
               bootstrap_servers=spec.bootstrap_servers, crypto=role_settings(spec.role), force=args.force)
    print_node_summary(out, "provisioned", spec.node_id, directory, identity.fingerprint, chain, root_cert)
    out.write(f"  provisioner  {provisioner.fingerprint}\n")
    if spec.bootstrap_servers is None:
        out.write("  note         no --bootstrap-servers given: set [kafka] bootstrap_servers in "
                  f"{node_paths(directory, spec.node_id)['config']}\n")
    return 0
