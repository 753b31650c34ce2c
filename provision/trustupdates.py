"""``kafkaratchet-provision allowlist`` / ``denylist``: publish a signed trust update (v2).

The entry is signed by the node whose config is given (an ``admin`` node, whose
chain carries the ``allowlist`` / ``denylist`` usage), rehearsed against that
node's own trust lists before anything is sent (an entry they would refuse is
refused here, with the reason), and published on the cluster's ``allowlist`` or
``denylist`` topic, where every node and controller applies it live.

Scope is explicit: a denial covers ``--topics`` (by default everything the
signer may deny for), and a new root is admitted with ``--topics``,
``--usages``, ``--pathlen`` and ``--lifetime`` no wider than the signer. A node
may always deny itself (``denylist --self``). ``denylist --republish`` re-signs
the denials an admin node persisted before trust updates v2.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TextIO

from kafkaratchet.errors import ConfigError, KafkaRatchetError, ProvisioningError
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.nodefiles import parse_public_key_arg
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Chain, Usage
from kafkaratchet.protocol.identity import fingerprint
from kafkaratchet.protocol.trust import KIND_ALLOW, KIND_DENY, TrustUpdate, make_trust_update
from kafkaratchet.protocol.validation import ValidatedChain

from .inputs import Prompter, parse_topics

__all__ = ["run_allowlist", "run_denylist", "build_update", "subject_key", "signer_chain"]

log = logging.getLogger(__name__)


def subject_key(text: str) -> bytes:
    """A public key given as 64 hex digits, or as the path of the node's ``.config``."""
    try:
        return parse_public_key_arg(text)
    except ConfigError as exc:
        raise ProvisioningError(str(exc)) from None


def signer_chain(signer: Credentials, usage: str | None) -> tuple[Chain, ValidatedChain]:
    """The signer's valid chain holding ``usage`` (any valid chain for None), widest topics first."""
    found: list[tuple[Chain, ValidatedChain]] = []
    for chain in signer.chains:
        try:
            checked = signer.trust.validate(chain)
        except KafkaRatchetError:
            continue
        if usage is None or usage in checked.usages:
            found.append((chain, checked))
    if not found:
        if usage is None:
            raise ProvisioningError(f"{signer.store.path}: no valid chain: a key must show a valid chain to "
                                    "deny itself")
        raise ProvisioningError(f"{signer.store.path}: no valid chain with the {usage} usage; provision an "
                                "admin node (--role admin) to sign trust updates")
    found.sort(key=lambda pair: pair[1].topics is not None)
    return found[0]


def build_update(signer: Credentials, kind: str, subject: bytes, *, topics: tuple[str, ...] | None = None,
                 usages: frozenset[str] | None = None, pathlen: int | None = None, lifetime: int | None = None,
                 self_deny: bool = False, scope_given: bool = False) -> TrustUpdate:
    """Sign an entry and prove it valid against the signer's own trust lists, without changing them.

    ``topics`` None with ``scope_given`` False means "as wide as the signer may go".
    """
    now = int(time.time())
    if self_deny:
        chain, checked = signer_chain(signer, None)
        update = make_trust_update(KIND_DENY, signer.identity, chain, signer.public_key, topics=topics,
                                   issued_at=now)
    else:
        needed = Usage.ALLOWLIST if kind == KIND_ALLOW else Usage.DENYLIST
        chain, checked = signer_chain(signer, needed)
        if topics is None and not scope_given:
            topics = checked.topics
        if kind == KIND_DENY:
            update = make_trust_update(KIND_DENY, signer.identity, chain, subject, topics=topics, issued_at=now)
        else:
            if lifetime is None:
                expiry = checked.expiry
            else:
                expiry = now + lifetime if lifetime > 0 else 0
            update = make_trust_update(KIND_ALLOW, signer.identity, chain, subject, topics=topics,
                                       usages=checked.usages if usages is None else usages, pathlen=pathlen,
                                       expiry=expiry, not_before=now - 60, issued_at=now)
    rehearsal = signer.trust.copy()
    try:
        rehearsal.apply(update)
    except KafkaRatchetError as exc:
        raise ProvisioningError(f"the {kind} entry would be refused by every node: {exc}") from None
    return update


def _publish(store: KafkaCryptoStore, topic: str, updates: list[TrustUpdate], bootstrap: str | None) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from kafkaratchet.node.trusttopics import entry_record_key

    config = store.get_kafka_config("producer", extra="crypto")
    if bootstrap:
        config["bootstrap_servers"] = bootstrap
    if not config.get("bootstrap_servers"):
        raise ProvisioningError("no bootstrap servers: give --bootstrap-servers or set them in the config")
    try:
        producer = KafkaProducer(**config)
        try:
            futures = [producer.send(topic, key=entry_record_key(u.encode()), value=u.encode()) for u in updates]
            for future in futures:
                future.get(timeout=30)
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


def _scope_text(topics: tuple[str, ...] | None) -> str:
    return "every topic" if topics is None else " ".join(topics)


def run_denylist(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    store, signer, settings = _signer(args.config)
    topics = parse_topics(args.topics) if args.topics else None
    if args.republish:
        if args.self or args.key is not None or topics is not None:
            raise ProvisioningError("--republish takes no key, --self or --topics")
        keys = sorted(signer.trust.provisioned_denied - {signer.public_key})
        if not keys:
            out.write(f"nothing to re-publish: {args.config} lists no denied keys\n")
            return 0
        updates = [build_update(signer, KIND_DENY, key, scope_given=True) for key in keys]
        _publish(store, settings.denylist_topic, updates, args.bootstrap_servers)
        out.write(f"published: {len(updates)} denial(s) re-signed as v2 for every topic "
                  f"(signed by {signer.fingerprint})\n")
        return 0
    if args.self == (args.key is not None):
        raise ProvisioningError("name the key to denylist, or give --self (not both)")
    subject = signer.public_key if args.self else subject_key(args.key)
    update = build_update(signer, KIND_DENY, subject, topics=topics, self_deny=args.self,
                          scope_given=topics is not None or args.self)
    _publish(store, settings.denylist_topic, [update], args.bootstrap_servers)
    out.write(f"published: denylist {fingerprint(subject)} for {_scope_text(update.topics)} "
              f"(signed by {signer.fingerprint})\n")
    return 0


def run_allowlist(args: argparse.Namespace, prompter: Prompter, out: TextIO) -> int:
    store, signer, settings = _signer(args.config)
    subject = subject_key(args.key)
    topics = parse_topics(args.topics) if args.topics else None
    usages = frozenset(args.usages) if args.usages else None
    if usages is not None and not usages <= Usage.ALL:
        raise ProvisioningError(f"unknown usage(s): {', '.join(sorted(usages - Usage.ALL))}")
    if args.pathlen is not None and not 0 <= args.pathlen <= 255:
        raise ProvisioningError("--pathlen must be 0..255")
    if args.lifetime is not None and args.lifetime < 0:
        raise ProvisioningError("--lifetime must be 0 (never expires) or a number of seconds")
    update = build_update(signer, KIND_ALLOW, subject, topics=topics, usages=usages, pathlen=args.pathlen,
                          lifetime=args.lifetime)
    _publish(store, settings.allowlist_topic, [update], args.bootstrap_servers)
    out.write(f"published: allowlist root {fingerprint(subject)} for {_scope_text(update.topics)} "
              f"(signed by {signer.fingerprint})\n")
    return 0
