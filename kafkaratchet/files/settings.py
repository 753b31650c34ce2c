"""The ``[crypto]`` section of a node's config: every key, its type and its default, declared once.

Each dataclass below is one reader's part of the section: :class:`NodeSettings` (the node),
:class:`ChainServerSettings`, :class:`KeyinfoSettings`, :class:`RoleSettings` (written by the
provisioning tool) and :class:`SecretFiles` (the secret files' paths, read by
``KafkaCryptoStore.secret_path``). Text is coerced by the declared type
(:mod:`kafkaratchet.files.configschema`); a key declared nowhere here is warned about when the store opens.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from kafkaratchet.errors import ConfigError
from kafkaratchet.files.configschema import SchemaSection
from kafkaratchet.protocol.kem import KemType

__all__ = ["NodeSettings", "ChainServerSettings", "KeyinfoSettings", "RoleSettings", "SecretFiles",
           "CRYPTO_SCHEMA", "crypto_types", "crypto_defaults", "root_topic"]

_KEM_NAMES = {"x25519": KemType.X25519, "x25519-mlkem768": KemType.X25519_MLKEM768}


def root_topic(topic: str, separator: str = ".") -> str:
    """The topic name up to the first separator: ``R``, ``R.a`` and ``R.a.b`` share keys."""
    return topic.split(separator, 1)[0] if separator else topic


@dataclass(frozen=True)
class NodeSettings(SchemaSection):
    topic_separator: str = "."
    reqs_suffix: str = ".reqs"
    keys_suffix: str = ".keys"
    subs_suffix: str = ".subs"
    chains_topic: str = "chains"
    allowlist_topic: str = "allowlist"
    denylist_topic: str = "denylist"
    #: a deserializer waits at most max_key_wait_intervals * key_wait_interval seconds for a key
    key_wait_interval: float = 0.5
    max_key_wait_intervals: int = 10
    #: seconds between ratchet steps, and how long old producer keys are kept for late consumers
    ratchet_interval: float = 86400.0
    key_max_age: float = 7 * 86400.0
    #: requests older than this are not answered; a starting producer reads back this far
    request_max_age: float = 120.0
    #: tolerated clock difference between nodes, for certificates and requests
    clock_skew: int = 300
    #: first re-request after this many seconds without an answer (then doubling, up to 30 s)
    request_retry: float = 1.0
    #: let bytes that are not kafkaratchet records through as cleartext (gradual roll-out)
    allow_plaintext: bool = False
    #: KEMs offered in key requests, strongest used by the answering producer
    kems: str = "x25519,x25519-mlkem768"
    #: seconds between repeats of the same warning from the management thread
    log_interval: float = 60.0
    #: create a missing key-exchange or trust topic (when the node's principal may create topics)
    create_topics: bool = True

    def validate(self, source: str | os.PathLike[str] | None = None) -> None:
        where = f"{source}: " if source else ""
        try:
            self.kem_types()  # validate now, not on the first key request
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
        for name in ("ratchet_interval", "key_max_age", "request_max_age", "request_retry"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}[crypto] {name} must be positive")

    def kem_types(self) -> tuple[KemType, ...]:
        names = [n.strip().lower() for n in self.kems.split(",") if n.strip()]
        unknown = [n for n in names if n not in _KEM_NAMES]
        if unknown or not names:
            raise ConfigError(f"[crypto] kems: unknown KEM(s) {unknown or self.kems!r}; known: {', '.join(_KEM_NAMES)}")
        return tuple(_KEM_NAMES[n] for n in names)

    def root(self, topic: str) -> str:
        return root_topic(topic, self.topic_separator)


@dataclass(frozen=True)
class ChainServerSettings(SchemaSection):
    #: seconds a certificate issued by the chain server lives
    chain_lifetime: int = 3600
    #: the chain server re-issues a chain when less than this fraction of its life is left
    chain_refresh_fraction: float = 0.5

    def validate(self, source: str | os.PathLike[str] | None = None) -> None:
        if self.chain_lifetime < 5 or not 0 < self.chain_refresh_fraction < 1:
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}[crypto] chain_lifetime must be >= 5 s and chain_refresh_fraction in (0, 1)")


@dataclass(frozen=True)
class KeyinfoSettings(SchemaSection):
    #: kafkaratchet-keyinfo warns about chains expiring within this many seconds
    chain_refresh_window: int = 86400


@dataclass(frozen=True)
class RoleSettings(SchemaSection):
    #: the role the node was provisioned as (written by kafkaratchet-provision; for keyinfo and humans)
    role: str = ""


@dataclass(frozen=True)
class SecretFiles(SchemaSection):
    """Paths of the node's secret files, relative to the config; empty: ``<node_id><suffix>`` beside it."""

    cryptokey: str = ""
    ratchet: str = ""
    keyarchive: str = ""
    trustentries: str = ""

    #: the file name suffix used when the path is not configured
    SUFFIXES: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"cryptokey": ".crypto", "ratchet": ".seed", "keyarchive": ".keys", "trustentries": ".trust"})


#: every part of the ``[crypto]`` section; a key belongs to exactly one
CRYPTO_SCHEMA: tuple[type[SchemaSection], ...] = (
    NodeSettings, ChainServerSettings, KeyinfoSettings, RoleSettings, SecretFiles)


@functools.cache
def crypto_types() -> Mapping[str, Any]:
    """Every declared ``[crypto]`` key and its type (computed once, on first use, not at import)."""
    types: dict[str, Any] = {}
    for part in CRYPTO_SCHEMA:
        for name, kind in part.field_types().items():
            if name in types:
                raise TypeError(f"[crypto] {name} is declared twice")
            types[name] = kind
    return MappingProxyType(types)


def crypto_defaults() -> dict[str, Any]:
    """Every declared ``[crypto]`` key and its default."""
    return {name: value for part in CRYPTO_SCHEMA for name, value in part.defaults().items()}
