"""Key exchange: how long a brand-new consumer waits for its first decrypted record.

A producer node runs in its own process for the whole measurement. For each run
it writes ``records`` records to a new root topic (``kx<random>.data``, so every
run needs a key the consumer has never seen). Then a *fresh* consumer node is
provisioned (new identity, new chain from the same root of trust) and started
(its construction and ``wait_ready()`` are not timed), ``settle`` seconds after the
producer's last record was acknowledged (0.5 s by default: the producer is running,
not starting; longer, it has idled). Its application consumer
is assigned every partition of the topic from the beginning; the clock starts at
its first ``poll()`` and stops at the first record that comes back decrypted, the
whole key exchange in between (the request on ``R.reqs``, the producer's answer
on ``R.keys``). Records returned undecryptable before it are counted, and so are
any among all ``records``. Deserializers use the default wait bound
(``max_key_wait_intervals`` × ``key_wait_interval`` = 5 s).

The bench creates the data topic (the broker's default partitions and
replication: 4 and 3 on the Apache Kafka the bench starts, 3 and 1 on Tansu).
Variants, interleaved run by run:

* ``admin``: ``R.reqs``, ``R.keys`` and ``R.subs`` are created beforehand with
  the broker's defaults, as ``kafkaratchet topics create --root R`` does on a
  cluster without automatic topic creation;
* ``nodes``: nobody creates them beforehand: the producer node creates
  ``R.reqs`` when it first seals for ``R``, the consumer node ``R.keys`` when it
  first asks (the cost of a node creating a topic is then in the figure);
* a number ``p``: all of them (the data topic too) created beforehand with ``p``
  partitions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafkaratchet.node.clients import assign_all

from .common import RunningNode, Summary, Trust, create_topics, quiet_kafka, unique

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


VARIANTS = ("admin", "nodes")


def variant_name(variant: str | int) -> str:
    if variant == "admin":
        return "key-exchange topics created beforehand"
    if variant == "nodes":
        return "key-exchange topics created by the nodes"
    return f"all topics created beforehand with {variant} partition(s)"


def one_run(trust: Trust, conn: Any, *, records: int, size: int, variant: str | int,
            settle: float = 0.5) -> dict[str, Any]:
    from kafkaratchet.node.topicsetup import exchange_topic_specs

    root = unique("kx")
    topic = f"{root}.data"
    if variant == "nodes":
        create_topics(trust.bootstrap, [topic])
    elif variant == "admin":
        create_topics(trust.bootstrap, [topic], specs=exchange_topic_specs(root))
    else:
        partitions = int(variant)
        create_topics(trust.bootstrap, [topic], partitions=partitions, specs=[
            replace(spec, partitions=partitions) for spec in exchange_topic_specs(root)])
    conn.send(("send", topic, records, size))
    if not conn.poll(_TIMEOUT) or conn.recv() != "sent":
        raise RuntimeError("the key-exchange producer did not write its records")
    time.sleep(settle)  # the producer keeps running: it is not starting up when the consumer arrives
    node = RunningNode(trust.provision(f"kx-consumer-{root}", "consumer"))
    try:
        consumer = node.consumer()
        assign_all(consumer, topic)
        first: float | None = None
        before = undecryptable = seen = 0
        started = time.monotonic()
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
        variants: tuple[str | int, ...] = (*VARIANTS, 1), settle: float = 0.5,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=producer_main, args=(child, str(producer_config)), daemon=True)
    process.start()
    out: dict[str, Any] = {"records": records, "runs": runs, "settle_s": settle, "variants": {},
                           "order": [variant_name(v) for v in variants]}
    try:
        if not parent.poll(_TIMEOUT) or parent.recv() != "ready":
            raise RuntimeError("the key-exchange producer did not start")
        results: dict[str, list[dict[str, Any]]] = {}
        for i in range(runs):  # variants interleaved run by run, the order rotating
            shift = i % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                results.setdefault(variant_name(variant), []).append(
                    one_run(trust, parent, records=records, size=size, variant=variant, settle=settle))
            say(f"    run {i + 1}/{runs}")
        for name in [variant_name(v) for v in variants]:
            rows = results[name]
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
