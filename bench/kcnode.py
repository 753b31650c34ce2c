"""kafkacrypto 0.9.11.3 nodes for side-by-side numbers (only imported when kafkacrypto is).

A kafkacrypto node is created the way its own tools leave a fresh node: a
``KafkaCryptoStore`` initialised by kafkacrypto itself (with its temporary root
of trust), a new identity (``.crypto``) and a new ratchet (``.seed``) it generates
on first use, and kafkacrypto's own kafka-python wrappers as ``kp`` and ``kc``.

Its serializer then works exactly as in production: the first record of a root
derives the producer generators from the ratchet, every record after that goes
through its lock, its per-record BLAKE2b key and nonce derivation, msgpack and
``crypto_secretbox``. A consumer normally learns the key through kafkacrypto's
key exchange, which needs chains signed by a provisioned root of trust; instead,
:func:`share_key` installs the producer's secret in the consumer's table of
received keys (``_cgens``) exactly as kafkacrypto's management thread does when
an answer arrives. The per-record path of its deserializer (lock, msgpack,
generator, ``crypto_secretbox_open``) is then the real one; the key exchange
itself is not measured for kafkacrypto.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any

#: which Kafka client kafkacrypto runs on: "kafka-python" (as kafkaratchet, and as the issue measured) or "auto"
CLIENT = "kafka-python"


def _quiet() -> None:
    # kafkacrypto resets its package logger's level from its config; its modules' own loggers stay quiet
    for name in ("kafkacrypto", "kafkacrypto.cryptostore", "kafkacrypto.kafkacryptostore", "kafkacrypto.crypto",
                 "kafkacrypto.base", "kafkacrypto.ratchet", "kafkacrypto.cryptokey", "kafkacrypto.keygenerator",
                 "kafkacrypto.cryptoexchange"):
        logging.getLogger(name).setLevel(logging.ERROR)


def import_kafkacrypto() -> Any:
    """kafkacrypto, on kafka-python like kafkaratchet (it prefers confluent-kafka when that imports)."""
    import sys

    if "kafkacrypto" not in sys.modules and CLIENT == "kafka-python":
        sys.modules.setdefault("confluent_kafka", None)  # type: ignore[arg-type]  # makes its import fail
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import kafkacrypto
    _quiet()
    return kafkacrypto


def provision(workdir: Path, node_id: str, bootstrap: str) -> Path:
    """A kafkacrypto node's config (and, on first start, its identity and ratchet) under ``workdir``."""
    kafkacrypto = import_kafkacrypto()
    _quiet()
    path = Path(workdir) / f"{node_id}.config"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = kafkacrypto.KafkaCryptoStore(str(path), node_id, conf_global_logger=False)
    store.store_value("bootstrap_servers", bootstrap, section="kafka")
    store.store_value("security_protocol", "PLAINTEXT", section="kafka")
    # absolute paths: kafkacrypto's defaults are relative to the working directory
    store.store_value("cryptokey", "file#" + str(Path(workdir).resolve() / f"{node_id}.crypto"))
    store.store_value("ratchet", "file#" + str(Path(workdir).resolve() / f"{node_id}.seed"))
    store.close()
    return path


class KCNode:
    """A started kafkacrypto ``KafkaCrypto`` (its ``close`` also closes ``kp`` and ``kc``)."""

    def __init__(self, config: Path | str) -> None:
        import time

        kafkacrypto = import_kafkacrypto()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.store = kafkacrypto.KafkaCryptoStore(str(config), conf_global_logger=False)
            _quiet()
            self.kp = kafkacrypto.KafkaProducer(**self.store.get_kafka_config("producer", extra="crypto"))
            self.kc = kafkacrypto.KafkaConsumer(**self.store.get_kafka_config("consumer", extra="crypto"))
            started = time.perf_counter()
            self.crypto = kafkacrypto.KafkaCrypto(None, self.kp, self.kc, config=self.store)
            self.construct_seconds = time.perf_counter() - started
        self.clients: list[Any] = []

    def producer(self, **extra: Any) -> Any:
        kafkacrypto = import_kafkacrypto()
        config = self.store.get_kafka_config("producer")
        config.update(key_serializer=self.crypto.getKeySerializer(),
                      value_serializer=self.crypto.getValueSerializer(), **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            producer = kafkacrypto.KafkaProducer(**config)
        self.clients.append(producer)
        return producer

    def consumer(self, **extra: Any) -> Any:
        kafkacrypto = import_kafkacrypto()
        config = self.store.get_kafka_config("consumer")
        config.pop("group_id", None)
        config.update(key_deserializer=self.crypto.getKeyDeserializer(),
                      value_deserializer=self.crypto.getValueDeserializer(), enable_auto_commit=False, **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            consumer = kafkacrypto.KafkaConsumer(**config)
        self.clients.append(consumer)
        return consumer

    def producer_secret(self, root: str) -> tuple[Any, bytes]:
        """(key index, secret) of the producer generator currently used for ``root``."""
        crypto = self.crypto
        with crypto._lock:
            if root not in crypto._cur_pgens:
                crypto.get_producer(root)
            ki = crypto._cur_pgens[root]
            return ki, crypto._pgens[root][ki]["secret"]

    def install_key(self, root: str, ki: Any, secret: bytes) -> None:
        """What kafkacrypto's management thread does with a received key (crypto.py, ``.keys`` branch)."""
        from kafkacrypto.keygenerator import KeyGenerator

        crypto = self.crypto
        with crypto._lock:
            entry: dict[str, Any] = {}
            entry["key"], entry["value"] = KeyGenerator.get_key_value_generators(secret)
            entry["secret"] = secret
            crypto._cgens.setdefault(root, {})[ki] = entry

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.crypto.close()  # closes kp and kc too
            with contextlib.suppress(Exception):
                self.store.close()

    def __enter__(self) -> KCNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def share_key(producer: KCNode, consumer: KCNode, root: str) -> None:
    consumer.install_key(root, *producer.producer_secret(root))
