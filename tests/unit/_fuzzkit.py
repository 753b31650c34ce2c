"""Shared pieces of the fuzz tests (``test_fuzz_*.py``): budgets, the outcome rule, mutators, a world.

The rule every fuzz test checks, for every generated input: the code under test
returns a defined result or raises a :class:`KafkaRatchetError` subclass; any
other exception fails the test (hypothesis then shrinks it to a minimal input),
and so does a call that takes longer than :data:`HANG_LIMIT` seconds.

Budgets are set so that all ``test_fuzz_*`` modules together run well over
20,000 generated inputs in about a minute on two cores; ``FUZZ_SCALE=10`` in the
environment multiplies every budget for a longer local run (the on-demand
campaign with coverage guidance lives in ``fuzz/``).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Chain, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity

#: Seconds one parser/handler call may take on a small input before it counts as a hang.
HANG_LIMIT = 2.0
#: Fixed "now" for pure validation (the world's certificates are valid around it).
NOW = 1_700_000_000
_SCALE = max(1, int(os.environ.get("FUZZ_SCALE", "1") or 1))


def budget(examples: int) -> settings:
    """Hypothesis settings for a fuzz test of ``examples`` generated inputs (times FUZZ_SCALE)."""
    return settings(
        max_examples=examples * _SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args)``'s result, or the KafkaRatchetError it raised; anything else propagates."""
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except KafkaRatchetError as exc:
        result = exc
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_LIMIT, f"{getattr(fn, '__name__', fn)} took {elapsed:.2f} s on one input"
    return result


def ident(n: int) -> SigningIdentity:
    return SigningIdentity(bytes([n]) * 32)


# --------------------------------------------------------------------------- strategies

#: Byte strings a strict msgpack reader must survive: length prefixes that promise gigabytes, and the like.
BOMBS = [
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
    b"\xdf\xff\xff\xff\xff",  # map32 of 4 G pairs
    b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
    b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
    b"\xc9\x7f\xff\xff\xff\x01",  # ext32, 2 GiB
    b"\xc7\x08\xff",  # ext8 timestamp header
    b"\xd6\xff\x00\x00\x00\x00",  # fixext4 timestamp
    b"\x91" * 64,  # 64 nested arrays
    b"\x81\xa0" * 64,  # 64 nested maps
    b"\xc1",  # the byte msgpack never uses
    b"\xc0",
]
_INTERESTING_BYTES = [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD3, 0xD9, 0xDA,
                      0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0x90, 0x80, 0xA0, 0x7F, 0xFF, 0x00, 0x01]
_INTERESTING_INTS = [0, 1, -1, 127, 128, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62,
                     2**63 - 1, 2**63, 2**64 - 1, -(2**31), -(2**63), NOW, NOW * 1000]
_INTERESTING_STRS = ["", "produce", "consume", "subscribe", "controller", "allow", "deny", "^.*", "^(a+)+$",
                     "fz", "fz.reqs", "\x00", "é" * 300, "^" + "(" * 200, "^[", "a" * 250]

# Inputs are derived from one hypothesis-drawn 64-bit seed by the plain-Python mutators below: cheap
# to generate (hypothesis's own per-example overhead is ~0.5 ms), reproducible (a failure prints the
# derived input), and still shrinkable through the seed.
seeds = st.integers(0, 2**64 - 1)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Any msgpack value, biased towards the edge cases parsers get wrong."""
    kind = rng.randrange(12 if depth < 4 else 9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(_INTERESTING_INTS)
    if kind == 3:
        return rng.randrange(-(2**63), 2**64)
    if kind == 4:
        return rng.choice([0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e308])
    if kind == 5:
        return rng.choice(_INTERESTING_STRS)
    if kind == 6:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xD800)]))
                       for _ in range(rng.randrange(12)))
    if kind in (7, 8):
        return rng.randbytes(rng.choice([0, 1, 8, 16, 24, 31, 32, 33, 64, rng.randrange(100)]))
    if kind in (9, 10):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(7))]
    return {random_value_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def random_values() -> st.SearchStrategy[Any]:
    return seeds.map(lambda n: random_value(random.Random(n)))


def random_value_key(rng: random.Random) -> str:
    return rng.choice(_INTERESTING_STRS[:8] + ["x", "future", ""])


def mutate(seed: bytes, rng: random.Random, max_ops: int = 4) -> bytes:
    """``seed`` after 1..max_ops byte-level mutations (flips, sets, inserts, deletes, cuts, bombs, dups)."""
    data = bytearray(seed)
    for _ in range(rng.randint(1, max_ops)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(data))
        if op == 0 and pos < len(data):
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and pos < len(data):
            data[pos] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.5 else rng.randrange(256)
        elif op == 2:
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 4:
            del data[pos:]
        elif op == 5:
            data[pos:pos] = rng.choice(BOMBS)
        elif data:
            end = min(len(data), pos + rng.randint(1, 64))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def _tweak(rng: random.Random, obj: Any, depth: int) -> Any:
    """One structural change somewhere inside a decoded msgpack tree (recursing into nested encodings)."""
    if isinstance(obj, list) and obj and depth < 8:
        items = list(obj)
        i = rng.randrange(len(items))
        action = rng.choice(["into", "into", "into", "replace", "delete", "append"])
        if action == "into":
            items[i] = _tweak(rng, items[i], depth + 1)
        elif action == "replace":
            items[i] = random_value(rng)
        elif action == "delete":
            del items[i]
        else:
            items.append(random_value(rng))
        return items
    if isinstance(obj, dict) and obj and depth < 8:
        items2 = dict(obj)
        key = rng.choice(sorted(items2))
        action = rng.choice(["into", "replace", "delete", "add"])
        if action == "into":
            items2[key] = _tweak(rng, items2[key], depth + 1)
        elif action == "replace":
            items2[key] = random_value(rng)
        elif action == "delete":
            del items2[key]
        else:
            items2[random_value_key(rng)] = random_value(rng)
        return items2
    if isinstance(obj, bytes) and depth < 8:
        try:
            inner = wire.unpack(obj)
        except KafkaRatchetError:
            inner = None
        if isinstance(inner, (list, dict)) and rng.random() < 0.7:
            return wire.pack(_tweak(rng, inner, depth + 1))  # a certificate inside a chain inside a message
        return mutate(obj, rng, 2) if rng.random() < 0.7 else rng.randbytes(rng.randrange(80))
    return random_value(rng)


def restructure(seed: bytes, rng: random.Random) -> bytes:
    """``seed`` (msgpack) decoded, changed in 1..3 places at any depth, and re-encoded."""
    obj = wire.unpack(seed)
    for _ in range(rng.randint(1, 3)):
        obj = _tweak(rng, obj, 0)
    return wire.pack(obj)


def hostile_bytes(seed: bytes, rng: random.Random) -> bytes:
    """The usual mix for a parser whose valid input looks like ``seed``."""
    pick = rng.random()
    if pick < 0.40:
        return restructure(seed, rng)
    if pick < 0.80:
        return mutate(seed, rng)
    if pick < 0.88:
        return wire.pack(random_value(rng))
    if pick < 0.96:
        return rng.randbytes(rng.randrange(300))
    return seed


def hostile(*valid: bytes) -> st.SearchStrategy[bytes]:
    """Hostile variants of one of the ``valid`` encodings, one per drawn seed."""
    return st.tuples(st.sampled_from(valid), seeds).map(lambda vs: hostile_bytes(vs[0], random.Random(vs[1])))


def mutated(*valid: bytes, max_ops: int = 4) -> st.SearchStrategy[bytes]:
    """Byte-level mutants only (for formats that are not msgpack)."""
    return st.tuples(st.sampled_from(valid), seeds).map(lambda vs: mutate(vs[0], random.Random(vs[1]), max_ops))


# --------------------------------------------------------------------------- a world of keys

@dataclass(frozen=True)
class World:
    """Deterministic identities and chains under one root (all valid around NOW and now)."""

    root: SigningIdentity
    node: SigningIdentity  # prodcon for "fz": the node under test
    consumer: SigningIdentity
    controller: SigningIdentity
    subscriber: SigningIdentity
    producer: SigningIdentity
    admin: SigningIdentity  # allowlist + denylist
    root_cert: Any
    node_chain: Chain
    consumer_chain: Chain
    controller_chain: Chain
    subscriber_chain: Chain
    producer_chain: Chain
    admin_chain: Chain


def make_world(not_before: int = NOW - 3600) -> World:
    root = ident(1)
    names = ["node", "consumer", "controller", "subscriber", "producer", "admin"]
    ids = {name: ident(n) for n, name in enumerate(names, start=2)}
    usages = {"node": ["produce", "consume"], "consumer": ["consume"], "controller": ["controller", "consume"],
              "subscriber": ["subscribe"], "producer": ["produce"], "admin": ["allowlist", "denylist", "consume"]}
    root_cert = self_signed_root(root, not_before=not_before)
    chains = {name: Chain.of(issue_certificate(root, ids[name].public_key, usages=usages[name],
                                               topics=None if name == "admin" else ["fz", "^fz-[0-9]+"],
                                               not_before=not_before))
              for name in names}
    return World(root=root, root_cert=root_cert, **ids, **{f"{n}_chain": c for n, c in chains.items()})


# --------------------------------------------------------------------------- stub Kafka clients

class StubProducer:
    """Stands in for the key-exchange producer: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: Any) -> None:
        if len(self.sent) < 10_000:
            self.sent.append((topic, value))

    def partitions_for(self, topic: str) -> None:
        return None

    def flush(self, *_: Any, **__: Any) -> None:
        return None

    def close(self, *_: Any, **__: Any) -> None:
        return None


class StubConsumer:
    """Stands in for the key-exchange consumer: no topic ever exists, nothing ever arrives."""

    def partitions_for_topic(self, topic: str) -> None:
        return None

    def assign(self, partitions: Any) -> None:
        return None

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        time.sleep(timeout_ms / 1000)
        return {}

    def close(self, *_: Any, **__: Any) -> None:
        return None


def start_stub_node(directory: Path, world: World, **crypto: Any) -> Any:
    """A real KafkaCrypto on stub clients whose exchange loop never runs (and is already stopped).

    Tests call the loop's handlers (``crypto.exchange.dispatch`` ...) directly, from one thread, so every
    input is judged by exactly the code the thread runs.
    """
    from kafkaratchet.files.provisioning import write_node
    from kafkaratchet.node import KafkaCrypto

    directory.mkdir(parents=True, exist_ok=False)
    write_node(directory, "fz", world.node, chains=[world.node_chain], roots=[world.root_cert],
               crypto=crypto or None)
    node = KafkaCrypto.unstarted(None, StubProducer(), StubConsumer(), config=str(directory / "fz.config"))
    node.close()
    return node


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory for one test module (hypothesis forbids function-scoped fixtures)."""
    path = Path(tempfile.mkdtemp(prefix="kr-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
