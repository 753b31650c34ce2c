"""Idle node CPU: what a started node costs its process while nothing happens.

Each variant is a node alone in a fresh process (``multiprocessing`` spawn), so the figure is that node's and
nobody else's: its two key-exchange clients built from its store and ``KafkaCrypto`` started on them, as an
application does (tests/integration/nodes.py), then ``wait_ready()``. The process then idles (its main thread
sleeps) for ``settle`` seconds, longer than a node stays busy after its last activity, and its CPU time (user +
system of all its threads, ``time.process_time``) is read at the start and the end of each of ``windows``
consecutive windows of ``window`` seconds: milliseconds of CPU per second of wall time, median over windows: what
the node costs while it idles, its steady state. Each thread's share comes from ``/proc/self/task/<tid>/schedstat``
(Linux). The CPU per second of the settling period itself is reported too (for information: it includes the end of
the node's start-up and its busy period after the last activity).

Variants (both processes idle at the same time; neither does anything in its windows):

* ``started``: a node that started and then idles: it follows the trust topics and nothing else;
* ``after a key exchange``: before idling the node sealed a record for a root of its own (so it follows
  ``R.reqs``, ready to answer requests for its key) and opened a record another node sealed for another root
  (so it asked for that key and received it on ``S.keys``); the other node, in the same process, is closed before
  the first window.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import RunningNode, Summary, Trust, quiet_kafka, unique

VARIANTS = ("started", "after a key exchange")
_TIMEOUT = 120.0


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of every thread of this process by a readable name (Linux; empty elsewhere)."""
    if not sys.platform.startswith("linux"):
        return {}
    names = {t.native_id: _kind(t.name) for t in threading.enumerate() if t.native_id is not None}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            seconds = int((task / "schedstat").read_text().split()[0]) / 1e9
            name = names.get(int(task.name), "other threads")
            out[name] = out.get(name, 0.0) + seconds
    return out


def _kind(name: str) -> str:
    if name.startswith("kafkaratchet-"):
        return "management thread"
    if name.endswith("-network-thread"):
        return "key-exchange producer's sender thread"
    if name.startswith("kafka-io-"):
        return "kafka-python I/O threads"
    if name == "MainThread":
        return "main thread (sleeping)"
    return name


def node_main(conn: Any, config: str, helper_config: str | None, settle: float, windows: int,
              window: float) -> None:
    """Child process: start the node (and, for the key-exchange variant, exchange a key), then measure idling."""
    with quiet_kafka():
        node = RunningNode(Path(config))
        try:
            if helper_config is not None:
                helper = RunningNode(Path(helper_config))
                try:
                    node.crypto.getValueSerializer().serialize(unique("idleown") + ".data", None, b"own")
                    topic = unique("idleother") + ".data"
                    sealed = helper.crypto.getValueSerializer().serialize(topic, None, b"theirs")
                    opened = node.crypto.getValueDeserializer(1, _TIMEOUT).deserialize(topic, None, sealed)
                    if not opened.isCleartext(retry=False):
                        raise RuntimeError("the idle node did not receive the other node's key")
                finally:
                    helper.close()
            conn.send("ready")
            conn.recv()
            cpu, started = time.process_time(), time.monotonic()
            time.sleep(settle)
            settling = (time.process_time() - cpu) / (time.monotonic() - started) * 1e3
            samples: list[dict[str, Any]] = []
            for _ in range(windows):
                threads = _thread_cpu()
                cpu, started = time.process_time(), time.monotonic()
                time.sleep(window)
                cpu, elapsed = time.process_time() - cpu, time.monotonic() - started
                after = _thread_cpu()
                samples.append({"ms_per_s": cpu / elapsed * 1e3, "seconds": elapsed,
                                "threads_ms_per_s": {name: (after[name] - threads.get(name, 0.0)) / elapsed * 1e3
                                                     for name in after}})
            conn.send({"samples": samples, "settling_ms_per_s": settling})
        finally:
            node.close()


def run(trust: Trust, *, windows: int, window: float, settle: float,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Both variants at once, each a node alone in its process; the results dict of the ``idle`` measurement."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    tag = unique("")
    configs: dict[str, tuple[str, str | None]] = {
        "started": (str(trust.provision(f"idle-started-{tag}", "prodcon")), None),
        "after a key exchange": (str(trust.provision(f"idle-exchanged-{tag}", "prodcon")),
                                 str(trust.provision(f"idle-helper-{tag}", "producer")))}
    pipes: dict[str, Any] = {}
    processes = []
    try:
        for name, (config, helper) in configs.items():
            parent, child = ctx.Pipe()
            process = ctx.Process(target=node_main, args=(child, config, helper, settle, windows, window),
                                  daemon=True)
            process.start()
            pipes[name] = parent
            processes.append(process)
        for name, conn in pipes.items():
            if not conn.poll(_TIMEOUT) or conn.recv() != "ready":
                raise RuntimeError(f"the idle node ({name}) did not start")
        say(f"  idle nodes: {len(pipes)} variants, {settle:g} s to settle, then {windows} windows of {window:g} s")
        for conn in pipes.values():
            conn.send("go")
        limit = settle + windows * window + _TIMEOUT
        results = {}
        for name, conn in pipes.items():
            if not conn.poll(limit):
                raise RuntimeError(f"the idle node ({name}) did not report")
            results[name] = conn.recv()
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    out: dict[str, Any] = {"windows": windows, "window_s": window, "settle_s": settle, "variants": {},
                           "order": list(VARIANTS)}
    for name in VARIANTS:
        samples = results[name]["samples"]
        threads = sorted({t for s in samples for t in s["threads_ms_per_s"]})
        out["variants"][name] = {
            "ms_per_s": Summary.of([s["ms_per_s"] for s in samples]).as_dict(),
            "settling_ms_per_s": results[name]["settling_ms_per_s"],
            "threads_ms_per_s": {t: Summary.of([s["threads_ms_per_s"].get(t, 0.0) for s in samples]).median
                                 for t in threads},
            "samples": samples}
    return out
