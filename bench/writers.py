"""Many writers: records per second with 4 threads sharing one node's serializer, against 1 thread.

Each sample runs ``threads`` threads for ``duration`` seconds, all calling one
serializer object of one node on their own 16 KiB record (a barrier starts them
together), and counts the records sealed. ``raw AEAD`` is the same with PyNaCl's
encrypt call alone: the ceiling the machine's cores allow.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .common import Summary, interleave, paired_ratios, unique


def _rate(call: Callable[[bytes], Any], size: int, threads: int, duration: float) -> Callable[[], float]:
    payloads = [os.urandom(size) for _ in range(threads)]

    def sample() -> float:
        counts = [0] * threads
        stop = threading.Event()
        barrier = threading.Barrier(threads + 1)

        def work(i: int) -> None:
            payload = payloads[i]
            n = 0
            barrier.wait()
            while not stop.is_set():
                for _ in range(16):
                    call(payload)
                n += 16
            counts[i] = n

        workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        started = time.perf_counter()
        time.sleep(duration)
        stop.set()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - started)

    return sample


def run(ours: Any, kc: Any | None, *, rounds: int, duration: float, size: int = 16 * 1024,
        threads: int = 4) -> dict[str, Any]:
    import nacl.bindings as sodium

    topic = unique("benchwriters") + ".values"
    serializer = ours.crypto.getValueSerializer()
    key, nonce, aad = os.urandom(32), os.urandom(24), os.urandom(11) + topic.encode()

    def raw(p: bytes) -> Any:
        return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(p, aad, nonce, key)

    def mine(p: bytes) -> Any:
        return serializer.serialize(topic, None, p)

    mine(b"warm-up")
    cases = {"raw AEAD, 1 thread": _rate(raw, size, 1, duration),
             f"raw AEAD, {threads} threads": _rate(raw, size, threads, duration),
             "kafkaratchet, 1 thread": _rate(mine, size, 1, duration),
             f"kafkaratchet, {threads} threads": _rate(mine, size, threads, duration)}
    if kc is not None:
        kc_serializer = kc.crypto.getValueSerializer()

        def theirs(p: bytes) -> Any:
            return kc_serializer.serialize(topic, p)

        theirs(b"warm-up")
        cases["kafkacrypto, 1 thread"] = _rate(theirs, size, 1, duration)
        cases[f"kafkacrypto, {threads} threads"] = _rate(theirs, size, threads, duration)
    samples = interleave(cases, rounds)
    result: dict[str, Any] = {"size": size, "threads": threads, "cpus": os.cpu_count(),
                              "records_per_second": {k: Summary.of(v).as_dict() for k, v in samples.items()},
                              "speedup": {}}
    for who in ("raw AEAD", "kafkaratchet", "kafkacrypto"):
        if f"{who}, 1 thread" in samples:
            result["speedup"][who] = Summary.of(
                paired_ratios(samples[f"{who}, {threads} threads"], samples[f"{who}, 1 thread"])).as_dict()
    return result
