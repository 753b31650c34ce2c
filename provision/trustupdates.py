"""``kafkaratchet-provision allowlist`` / ``denylist``: publish a signed trust update.

The entry is signed by the node whose config is given (an ``admin`` node, whose
chain carries the ``allowlist`` / ``denylist`` usage), checked against that
node's own trust lists before anything is sent, and published on the cluster's
``allowlist`` or ``denylist`` topic, where every node and controller applies it
live. A key may always denylist itself (``denylist --self``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TextIO

from kafkaratchet.certs import KIND_ALLOW, KIND_DENY, TrustStore, TrustUpdate, Usage, make_trust_update
from kafkaratchet.credentials import Credentials
from kafkaratchet.errors import ConfigError, KafkaRatchetError, ProvisioningError
from kafkaratchet.identity import PUBLIC_KEY_SIZE, fingerprint
from kafkaratchet.settings import NodeSettings
from kafkaratchet.store import KafkaCryptoStore

from .inputs import Prompter, parse_topics

__all__ = ["run_allowlist", "run_denylist", "build_update", "subject_key"]

log = logging.getLogger(__name__)


def subject_key(text: str) -> bytes:
    """A public key given as 64 hex digits, or as the path of the node's ``.config``."""
    path = Path(text)
    if path.suffix == ".config":
        if not path.exists():
            raise ProvisioningError(f"{path} does not exist")
        try:
            return Credentials(KafkaCryptoStore(path)).public_key
        except ConfigError as exc:
            raise ProvisioningError(f"cannot read the node key from {path}: {exc}") from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != PUBLIC_KEY_SIZE:
        raise ProvisioningError(f"{text!r} is neither a 64-digit hex public key nor a node's .config file")
    return key


def build_update(signer: Credentials, kind: str, subject: bytes, *, topics: tuple[str, ...] | None = None,
                 usages: frozenset[str] | None = None, self_deny: bool = False) -> TrustUpdate:
    """Sign an entry and prove it valid against the signer's own trust lists, without changing them."""
    if self_deny:
        update = make_trust_update(KIND_DENY, signer.identity, None, signer.public_key)
    else:
        needed = Usage.ALLOWLIST if kind == KIND_ALLOW else Usage.DENYLIST
        chain = signer.any_chain(needed)
        if chain is None:
            raise ProvisioningError(f"{signer.store.path}: no chain with the {needed} usage; provision an "
                                    "admin node (--role admin) to sign trust updates")
        update = make_trust_update(kind, signer.identity, chain, subject, topics=topics, cert_usages=usages)
    rehearsal = TrustStore(signer.trust.roots.values(), signer.trust.denied, skew=signer.trust.skew)
    try:
        rehearsal.apply(update)
    except KafkaRatchetError as exc:
        raise ProvisioningError(f"the {kind} entry would be refused by every node: {exc}") from None
    return update


def _publish(store: KafkaCryptoStore, topic: str, update: TrustUpdate, bootstrap: str | None) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    config = store.get_kafka_config("producer", extra="crypto")
    if bootstrap:
        config["bootstrap_servers"] = bootstrap
    if not config.get("bootstrap_servers"):
        raise ProvisioningError("no bootstrap servers: give --bootstrap-servers or set them in the config")
    try:
        producer = KafkaProducer(**config)
        try:
            producer.send(topic, value=update.encode()).get(timeout=30)
        finally:
            producer.close(timeout=5)
    except KafkaError as exc:
        raise ProvisioningError(f"could not publish on {topic}: {exc}") from None


def _signer(config: Path) -> tuple[KafkaCryptoStore, Credentials, NodeSettings]:
    if not config.exists():
        raise ProvisioningError(f"{config} does not exist")
    store = KafkaCryptoStore(config)
    settings = NodeSettings.from_section(store.load_section("crypto"))
    return store, Credentials(store, clock_skew=settings.clock_skew), settings


def run_denylist(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    store, signer, settings = _signer(args.config)
    if args.self == (args.key is not None):
        raise ProvisioningError("name the key to denylist, or give --self (not both)")
    subject = signer.public_key if args.self else subject_key(args.key)
    update = build_update(signer, KIND_DENY, subject, self_deny=args.self)
    _publish(store, settings.denylist_topic, update, args.bootstrap_servers)
    out.write(f"published: denylist {fingerprint(subject)} (signed by {signer.fingerprint})\n")
    return 0


def run_allowlist(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    store, signer, settings = _signer(args.config)
    subject = subject_key(args.key)
    topics = parse_topics(args.topics) if args.topics else None
    usages = frozenset(args.usages) if args.usages else None
    if usages is not None and not usages <= Usage.ALL:
        raise ProvisioningError(f"unknown usage(s): {', '.join(sorted(usages - Usage.ALL))}")
    update = build_update(signer, KIND_ALLOW, subject, topics=topics, usages=usages)
    _publish(store, settings.allowlist_topic, update, args.bootstrap_servers)
    shown = "all topics" if topics is None else " ".join(topics)
    out.write(f"published: allowlist root {fingerprint(subject)} for {shown} (signed by {signer.fingerprint})\n")
    return 0
