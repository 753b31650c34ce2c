"""KafkaCryptoStore: a node's configuration file, kafkacrypto-compatible.

The ``.config`` file (ConfigParser) holds only public material and settings.
Its sections:

- ``DEFAULT``: ``node_id``;
- ``kafka``, ``kafka-producer``, ``kafka-consumer``, ``kafka-crypto``,
  ``kafka-crypto-producer``, ``kafka-crypto-consumer``: kafka-python settings,
  merged by :meth:`KafkaCryptoStore.get_kafka_config`;
- ``crypto``: kafkaratchet settings, and the paths of the two secret files
  (``cryptokey`` and ``ratchet``, default ``<node_id>.crypto`` and
  ``<node_id>.seed`` beside the config);
- ``chains``, ``allowlist``, ``denylist``: base64 certificates, chains and keys.

Values are written as text and read back typed: ``[crypto]`` keys by their declared type
(:mod:`kafkaratchet.files.settings`), Kafka options by :data:`~kafkaratchet.files.configschema.KAFKA_OPTION_TYPES`
(every other Kafka option stays the string written), other sections kafkacrypto-style
(:func:`parse_value`). Unknown ``[crypto]`` keys are warned about, by name, when the file is opened.
One store may be shared by several ``KafkaCrypto`` objects on several threads.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import io
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kafkaratchet.errors import ConfigError
from kafkaratchet.files.configschema import coerce, coerce_kafka, is_kafka_section, warn_unknown
from kafkaratchet.files.secretfile import write_atomic
from kafkaratchet.files.settings import SecretFiles, crypto_types

__all__ = ["KafkaCryptoStore", "parse_value", "NODE_ID", "check_node_id"]

log = logging.getLogger(__name__)

_CONFIG_MODE = 0o644
#: what a node id may be: it is also the stem of the node's file names
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: endings a node id may not have: a trailing dot, or one of the node's own file suffixes
_NODE_ID_ENDINGS = (".", ".config", ".crypto", ".seed")


def check_node_id(node_id: str) -> str:
    """``node_id`` if it is a valid node id (it is also the stem of the node's file names); else ConfigError.

    The one rule, used by the store, by :func:`~kafkaratchet.files.provisioning.write_node` (before it writes a
    file) and by the provisioning tool's prompts.
    """
    if not NODE_ID.fullmatch(node_id) or node_id.endswith(_NODE_ID_ENDINGS):
        raise ConfigError(f"invalid node id {node_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit and not ending in '.', '.config', '.crypto' or '.seed'")
    return node_id


def parse_value(text: str) -> Any:
    """kafkacrypto-style typed value: int, float, True/False/None, else the string. Used only for
    sections without a schema (and undeclared ``[crypto]`` keys): never for Kafka options or secret paths."""
    lowered = text.strip().lower()
    if lowered in {"true", "yes", "on"}:
        return True
    if lowered in {"false", "no", "off"}:
        return False
    if lowered in {"none", "null"}:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _format_value(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


class KafkaCryptoStore:
    """The node's ``.config`` file; thread-safe, persisted atomically on every change."""

    def __init__(self, file: str | os.PathLike[str], nodeID: str | None = None) -> None:  # noqa: N803
        self.path = Path(file)
        self._lock = threading.RLock()
        self._config = configparser.ConfigParser(interpolation=None, default_section="DEFAULT")
        self._config.optionxform = str  # type: ignore[assignment,method-assign]  # keep case
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"config file {self.path} does not exist (provision the node first)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {self.path}: {exc}") from None
        try:
            self._config.read_string(text, source=str(self.path))
        except configparser.Error as exc:
            raise ConfigError(f"config file {self.path} is not valid: {exc.message}") from None
        node_id = nodeID or self._config.defaults().get("node_id")
        if not node_id:
            raise ConfigError(f"config file {self.path} has no node_id in its DEFAULT section")
        try:
            check_node_id(node_id)  # the node id names the secret files: a short, portable file name
        except ConfigError as exc:
            raise ConfigError(f"config file {self.path}: {exc}") from None
        if nodeID and self._config.defaults().get("node_id") not in (None, nodeID):
            raise ConfigError(f"config file {self.path} is for node "
                              f"{self._config.defaults()['node_id']!r}, not {nodeID!r}")
        self.node_id: str = node_id
        self._closed = False
        if self._config.has_section("crypto"):
            warn_unknown(self.load_section_text("crypto"), crypto_types(), source=self.path)

    @classmethod
    def open(cls, nodeID: str | None, config: KafkaCryptoStore | str | os.PathLike[str] | None  # noqa: N803
             ) -> KafkaCryptoStore:
        """kafkacrypto's convention: ``config`` is a store, a path, or None for ``<nodeID>.config``."""
        if isinstance(config, KafkaCryptoStore):
            store = config
        else:
            if config is None and not nodeID:
                raise ConfigError("a nodeID or a config is needed")
            store = cls(config if config is not None else f"{nodeID}.config", nodeID)
        if nodeID and store.node_id != nodeID:
            raise ConfigError(f"config {store.path} is for node {store.node_id!r}, not {nodeID!r}")
        return store

    # -- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, file: str | os.PathLike[str], node_id: str,
               sections: Mapping[str, Mapping[str, Any]] | None = None, *, overwrite: bool = False
               ) -> KafkaCryptoStore:
        """Write a new config file (atomically) and open it."""
        path = Path(file)
        if path.exists() and not overwrite:
            raise ConfigError(f"config file {path} already exists")
        config = configparser.ConfigParser(interpolation=None)
        config.optionxform = str  # type: ignore[assignment,method-assign]
        config["DEFAULT"] = {"node_id": node_id}
        for name, values in (sections or {}).items():
            config[name] = {key: _format_value(value) for key, value in values.items() if value is not None}
        buffer = io.StringIO()
        config.write(buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue().encode("utf-8"), mode=_CONFIG_MODE)
        return cls(path)

    # -- paths --------------------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return self.path.parent

    def secret_path(self, option: str, suffix: str | None = None) -> Path:
        """Where a secret file lives: the ``crypto`` option if set (relative to the config), else
        ``<node_id><suffix>`` beside the config (``suffix`` defaults to the one ``SecretFiles`` declares).
        The option is read as written: ``cryptokey = 0001`` names the file ``0001``."""
        if suffix is None:
            suffix = SecretFiles.SUFFIXES[option]
        configured = self.load_text(option, "crypto")
        name = configured if configured else f"{self.node_id}{suffix}"
        path = Path(name)
        path = path if path.is_absolute() else self.directory / path
        encoded = os.fsencode(path)
        if b"\0" in encoded or len(encoded) > 4096 or any(len(part) > 255 for part in encoded.split(b"/")):
            raise ConfigError(f"{self.path}: [crypto] {option} is not a usable file name")
        return path

    # -- kafkacrypto API ----------------------------------------------------------------------------
    def get_kafka_config(self, use: str, extra: str | None = None) -> dict[str, Any]:
        """kafka-python keyword arguments for ``use`` ("producer" or "consumer"), merging ``kafka``,
        ``kafka-<use>``, ``kafka-<extra>`` and ``kafka-<extra>-<use>`` in that order."""
        if use not in {"producer", "consumer"}:
            raise ConfigError(f"use must be 'producer' or 'consumer', not {use!r}")
        names = ["kafka", f"kafka-{use}"]
        if extra:
            names += [f"kafka-{extra}", f"kafka-{extra}-{use}"]
        merged: dict[str, Any] = {}
        with self._lock:
            for name in names:
                if self._config.has_section(name):
                    merged.update({k: self._typed(name, k, v, strict=True) for k, v in self._config.items(name)
                                   if k not in self._config.defaults()})
        if use == "consumer":
            if extra == "crypto":
                # the key-exchange consumer uses assign(): no group, nothing to commit; and an answer
                # must not sit in the broker for the default 500 ms fetch wait
                merged.setdefault("enable_auto_commit", False)
                merged.setdefault("fetch_max_wait_ms", 100)
            else:
                merged.setdefault("group_id", self.node_id)
        return merged

    def _typed(self, section: str | None, name: str, text: str, *, strict: bool = False) -> Any:
        """``text`` as the schema types it; when not ``strict``, text that does not parse stays text
        (for the kafkacrypto readers; the schema readers then refuse it, naming key and file)."""
        try:
            if section == "crypto" and name in crypto_types():
                return coerce(text, crypto_types()[name], key=name, source=self.path)
            if is_kafka_section(section):
                return coerce_kafka(name, text, section=str(section), source=self.path)
        except ConfigError:
            if strict:
                raise
            return text
        return parse_value(text)

    def load_section(self, section: str, defaults: bool = False) -> dict[str, Any]:
        """kafkacrypto's typed section (see the module doc for the types); text that does not parse as
        its declared type is returned as text, never raised (``get_kafka_config`` and the settings raise)."""
        with self._lock:
            if not self._config.has_section(section):
                return dict(self._config.defaults()) if defaults else {}
            base = self._config.defaults()
            items = [(k, v, k in base) for k, v in self._config.items(section) if defaults or k not in base]
        return {k: parse_value(v) if inherited else self._typed(section, k, v) for k, v, inherited in items}

    def load_section_text(self, section: str) -> dict[str, str]:
        """A section's own options as written (no DEFAULT entries, no typing)."""
        with self._lock:
            if not self._config.has_section(section):
                return {}
            base = self._config.defaults()
            return {k: v for k, v in self._config.items(section) if k not in base}

    def load_text(self, name: str, section: str | None = None) -> str | None:
        """One option as written, or None."""
        with self._lock:
            if section is None or section == "DEFAULT":
                return self._config.defaults().get(name)
            if self._config.has_option(section, name):
                return self._config.get(section, name)
            return None

    def load_value(self, name: str, section: str | None = None, default: Any = None) -> Any:
        value = self.load_text(name, section)
        if value is None:
            return default
        if section is None or section == "DEFAULT":
            return parse_value(value)
        return self._typed(section, name, value)

    def load_bytes(self, name: str, section: str) -> bytes | None:
        raw = self.load_text(name, section)
        if raw is None:
            return None
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{self.path}: [{section}] {name} is not valid base64") from None

    def store_value(self, name: str, value: Any, section: str | None = None) -> None:
        """Set (or, with ``None``, remove) a value and persist the file atomically."""
        self.store_values({name: value}, section)

    def store_values(self, values: Mapping[str, Any], section: str | None = None) -> None:
        with self._lock:
            if self._closed:
                raise ConfigError("store is closed")
            target = section or "DEFAULT"
            if target != "DEFAULT" and not self._config.has_section(target):
                self._config.add_section(target)
            for name, value in values.items():
                if value is None:
                    self._config.remove_option(target, name)
                else:
                    self._config.set(target, name, _format_value(value))
            self._persist()

    def replace_section(self, section: str, values: Mapping[str, Any]) -> None:
        """Replace a whole section (e.g. ``chains``) in one atomic write."""
        with self._lock:
            if self._closed:
                raise ConfigError("store is closed")
            if self._config.has_section(section):
                self._config.remove_section(section)
            self._config.add_section(section)
            for name, value in values.items():
                self._config.set(section, name, _format_value(value))
            self._persist()

    def _persist(self) -> None:
        buffer = io.StringIO()
        self._config.write(buffer)
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            mode = _CONFIG_MODE
        write_atomic(self.path, buffer.getvalue().encode("utf-8"), mode=mode)

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"KafkaCryptoStore({str(self.path)!r}, node_id={self.node_id!r})"
