"""Per-record costs without the broker in the loop: raw AEAD, serializers, deserializers, bytes added.

Every case is timed in the same rounds (:func:`bench.common.interleave`); a
sample is the mean time per call over a batch of calls lasting about
``sample_time`` seconds. Throughput ratios are raw AEAD time ÷ serializer time,
taken per round.

* ``raw encrypt`` / ``raw decrypt``: PyNaCl's
  ``crypto_aead_xchacha20poly1305_ietf_encrypt/decrypt`` on the same plaintext,
  with a fixed nonce and associated data as long as kafkaratchet's (no nonce
  generation, no framing): the floor any XChaCha20-Poly1305 serializer in Python
  sits on.
* ``kafkaratchet serializer`` / ``deserializer``: the objects
  ``KafkaCrypto.getValueSerializer()`` / ``getValueDeserializer()`` hand to
  kafka-python, called as kafka-python calls them (``serialize(topic, headers,
  value)``), on a running node; the deserializer's node got its key through a
  real key exchange first.
* ``kafkacrypto serializer`` / ``deserializer``: kafkacrypto's own objects, called
  with its two-argument interface, on a running kafkacrypto node (see
  :mod:`bench.kcnode` for how its consumer holds the key).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .common import SIZES, Summary, interleave, paired_ratios, time_per_op, unique

TOPIC_ROOT = "benchmicro"


def run(ours_prod: Any, ours_cons: Any, kc_nodes: tuple[Any, Any] | None, *, rounds: int, sample_time: float,
        sizes: tuple[int, ...] = SIZES, say: Callable[[str], None] = print) -> dict[str, Any]:
    import nacl.bindings as sodium

    topic = unique(TOPIC_ROOT) + ".values"
    serializer = ours_prod.crypto.getValueSerializer()
    deserializer = ours_cons.crypto.getValueDeserializer(max_key_wait_intervals=1, key_wait_interval=30.0)
    # one real key exchange so the consumer node opens with a received key, as in production
    first = deserializer.deserialize(topic, None, serializer.serialize(topic, None, b"warm-up"))
    if not first.isCleartext():
        raise RuntimeError("the micro-benchmark consumer did not get its key")
    kc_ser = kc_deser = None
    if kc_nodes is not None:
        kc_prod, kc_cons = kc_nodes
        kc_ser = kc_prod.crypto.getValueSerializer()
        kc_deser = kc_cons.crypto.getValueDeserializer()
        kc_ser.serialize(topic, b"warm-up")
        kc_cons.install_key(topic.split(".")[0], *kc_prod.producer_secret(topic.split(".")[0]))

    results: dict[str, Any] = {"topic_length": len(topic), "sizes": {}}
    key = os.urandom(32)
    nonce = os.urandom(24)
    aad = os.urandom(10) + b"V" + topic.encode()
    groups: dict[int, dict[str, Callable[[], float]]] = {}
    added: dict[int, dict[str, int]] = {}
    for size in sizes:
        plaintext = os.urandom(size)
        raw_ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)
        sealed = serializer.serialize(topic, None, plaintext)
        opened = deserializer.deserialize(topic, None, sealed)
        assert opened.isCleartext() and opened.getMessage() == plaintext
        cases: dict[str, Callable[[], float]] = {
            "raw encrypt": time_per_op(
                lambda p=plaintext: sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(p, aad, nonce, key),
                sample_time),
            "raw decrypt": time_per_op(
                lambda c=raw_ct: sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(c, aad, nonce, key),
                sample_time),
            "kafkaratchet serializer": time_per_op(
                lambda p=plaintext: serializer.serialize(topic, None, p), sample_time),
            "kafkaratchet deserializer": time_per_op(
                lambda s=sealed: deserializer.deserialize(topic, None, s), sample_time),
        }
        added[size] = {"kafkaratchet": len(sealed) - size}
        if kc_ser is not None and kc_deser is not None:
            kc_sealed = kc_ser.serialize(topic, plaintext)
            kc_opened = kc_deser.deserialize(topic, kc_sealed)
            assert kc_opened.isCleartext() and kc_opened.getMessage() == plaintext
            added[size]["kafkacrypto"] = len(kc_sealed) - size
            cases["kafkacrypto serializer"] = time_per_op(lambda p=plaintext: kc_ser.serialize(topic, p),
                                                          sample_time)
            cases["kafkacrypto deserializer"] = time_per_op(lambda s=kc_sealed: kc_deser.deserialize(topic, s),
                                                            sample_time)
        groups[size] = cases
    say(f"  serdes: {len(sizes)} sizes x {len(groups[sizes[0]]) if sizes else 0} cases x {rounds} rounds")
    # every round visits every size (in rotating order), so a burst of other load on the machine spreads
    # over all sizes instead of spoiling one; within a size the cases stay next to each other in time
    per_size = interleave({str(size): _round_of(cases) for size, cases in groups.items()}, rounds)
    for size in sizes:
        samples: dict[str, list[float]] = {}
        for one_round in per_size[str(size)]:
            for name, value in one_round.items():
                samples.setdefault(name, []).append(value)
        entry: dict[str, Any] = {"seconds_per_record": {k: Summary.of(v).as_dict() for k, v in samples.items()},
                                 "bytes_added": added[size], "ratio_to_raw": {}}
        for who in ("kafkaratchet", "kafkacrypto"):
            if f"{who} serializer" not in samples:
                continue
            entry["ratio_to_raw"][f"{who} serializer"] = Summary.of(
                paired_ratios(samples["raw encrypt"], samples[f"{who} serializer"])).as_dict()
            entry["ratio_to_raw"][f"{who} deserializer"] = Summary.of(
                paired_ratios(samples["raw decrypt"], samples[f"{who} deserializer"])).as_dict()
        results["sizes"][str(size)] = entry
    return results


def _round_of(cases: dict[str, Callable[[], float]]) -> Callable[[], dict[str, float]]:
    """A sampler returning one sample of every case (order rotating from call to call)."""
    calls = [0]

    def sample() -> dict[str, float]:
        names = list(cases)
        shift = calls[0] % len(names)
        calls[0] += 1
        order = names[shift:] + names[:shift]
        return {name: cases[name]() for name in order}

    return sample
