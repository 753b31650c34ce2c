"""Writing a node's three files: the library side of the provisioning tool.

``<node>.config`` (public: node id, Kafka settings, chains, allowlist),
``<node>.crypto`` (its Ed25519 identity) and ``<node>.seed`` (its ratchet), the
two secret files mode 0600. Used by ``kafkaratchet-provision``, the demo and the
tests, so every node on disk is laid out the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kafkaratchet.errors import ConfigError, ProvisioningError
from kafkaratchet.files.secretfile import write_atomic
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.files.store import KafkaCryptoStore, check_node_id
from kafkaratchet.protocol.certs import Certificate, Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity, encode_identity_file

__all__ = ["ROLE_USAGES", "ROLE_PATHLEN", "write_node", "issue_node_chain", "node_paths"]

log = logging.getLogger(__name__)

#: what each provisioning role may do; the ``-limited`` roles ask for keys only through a controller.
#: docs/provisioning.md's role table is this mapping (tests/unit/test_roles.py compares them).
ROLE_USAGES: dict[str, frozenset[str]] = {
    "producer": frozenset({Usage.PRODUCE}),
    "consumer": frozenset({Usage.CONSUME}),
    "prodcon": frozenset({Usage.PRODUCE, Usage.CONSUME}),
    "consumer-limited": frozenset({Usage.SUBSCRIBE}),
    "prodcon-limited": frozenset({Usage.PRODUCE, Usage.SUBSCRIBE}),
    # a controller only re-signs subscribers' requests; producers wrap the keys to the subscriber, so it
    # never needs (and must not hold) consume
    "controller": frozenset({Usage.CONTROLLER}),
    # a chain server re-issues nodes' chains, so it must hold every usage it grants (a child never widens)
    "chainserver": frozenset({Usage.CHAIN_ISSUE, Usage.PRODUCE, Usage.CONSUME, Usage.SUBSCRIBE}),
    # signs allowlist and denylist entries; it holds every usage because a new root it admits can never be
    # wider than the admin itself
    "admin": Usage.ALL,
}

#: roles whose certificates may have certificates below them
ROLE_PATHLEN: dict[str, int] = {"chainserver": 1}


def node_paths(directory: str | os.PathLike[str], node_id: str) -> dict[str, Path]:
    base = Path(directory)
    return {suffix: base / f"{node_id}.{suffix}" for suffix in ("config", "crypto", "seed", "keys")}


def issue_node_chain(signer: SigningIdentity, signer_chain: Chain | None, subject: bytes, role: str, *,
                     topics: Iterable[str] | None = None, lifetime: int = 0, pathlen: int | None = None) -> Chain:
    """A chain for ``subject`` with the role's usages, signed by ``signer`` below ``signer_chain``."""
    usages = ROLE_USAGES.get(role)
    if usages is None:
        raise ProvisioningError(f"unknown role {role!r}; choose one of {', '.join(ROLE_USAGES)}")
    expiry = int(time.time()) + lifetime if lifetime > 0 else 0
    if pathlen is None:
        pathlen = ROLE_PATHLEN.get(role, 0)
    cert = issue_certificate(signer, subject, usages=usages, topics=list(topics) if topics else None,
                             pathlen=pathlen, expiry=expiry)
    return signer_chain.extend(cert) if signer_chain is not None else Chain.of(cert)


def write_node(directory: str | os.PathLike[str], node_id: str, identity: SigningIdentity, *,
               chains: Iterable[Chain] = (), roots: Iterable[Certificate] = (), denied: Iterable[bytes] = (),
               bootstrap_servers: str | None = None, crypto: Mapping[str, Any] | None = None,
               kafka: Mapping[str, Any] | None = None, force: bool = False) -> KafkaCryptoStore:
    """Create (or with ``force`` replace) a node's config, identity and seed files."""
    try:
        check_node_id(node_id)  # before anything is written: the store would refuse the id afterwards
    except ConfigError as exc:
        raise ProvisioningError(str(exc)) from None
    paths = node_paths(directory, node_id)
    existing = [p for key, p in paths.items() if key in ("crypto", "seed", "config") and p.exists()]
    if existing and not force:
        raise ProvisioningError(f"{existing[0]} already exists; use --force to replace this node's identity")
    Path(directory).mkdir(parents=True, exist_ok=True)
    kafka_section = dict(kafka or {})
    if bootstrap_servers:
        kafka_section["bootstrap_servers"] = bootstrap_servers
    sections: dict[str, Mapping[str, Any]] = {
        "kafka": kafka_section,
        "kafka-crypto": {},
        "crypto": dict(crypto or {}),
        "chains": {f"chain{i}": c.encode() for i, c in enumerate(chains)},
        "allowlist": {cert.subject.hex(): cert.encode() for cert in roots},
        "denylist": {key.hex(): key for key in denied},
    }
    write_atomic(paths["crypto"], encode_identity_file(identity))
    if force:
        for stale in (paths["seed"], paths["keys"]):
            stale.unlink(missing_ok=True)
    Ratchet.create(paths["seed"])
    store = KafkaCryptoStore.create(paths["config"], node_id, sections, overwrite=force)
    log.info("provisioned node %s (%s) in %s", node_id, identity.fingerprint, directory)
    return store
