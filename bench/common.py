"""What every measurement shares: interleaved repetitions, summaries, and provisioned nodes.

Machines that run this are noisy (two cores shared with a broker, other jobs),
so comparisons are never taken one after the other: :func:`interleave` runs one
sample of every case in each round, rotating the order from round to round, and
ratios are taken between samples of the *same* round before the median is.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("bench")

SIZES = (64, 1024, 16 * 1024, 1024 * 1024)
T = TypeVar("T")


def size_label(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1 << 10 and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


@dataclass
class Summary:
    """Median and range of a list of samples."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        values = [v for v in samples if v == v]  # drop NaN
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def interleave(cases: Mapping[str, Callable[[], T]], rounds: int, *,
               progress: Callable[[str], None] | None = None) -> dict[str, list[T]]:
    """``rounds`` samples of every case, one of each per round, the order rotating each round."""
    names = list(cases)
    samples: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names) if names else 0
        order = names[shift:] + names[:shift]
        if r % 2:
            order.reverse()
        for name in order:
            samples[name].append(cases[name]())
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
    return samples


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-round ratios (samples of the same round are neighbours in time)."""
    return [a / b if b else float("nan") for a, b in zip(numerator, denominator, strict=False)]


def time_per_op(fn: Callable[[], Any], min_time: float = 0.02, max_ops: int = 200_000) -> Callable[[], float]:
    """A sampler: seconds per call of ``fn``, over a batch sized to last about ``min_time``."""
    calibrated: list[int] = []

    def calibrate() -> int:
        ops = 1
        while True:
            started = time.perf_counter()
            for _ in range(ops):
                fn()
            elapsed = time.perf_counter() - started
            if elapsed >= min_time / 4 or ops >= max_ops:
                return max(1, min(max_ops, int(ops * min_time / max(elapsed, 1e-9))))
            ops *= 4

    def sample() -> float:
        if not calibrated:
            calibrated.append(calibrate())
        ops = calibrated[0]
        gc_was = gc.isenabled()
        gc.disable()
        try:
            started = time.perf_counter()
            for _ in range(ops):
                fn()
            elapsed = time.perf_counter() - started
        finally:
            if gc_was:
                gc.enable()
        return elapsed / ops

    return sample


# --------------------------------------------------------------------------- kafkaratchet nodes
@dataclass
class Trust:
    """A throwaway root of trust and the directory its nodes live in."""

    workdir: Path
    bootstrap: str
    root: Any = None
    root_cert: Any = None
    #: ``[crypto]`` settings of every node provisioned here (a node's own ``crypto`` adds to them)
    crypto: dict[str, Any] = field(default_factory=dict)
    #: the public key of every node provisioned here, by name
    public_keys: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from kafkaratchet.protocol.certs import self_signed_root
        from kafkaratchet.protocol.identity import SigningIdentity

        self.root = SigningIdentity.generate()
        self.root_cert = self_signed_root(self.root)

    def provision(self, name: str, role: str, *, crypto: Mapping[str, Any] | None = None,
                  lifetime: int = 0) -> Path:
        """Write a node (config, identity, seed) and return its config path.

        ``crypto`` adds to (or overrides) the shared ``[crypto]`` settings for this node only, e.g.
        trust topics of its own; ``lifetime`` (seconds, 0 = never) makes its chain expire.
        """
        from kafkaratchet.files.provisioning import issue_node_chain, write_node
        from kafkaratchet.protocol.identity import SigningIdentity

        identity = SigningIdentity.generate()
        chain = issue_node_chain(self.root, None, identity.public_key, role, lifetime=lifetime)
        store = write_node(self.workdir, name, identity, chains=[chain], roots=[self.root_cert],
                           bootstrap_servers=self.bootstrap, crypto={**self.crypto, **(crypto or {})})
        self.public_keys[name] = identity.public_key
        return store.path


class RunningNode:
    """A started ``KafkaCrypto`` with its two key-exchange clients."""

    def __init__(self, config: Path | str, *, ready_timeout: float = 30.0) -> None:
        from kafkaratchet import KafkaConsumer, KafkaCrypto, KafkaCryptoStore, KafkaProducer

        self.store = KafkaCryptoStore(config)
        self.kp = KafkaProducer(**self.store.get_kafka_config("producer", extra="crypto"))
        self.kc = KafkaConsumer(**self.store.get_kafka_config("consumer", extra="crypto"))
        started = time.perf_counter()
        self.crypto = KafkaCrypto(None, self.kp, self.kc, config=self.store)
        self.construct_seconds = time.perf_counter() - started
        if not self.crypto.wait_ready(ready_timeout):
            raise RuntimeError(f"node {self.store.node_id} did not follow its management topics in time")
        self.ready_seconds = time.perf_counter() - started
        self.clients: list[Any] = []

    def producer(self, **extra: Any) -> Any:
        from kafkaratchet import KafkaProducer

        config = self.store.get_kafka_config("producer")
        config.update(key_serializer=self.crypto.getKeySerializer(),
                      value_serializer=self.crypto.getValueSerializer(), **extra)
        producer = KafkaProducer(**config)
        self.clients.append(producer)
        return producer

    def consumer(self, *, max_key_wait_intervals: int | None = None, key_wait_interval: float | None = None,
                 **extra: Any) -> Any:
        """An application consumer with this node's deserializers (their key wait: the node's settings unless
        given; 0 and 0 return a record whose key is missing at once, not decrypted)."""
        from kafkaratchet import KafkaConsumer

        config = self.store.get_kafka_config("consumer")
        config.pop("group_id", None)
        config.update(key_deserializer=self.crypto.getKeyDeserializer(max_key_wait_intervals, key_wait_interval),
                      value_deserializer=self.crypto.getValueDeserializer(max_key_wait_intervals, key_wait_interval),
                      enable_auto_commit=False, **extra)
        consumer = KafkaConsumer(**config)
        self.clients.append(consumer)
        return consumer

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                client.close()
        self.crypto.close()
        for client in (self.kp, self.kc):
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> RunningNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unique(prefix: str) -> str:
    return f"{prefix}{os.urandom(4).hex()}"


def create_topics(bootstrap: str, names: Sequence[str] = (), *, partitions: int = -1,
                  specs: Sequence[Any] = ()) -> None:
    """Create topics before a measurement writes to them: Apache Kafka here creates none on first use.

    ``names`` get ``partitions`` (-1: the broker's default) and the broker's replication factor; ``specs`` are
    :class:`~kafkaratchet.node.topicsetup.TopicSpec` as they are (key-exchange and trust topics with their settings,
    what ``kafkaratchet topics create`` makes). Topics that exist already are left as they are.
    """
    from kafkaratchet.node.topicsetup import TopicSpec, ensure_topics

    wanted = [TopicSpec(name, partitions, -1) for name in names] + list(specs)
    result = ensure_topics({"bootstrap_servers": bootstrap}, wanted)
    if result.missing:
        raise RuntimeError(f"the bench could not create topics {result.missing}: {result.failed}")


@contextlib.contextmanager
def quiet_kafka() -> Iterator[None]:
    """kafka-python logs connection chatter (even at ERROR, on close); keep the table readable."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def kafkacrypto_available(client: str = "kafka-python") -> tuple[bool, str]:
    """Whether kafkacrypto can be imported here (on ``client``), and if not, why."""
    import importlib.util

    if importlib.util.find_spec("kafkacrypto") is None:
        return False, "kafkacrypto is not installed (pip install 'kafkaratchet[bench]' or kafkacrypto==0.9.11.3)"
    try:
        from . import kcnode

        kcnode.CLIENT = client
        kcnode.import_kafkacrypto()
    except Exception as exc:  # its import can fail on a missing libsodium (pysodium) or Kafka client
        return False, f"kafkacrypto does not import: {type(exc).__name__}: {exc}"
    return True, ""
