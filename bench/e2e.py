"""End to end through the broker: a producer process and a consumer process, plaintext against encrypted.

One run of a mode and a record size uses a fresh topic (created by the bench with the broker's default
partitions and replication: 4 and 3 on the Apache Kafka the bench starts, 3 and 1 on Tansu) and two fresh
processes (``multiprocessing`` spawn): a consumer assigned to every partition of the topic, and a producer. The producer
sends one warm-up record and the consumer reads it (for kafkaratchet this is the
real key exchange; for kafkacrypto the producer's key is handed to the consumer
process, see :mod:`bench.kcnode`); then the producer sends ``records`` records
of ``size`` random bytes (value only, ``key=None``) as fast as ``send()`` takes
them and flushes, while the consumer counts them as they arrive, decrypted.

Records per second = ``records`` ÷ (time the consumer held the last record −
time the producer started sending), both on the machine's monotonic clock. Both
processes also report their CPU time per record; plaintext CPU ÷ encrypted CPU
(producer plus consumer, per round) is the steadier companion of the throughput
ratio on a machine whose other load comes and goes (the broker's CPU is not in it). Clients use kafka-python's
defaults (``linger_ms=0``, ``batch_size=16384``, no compression, acks=all and idempotence: on Apache Kafka a batch
is acknowledged once every in-sync replica, normally all 3, has it).

The modes:

* ``plaintext``: no serializer;
* ``padded``: a control with no cryptography at all, a Python serializer that
  appends :data:`~kafkaratchet.protocol.records.OVERHEAD` zero bytes and a deserializer
  that strips them: what any format adding that many bytes per record costs in
  kafka-python (``batch_size`` counts bytes, so bigger records mean fewer records
  per batch, and kafka-python's costs are mostly per batch and per request);
* ``idle-node``: a second control, plaintext with a started kafkaratchet node
  in each process that seals nothing: what the node's management thread and
  its two Kafka clients cost the application's threads;
* ``kafkaratchet``: sealed with kafkaratchet, same client settings;
* ``kafkacrypto``: sealed with kafkacrypto, when installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkaratchet.node.clients import assign_all

from .common import Summary, create_topics, interleave, paired_ratios, quiet_kafka, size_label, unique

MODES = ("plaintext", "padded", "idle-node", "kafkaratchet", "kafkacrypto")
_TIMEOUT = 180.0


def _padding_serdes() -> tuple[Any, Any]:
    """The ``padded`` control: as many zero bytes as a sealed record adds, and no cryptography."""
    from kafka.serializer import Deserializer, Serializer

    from kafkaratchet.protocol.records import OVERHEAD

    padding = bytes(OVERHEAD)

    class Pad(Serializer):  # type: ignore[misc]
        def serialize(self, topic: str, headers: Any, value: bytes) -> bytes:
            return value + padding

    class Unpad(Deserializer):  # type: ignore[misc]
        def deserialize(self, topic: str, headers: Any, value: bytes) -> bytes:
            return value[OVERHEAD:]

    return Pad(), Unpad()


def _client(kind: str, mode: str, bootstrap: str, config: str | None) -> tuple[Any, Any, Callable[[], None]]:
    """The ``kind`` ("producer" or "consumer") a mode runs with, the node behind it (or None), and its closer."""
    if mode in ("plaintext", "padded", "idle-node"):
        from kafka import KafkaConsumer, KafkaProducer

        pad, unpad = _padding_serdes() if mode == "padded" else (None, None)
        client = (KafkaProducer(bootstrap_servers=bootstrap, value_serializer=pad) if kind == "producer" else
                  KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, value_deserializer=unpad))
        if mode != "idle-node":
            return client, None, client.close
    node: Any
    if mode in ("idle-node", "kafkaratchet"):
        from .common import RunningNode

        node = RunningNode(Path(config or ""))
    else:
        from .kcnode import KCNode

        node = KCNode(Path(config or ""))
    if mode == "idle-node":
        def close() -> None:
            client.close()
            node.close()

        return client, node, close
    return (node.producer() if kind == "producer" else node.consumer()), node, node.close


def producer_main(conn: Any, mode: str, bootstrap: str, config: str | None, topic: str, records: int,
                  size: int) -> None:
    """Child process: build the producer, send the warm-up record, then the timed records."""
    with quiet_kafka():
        producer, node, close = _client("producer", mode, bootstrap, config)
        try:
            payload = os.urandom(size)
            conn.send("ready")
            conn.recv()  # consumer is assigned
            producer.send(topic, value=b"warm-up")
            producer.flush()
            if mode == "kafkacrypto":
                conn.send(node.producer_secret(topic.split(".")[0]))
            conn.recv()  # consumer has read the warm-up record
            cpu = time.process_time()
            started = time.monotonic()
            send = producer.send
            for _ in range(records):
                send(topic, value=payload)
            producer.flush()
            finished = time.monotonic()
            conn.send({"started": started, "flushed": finished, "cpu": time.process_time() - cpu})
        finally:
            close()


def consumer_main(conn: Any, mode: str, bootstrap: str, config: str | None, topic: str, records: int) -> None:
    """Child process: read the warm-up record, then count the timed ones."""
    with quiet_kafka():
        consumer, node, close = _client("consumer", mode, bootstrap, config)
        try:
            assign_all(consumer, topic)
            conn.send("ready")
            if mode == "kafkacrypto":
                node.install_key(topic.split(".")[0], *conn.recv())
            encrypted = mode in ("kafkaratchet", "kafkacrypto")
            warm = 0
            deadline = time.monotonic() + _TIMEOUT
            while not warm and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=100).values():
                    for record in batch:
                        if encrypted and not record.value.isCleartext():
                            raise RuntimeError("the warm-up record was not decrypted")
                        warm += 1
            conn.send("warm")
            count = undecryptable = 0
            first = last = 0.0
            cpu = time.process_time()
            deadline = time.monotonic() + _TIMEOUT
            while count < records and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=100).values():
                    if not first:
                        first = time.monotonic()
                    for record in batch:
                        if encrypted and not record.value.isCleartext():
                            undecryptable += 1
                        count += 1
                    last = time.monotonic()
            conn.send({"count": count, "undecryptable": undecryptable, "first": first, "last": last,
                       "cpu": time.process_time() - cpu})
        finally:
            close()


def run_once(mode: str, bootstrap: str, configs: tuple[Path, Path] | None, records: int,
             size: int) -> dict[str, Any]:
    """One run; ``configs`` are the producer's and the consumer's node configs (None for plaintext)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    topic = unique("e2e") + ".data"
    create_topics(bootstrap, [topic])  # broker defaults, so the consumer can assign before anything is sent
    prod_parent, prod_child = ctx.Pipe()
    cons_parent, cons_child = ctx.Pipe()
    prod_cfg, cons_cfg = (str(configs[0]), str(configs[1])) if configs is not None else (None, None)
    consumer = ctx.Process(target=consumer_main, args=(cons_child, mode, bootstrap, cons_cfg, topic, records),
                           daemon=True)
    producer = ctx.Process(target=producer_main, args=(prod_child, mode, bootstrap, prod_cfg, topic, records, size),
                           daemon=True)
    consumer.start()
    producer.start()
    try:
        for conn in (cons_parent, prod_parent):
            if not conn.poll(_TIMEOUT) or conn.recv() != "ready":
                raise RuntimeError(f"{mode} worker did not start")
        prod_parent.send("go")
        if mode == "kafkacrypto":
            if not prod_parent.poll(_TIMEOUT):
                raise RuntimeError("kafkacrypto producer did not share its key")
            cons_parent.send(prod_parent.recv())
        if not cons_parent.poll(_TIMEOUT) or cons_parent.recv() != "warm":
            raise RuntimeError(f"{mode} consumer did not read the warm-up record")
        prod_parent.send("go")
        if not prod_parent.poll(_TIMEOUT) or not cons_parent.poll(_TIMEOUT):
            raise RuntimeError(f"{mode} run did not finish in {_TIMEOUT:.0f} s")
        sent, got = prod_parent.recv(), cons_parent.recv()
    finally:
        for process in (producer, consumer):
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    if got["count"] < records:
        raise RuntimeError(f"{mode}: consumer got {got['count']} of {records} records")
    elapsed = got["last"] - sent["started"]
    return {"rate": records / elapsed, "produce_rate": records / (sent["flushed"] - sent["started"]),
            "producer_cpu_us": sent["cpu"] / records * 1e6, "consumer_cpu_us": got["cpu"] / records * 1e6,
            "undecryptable": got["undecryptable"]}


def run(bootstrap: str, configs: dict[str, tuple[Path, Path] | None], *, records: int, sizes: tuple[int, ...],
        rounds: int, say: Callable[[str], None] = print) -> dict[str, Any]:
    """``configs`` maps each mode to run onto its (producer, consumer) node configs."""
    details: dict[str, list[dict[str, Any]]] = {}
    cases: dict[str, Callable[[], float]] = {}
    for size in sizes:
        for mode, config in configs.items():
            name = f"{mode} {size_label(size)}"
            details[name] = []

            def case(mode: str = mode, config: tuple[Path, Path] | None = config, size: int = size,
                     name: str = name) -> float:
                result = run_once(mode, bootstrap, config, records, size)
                details[name].append(result)
                return result["rate"]

            cases[name] = case
    say(f"  end-to-end: {len(cases)} cases x {rounds} rounds of {records} records")
    samples = interleave(cases, rounds, progress=lambda s: say(f"    {s}"))
    out: dict[str, Any] = {"records": records, "sizes": {}}
    for size in sizes:
        entry: dict[str, Any] = {"records_per_second": {}, "ratio_to_plaintext": {}, "cpu_us_per_record": {},
                                 "undecryptable": {}}
        base = samples.get(f"plaintext {size_label(size)}")
        for mode in configs:
            name = f"{mode} {size_label(size)}"
            entry["records_per_second"][mode] = Summary.of(samples[name]).as_dict()
            entry["cpu_us_per_record"][mode] = {
                "producer": Summary.of([d["producer_cpu_us"] for d in details[name]]).as_dict(),
                "consumer": Summary.of([d["consumer_cpu_us"] for d in details[name]]).as_dict()}
            entry["undecryptable"][mode] = sum(d["undecryptable"] for d in details[name])
            if base is not None and mode != "plaintext":
                entry["ratio_to_plaintext"][mode] = Summary.of(paired_ratios(samples[name], base)).as_dict()
                plain = details[f"plaintext {size_label(size)}"]
                entry.setdefault("cpu_ratio_to_plaintext", {})[mode] = Summary.of(paired_ratios(
                    [p["producer_cpu_us"] + p["consumer_cpu_us"] for p in plain],
                    [d["producer_cpu_us"] + d["consumer_cpu_us"] for d in details[name]])).as_dict()
        out["sizes"][str(size)] = entry
    return out
