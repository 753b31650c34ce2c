"""Key exchange: how long a brand-new consumer waits for its first decrypted record.

A producer node runs in its own process for the whole measurement. For each run
it writes ``records`` records to a new root topic (``kx<random>.data``, so every
run needs a key the consumer has never seen). Then a *fresh* consumer node is
provisioned (new identity, new chain from the same root of trust) and started
(its construction and ``wait_ready()`` are not timed). The clock starts when its
application consumer subscribes (assigns every partition of the topic and seeks
to the beginning) and stops at the first record that comes back decrypted;
records returned undecryptable before it are counted, and so are any among all
``records``. Deserializers use the default wait bound (``max_key_wait_intervals``
× ``key_wait_interval`` = 5 s).

Topics are created by the broker on first use (auto-creation; Tansu creates 4
partitions). With ``partitions`` given, the data topic and the root's ``.reqs``
and ``.keys`` topics are created beforehand with that many partitions instead,
as a broker with another ``num.partitions`` would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkaratchet.node.clients import assign_all

from .common import RunningNode, Summary, Trust, quiet_kafka, unique

_TIMEOUT = 120.0


def producer_main(conn: Any, config: str) -> None:
    """Child process: a running producer that writes records on request."""
    with quiet_kafka():
        node = RunningNode(Path(config))
        try:
            producer = node.producer(linger_ms=5)
            conn.send("ready")
            while True:
                command = conn.recv()
                if command[0] == "stop":
                    break
                _, topic, count, size = command
                for i in range(count):
                    producer.send(topic, value=(b"%06d" % i).ljust(size, b"."))
                producer.flush()
                conn.send("sent")
        finally:
            node.close()


def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        admin.close()


def one_run(trust: Trust, conn: Any, *, records: int, size: int, partitions: int | None,
            settle: float = 0.5) -> dict[str, Any]:
    root = unique("kx")
    topic = f"{root}.data"
    if partitions is not None:
        _create_topics(trust.bootstrap, [topic, root + ".reqs", root + ".keys"], partitions)
    conn.send(("send", topic, records, size))
    if not conn.poll(_TIMEOUT) or conn.recv() != "sent":
        raise RuntimeError("the key-exchange producer did not write its records")
    time.sleep(settle)  # the producer keeps running: it is not starting up when the consumer arrives
    node = RunningNode(trust.provision(f"kx-consumer-{root}", "consumer"))
    try:
        consumer = node.consumer()
        started = time.monotonic()
        assign_all(consumer, topic)
        first: float | None = None
        before = undecryptable = seen = 0
        deadline = started + _TIMEOUT
        while seen < records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=50).values():
                for record in batch:
                    seen += 1
                    if record.value.isCleartext(retry=False):
                        if first is None:
                            first = time.monotonic() - started
                    else:
                        undecryptable += 1
                        before += first is None
    finally:
        node.close()
    return {"first_decrypted_s": first if first is not None else float("nan"), "undecryptable_before": before,
            "undecryptable_total": undecryptable, "records_seen": seen}


def run(trust: Trust, producer_config: Path, *, runs: int, records: int = 100, size: int = 64,
        partition_variants: tuple[int | None, ...] = (None, 1),
        say: Callable[[str], None] = print) -> dict[str, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=producer_main, args=(child, str(producer_config)), daemon=True)
    process.start()
    out: dict[str, Any] = {"records": records, "runs": runs, "variants": {}}
    try:
        if not parent.poll(_TIMEOUT) or parent.recv() != "ready":
            raise RuntimeError("the key-exchange producer did not start")
        results: dict[str, list[dict[str, Any]]] = {}
        names = {p: "topics auto-created" if p is None else f"topics created with {p} partition(s)"
                 for p in partition_variants}
        for i in range(runs):  # variants interleaved run by run
            for partitions in partition_variants:
                results.setdefault(names[partitions], []).append(
                    one_run(trust, parent, records=records, size=size, partitions=partitions))
            say(f"    run {i + 1}/{runs}")
        for name, rows in results.items():
            out["variants"][name] = {
                "first_decrypted_s": Summary.of([r["first_decrypted_s"] for r in rows]).as_dict(),
                "worst_s": max((r["first_decrypted_s"] for r in rows), default=float("nan")),
                "undecryptable_before_first": sum(r["undecryptable_before"] for r in rows),
                "undecryptable_total": sum(r["undecryptable_total"] for r in rows),
                "never_decrypted_runs": sum(1 for r in rows if r["first_decrypted_s"] != r["first_decrypted_s"]),
                "runs": rows,
            }
        parent.send(("stop",))
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
    return out
