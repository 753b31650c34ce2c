"""How config text becomes typed values: the ``[crypto]`` schema machinery and the Kafka option table.

Every ``[crypto]`` key is declared once, as a field (name, type, default) of one of the
dataclasses in :mod:`kafkaratchet.files.settings`; this module turns text into that type with
configparser's rules and says which key, in which file, did not parse.

Kafka options are text unless :data:`KAFKA_OPTION_TYPES` names them: a password such as
``000123`` stays the string written, ``linger_ms = 5`` becomes the int 5.
"""

from __future__ import annotations

import configparser
import logging
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import fields
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, TypeVar

from kafkaratchet.errors import ConfigError

__all__ = ["SchemaSection", "coerce", "coerce_kafka", "KAFKA_OPTION_TYPES", "is_kafka_section", "warn_unknown"]

log = logging.getLogger(__name__)

_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES
_S = TypeVar("_S", bound="SchemaSection")


def _where(key: str, section: str, source: str | os.PathLike[str] | None) -> str:
    return f"{source}: [{section}] {key}" if source else f"[{section}] {key}"


def _invalid(key: str, section: str, source: str | os.PathLike[str] | None, raw: Any, what: str) -> ConfigError:
    return ConfigError(f"{_where(key, section, source)} = {str(raw)[:40]!r} is not a valid {what}")


def coerce(raw: Any, kind: Any, *, key: str, section: str = "crypto",
           source: str | os.PathLike[str] | None = None, non_negative: bool = True, finite: bool = True) -> Any:
    """``raw`` (text, or a value already of the declared type) as ``kind``: int, float, bool, str or
    ``tuple[str, ...]`` (a comma list), by configparser's rules; numbers must (by default) be finite and
    non-negative. Anything else is a :class:`ConfigError` naming ``[section] key`` and ``source``."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
                return _BOOLEANS[raw.strip().lower()]
            raise ValueError(raw)
        if kind is int or kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            if kind is int and isinstance(raw, float):
                if not raw.is_integer():
                    raise ValueError(raw)
                raw = int(raw)
            number = kind(raw.strip() if isinstance(raw, str) else raw)
            if (finite and not math.isfinite(number)) or (non_negative and number < 0):
                raise ValueError(raw)
            return number
        if kind is str:
            return raw if isinstance(raw, str) else str(raw)
        if typing.get_origin(kind) is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(item).strip() for item in items if str(item).strip())
    except (TypeError, ValueError, OverflowError):
        what = {bool: "boolean (true/false, yes/no, on/off, 1/0)", int: "non-negative integer",
                float: "non-negative number"}.get(kind, getattr(kind, "__name__", str(kind)))
        if not non_negative and kind in (int, float):
            what = what.replace("non-negative ", "")
        raise _invalid(key, section, source, raw, what) from None
    raise TypeError(f"no coercion to {kind!r}")  # a schema declaring a type this module does not know


class TextStore(Protocol):
    """What :meth:`SchemaSection.from_store` needs of a store: its path and a section's raw text."""

    @property
    def path(self) -> os.PathLike[str]: ...

    def load_section_text(self, section: str) -> dict[str, str]: ...


class SchemaSection:
    """Base of the ``[crypto]`` dataclasses: ``from_section`` coerces each declared field from text."""

    #: the config section these fields live in
    section: ClassVar[str] = "crypto"

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {spec.name: hints[spec.name] for spec in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {spec.name: spec.default for spec in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def from_section(cls: type[_S], section: Mapping[str, Any], *,
                     source: str | os.PathLike[str] | None = None) -> _S:
        """The declared fields present in ``section`` (text or already typed), coerced; the rest defaulted.
        Keys not declared here are ignored (they may belong to another part of the schema)."""
        values = {name: coerce(section[name], kind, key=name, section=cls.section, source=source)
                  for name, kind in cls.field_types().items() if name in section}
        settings = cls(**values)
        settings.validate(source)
        return settings

    @classmethod
    def from_store(cls: type[_S], store: TextStore) -> _S:
        """The fields as written in ``store``'s section; a bad value is a ConfigError naming key and file."""
        return cls.from_section(store.load_section_text(cls.section), source=store.path)

    def validate(self, source: str | os.PathLike[str] | None = None) -> None:
        """Checks across fields or beyond the type; overridden where there are any."""


def warn_unknown(keys: Iterable[str], known: Iterable[str], *, section: str = "crypto",
                 source: str | os.PathLike[str] | None = None) -> list[str]:
    """Log one warning per key not in ``known``, naming the nearest known key; return those keys.
    Foreign keys (a kafkacrypto config's own) are warned about, never refused."""
    import difflib  # only when a config is read, not at import

    known = sorted(set(known))
    unknown = [key for key in dict.fromkeys(keys) if key not in known]
    for key in unknown:
        nearest = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        log.warning("%s is not a known option, ignored%s", _where(key, section, source), hint)
    return unknown


# -- Kafka options ----------------------------------------------------------------------------------

#: kafka-python options (KafkaProducer / KafkaConsumer, kafka-python >= 3) whose value is not text,
#: by kind; every other option reaches the client as the string written. Checked against the installed
#: kafka-python's DEFAULT_CONFIG by tests/unit/test_config_schema.py.
KAFKA_OPTION_TYPES: Mapping[str, str] = MappingProxyType({
    # ints
    "auto_commit_interval_ms": "int",
    "batch_size": "int",
    "bootstrap_timeout_ms": "int",
    "connections_max_idle_ms": "int",
    "delivery_timeout_ms": "int",
    "fetch_max_bytes": "int",
    "fetch_max_wait_ms": "int",
    "fetch_min_bytes": "int",
    "heartbeat_interval_ms": "int",
    "linger_ms": "int",
    "max_block_ms": "int",
    "max_in_flight_requests_per_connection": "int",
    "max_partition_fetch_bytes": "int",
    "max_poll_interval_ms": "int",
    "max_poll_records": "int",
    "max_request_size": "int",
    "metadata_max_age_ms": "int",
    "metrics_num_samples": "int",
    "metrics_sample_window_ms": "int",
    "receive_buffer_bytes": "int",  # default None (the OS default), an int when set
    "receive_message_max_bytes": "int",
    "reconnect_backoff_max_ms": "int",
    "reconnect_backoff_ms": "int",
    "request_timeout_ms": "int",
    "retries": "int",  # default float("inf") (retry until delivery_timeout_ms), an int when set
    "retry_backoff_ms": "int",
    "send_buffer_bytes": "int",  # default None, an int when set
    "session_timeout_ms": "int",
    "transaction_timeout_ms": "int",
    # floats
    "consumer_timeout_ms": "float",
    # booleans
    "allow_auto_create_topics": "bool",
    "check_crcs": "bool",
    "enable_auto_commit": "bool",
    "enable_idempotence": "bool",
    "enable_incremental_fetch_sessions": "bool",
    "exclude_internal_topics": "bool",
    "metrics_enabled": "bool",
    "ssl_check_hostname": "bool",
    # special
    "acks": "acks",  # "all" stays "all"; 0, 1, -1 become ints
    "api_version": "api_version",  # "(3, 7)", "3.7" or "3,7" become the tuple (3, 7)
})

_KAFKA_SECTION = re.compile(r"kafka(-.+)?")


def is_kafka_section(section: str | None) -> bool:
    """``kafka``, ``kafka-producer``, ``kafka-crypto-consumer``, ...: the sections get_kafka_config merges."""
    return section is not None and _KAFKA_SECTION.fullmatch(section) is not None


def coerce_kafka(key: str, text: str, *, section: str = "kafka", source: str | os.PathLike[str] | None = None
                 ) -> Any:
    """A Kafka option's value: typed when :data:`KAFKA_OPTION_TYPES` names it, else the text as written."""
    kind = KAFKA_OPTION_TYPES.get(key)
    if kind is None:
        return text
    if kind == "acks":
        value = text.strip().lower()
        if value == "all":
            return "all"
        if value in {"0", "1", "-1"}:
            return int(value)
        raise _invalid(key, section, source, text, "acks (all, 0, 1 or -1)")
    if kind == "api_version":
        parts = [part for part in re.split(r"[\s,.()]+", text) if part]
        if parts and all(part.isdigit() and len(part) <= 4 for part in parts):
            return tuple(int(part) for part in parts)
        raise _invalid(key, section, source, text, "api_version (such as 3.7 or (3, 7))")
    return coerce(text, {"int": int, "float": float, "bool": bool}[kind], key=key, section=section,
                  source=source, non_negative=False, finite=False)
