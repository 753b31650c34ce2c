"""kafkaratchet: end-to-end, message-layer encryption for Apache Kafka.

The public names are kafkacrypto's, so switching is a change of import::

    from kafkaratchet import KafkaCrypto, KafkaCryptoStore, KafkaConsumer, KafkaProducer

Everything is imported on first use: importing the package stays cheap (the
Kafka client alone costs hundreds of milliseconds) until a name is needed.

The layers, bottom up: ``protocol`` (pure formats and rules, no I/O), ``_aead``
(the AEAD engine), ``files`` (a node's files on disk), ``node`` (the Kafka-facing
runtime: threads and clients), ``services`` (the controller and chain server),
``tools`` (what the command line runs).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS: dict[str, str] = {
    "KafkaCrypto": "node.facade",
    "KafkaCryptoStore": "files.store",
    "KafkaCryptoMessage": "node.message",
    "KafkaConsumer": "node.clients",
    "KafkaProducer": "node.clients",
    "KafkaCryptoController": "services.controller",
    "KafkaCryptoChainServer": "services.chainserver",
    "KafkaRatchetError": "errors",
    "KafkaCryptoError": "errors",
    "KafkaCryptoMessageError": "errors",
    "ConfigError": "errors",
    "FormatError": "errors",
    "NotARecordError": "errors",
    "UnsupportedVersionError": "errors",
    "CryptoError": "errors",
    "DecryptionError": "errors",
    "SignatureError": "errors",
    "ChainError": "errors",
    "RatchetError": "errors",
    "KeyExchangeError": "errors",
    "ProvisioningError": "errors",
    "BrokerError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from kafkaratchet.errors import *  # noqa: F403
    from kafkaratchet.node.message import KafkaCryptoMessage  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kafkaratchet' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
