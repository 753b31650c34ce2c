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
target files are checked, and only then are the passwords derived (a few
seconds each) and the three files written.

Deployments made before the v2 derivation (:data:`provision.password.KDF_V1`)
derive a different root from the same password. When the tool can tell (a
``--root-fingerprint`` or an existing node's allowlist that the v1 parameters
reproduce) it says so instead of "wrong password"; ``--legacy-kdf`` keeps
provisioning such a deployment with the v1 parameters, with a warning.
"""

from __future__ import annotations

import argparse
import logging
import unicodedata
from pathlib import Path
from typing import TextIO

from kafkaratchet.errors import ChainError, KafkaRatchetError, ProvisioningError
from kafkaratchet.files.provisioning import issue_node_chain, node_paths, write_node
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Chain
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import TrustStore

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

log = logging.getLogger(__name__)

_MIGRATE = ("or move the deployment to the offline PKI (init-root, request, sign, install: no key derived from "
            "a password), or re-provision every node with the v2 parameters (--force --new-root); "
            "see docs/provisioning.md")


def _existing_roots(config: Path) -> set[bytes]:
    """The roots an existing node trusts (empty when there is no readable config to compare with)."""
    if not config.exists():
        return set()
    try:
        store = KafkaCryptoStore(config)
        return {bytes.fromhex(name) for name in store.load_section("allowlist")}
    except (KafkaRatchetError, ValueError):
        return set()


def _other_root(password: str, kdf: pw.QuickstartKdf) -> tuple[pw.QuickstartKdf, SigningIdentity | None]:
    """The root ``password`` derives with the other version's parameters (None: too short for them)."""
    other = pw.CURRENT_KDF if kdf is pw.KDF_V1 else pw.KDF_V1
    try:
        return other, pw.root_identity(password, other)
    except ProvisioningError:
        return other, None


def _version_mismatch(used: pw.QuickstartKdf, other: pw.QuickstartKdf, root_fingerprint: str) -> ProvisioningError:
    """The error for a deployment whose root the password derives only with the other version's parameters."""
    if other is pw.KDF_V1:
        return ProvisioningError(
            f"this deployment was created with the v1 quick-start parameters: the root password derives its root "
            f"{root_fingerprint} only with them (v{used.version} derives a different root); pass --legacy-kdf to "
            f"add this node to it (weaker against offline password guessing), {_MIGRATE}")
    return ProvisioningError(f"this deployment was created with the v{other.version} quick-start parameters "
                             f"(root {root_fingerprint}); drop --legacy-kdf")


def run_password(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    directory = Path(args.dir)
    check_directory(directory)
    validate_spec_flags(args)
    expected_root = parse_fingerprint(args.root_fingerprint) if args.root_fingerprint else None
    kdf = pw.KDF_V1 if args.legacy_kdf else pw.CURRENT_KDF
    hint = "" if args.legacy_kdf else (" (a deployment made before v2 with a shorter password: see --legacy-kdf "
                                       "in docs/provisioning.md)")

    def check_root(value: str) -> None:
        pw.password_bytes(value, "root password", min_length=kdf.min_length, hint=hint)

    root_password = prompter.password(
        "root password", file=args.root_password_file, env_var=ROOT_PASSWORD_ENV,
        check=check_root, flag="--root-password-file")

    def check_provisioning(value: str) -> None:
        pw.password_bytes(value, "provisioning password", min_length=kdf.min_length, hint=hint)
        if unicodedata.normalize("NFC", value) == unicodedata.normalize("NFC", root_password):
            raise ProvisioningError("the provisioning password must differ from the root password "
                                    "(whoever provisions nodes must not hold the root)")

    provisioning_password = prompter.password(
        "provisioning password", file=args.provisioning_password_file, env_var=PROVISIONING_PASSWORD_ENV,
        check=check_provisioning, flag="--provisioning-password-file")

    spec = collect_spec(args, prompter, on_node_id=lambda node: check_node_free(directory, node, args.force))
    trusted_before = _existing_roots(node_paths(directory, spec.node_id)["config"]) if args.force else set()

    root = pw.root_identity(root_password, kdf)
    if expected_root is not None and root.fingerprint != expected_root:
        other, alternative = _other_root(root_password, kdf)
        if alternative is not None and alternative.fingerprint == expected_root:
            raise _version_mismatch(kdf, other, expected_root)
        raise ProvisioningError(f"wrong root password: it derives root {root.fingerprint}, "
                                f"not the expected {expected_root}")
    if trusted_before and root.public_key not in trusted_before and not args.new_root:
        other, alternative = _other_root(root_password, kdf)
        if alternative is not None and alternative.public_key in trusted_before:
            raise _version_mismatch(kdf, other, alternative.fingerprint)
        raise ProvisioningError(f"wrong root password? it derives root {root.fingerprint}, which node "
                                f"{spec.node_id} does not trust yet; pass --new-root to move it to this root")
    provisioner = pw.provisioner_identity(provisioning_password, kdf)

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

    if args.legacy_kdf:  # said once everything is checked: a refused run prints its one error line only
        log.warning("--legacy-kdf: derived with the v1 quick-start parameters (Argon2id %d passes, %d MiB), "
                    "which make an offline password guess several times cheaper than v2; migrate this "
                    "deployment (docs/provisioning.md)", kdf.opslimit, kdf.memlimit >> 20)
    write_node(directory, spec.node_id, identity, chains=[chain], roots=[root_cert],
               bootstrap_servers=spec.bootstrap_servers, crypto=role_settings(spec.role), force=args.force)
    print_node_summary(out, "provisioned", spec.node_id, directory, identity.fingerprint, chain, root_cert)
    out.write(f"  provisioner  {provisioner.fingerprint}\n")
    out.write(f"  derivation   {kdf.describe()}\n")
    if spec.bootstrap_servers is None:
        out.write("  note         no --bootstrap-servers given: set [kafka] bootstrap_servers in "
                  f"{node_paths(directory, spec.node_id)['config']}\n")
    return 0
