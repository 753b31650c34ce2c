"""The ``[crypto]`` section of a node's config: every knob, its default, and its type."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError
from .kem import KemType

__all__ = ["NodeSettings", "root_topic"]

_KEM_NAMES = {"x25519": KemType.X25519, "x25519-mlkem768": KemType.X25519_MLKEM768}


def root_topic(topic: str, separator: str = ".") -> str:
    """The topic name up to the first separator: ``R``, ``R.a`` and ``R.a.b`` share keys."""
    return topic.split(separator, 1)[0] if separator else topic


@dataclass(frozen=True)
class NodeSettings:
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

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> NodeSettings:
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name not in section:
                continue
            raw = section[spec.name]
            kind = type(spec.default)
            try:
                if kind is bool:
                    if not isinstance(raw, bool):
                        raise ValueError(raw)
                    values[spec.name] = raw
                elif kind in (int, float):
                    number = kind(raw)
                    if not math.isfinite(number) or number < 0:
                        raise ValueError(raw)
                    values[spec.name] = number
                else:
                    values[spec.name] = kind(raw)
            except (TypeError, ValueError, OverflowError):
                what = "non-negative number" if kind in (int, float) else kind.__name__
                raise ConfigError(f"[crypto] {spec.name} = {str(raw)[:40]!r} is not a valid {what}") from None
        settings = cls(**values)
        settings.kem_types()  # validate now, not on the first key request
        for name in ("ratchet_interval", "key_max_age", "request_max_age", "request_retry"):
            if getattr(settings, name) <= 0:
                raise ConfigError(f"[crypto] {name} must be positive")
        return settings

    def kem_types(self) -> tuple[KemType, ...]:
        names = [n.strip().lower() for n in self.kems.split(",") if n.strip()]
        unknown = [n for n in names if n not in _KEM_NAMES]
        if unknown or not names:
            raise ConfigError(f"[crypto] kems: unknown KEM(s) {unknown or self.kems!r}; known: {', '.join(_KEM_NAMES)}")
        return tuple(_KEM_NAMES[n] for n in names)

    def root(self, topic: str) -> str:
        return root_topic(topic, self.topic_separator)
