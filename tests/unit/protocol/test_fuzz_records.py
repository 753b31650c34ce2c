"""Fuzzing the outside-bytes paths of records: strict msgpack, the sealed-record format, the (de)serializers.

Every input must end in a defined result or a KafkaRatchetError (see test_fuzz_support.outcome); for
records the result is also checked: only the exact bytes a producer sealed ever open.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaratchet.errors import DecryptionError, FormatError, KafkaRatchetError
from kafkaratchet.node.message import KafkaCryptoMessage
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.records import MAGIC, Role, is_sealed, key_id_of, open_sealed, seal
from tests.unit._fuzzkit import (
    BOMBS,
    budget,
    hostile_bytes,
    make_world,
    mutate,
    mutated,
    outcome,
    random_value,
    random_values,
    scratch,
    seeds,
    start_stub_node,
)

__all__ = ["scratch"]  # the module-scoped fixture, imported so pytest finds it here

KEY = bytes(range(32))
KID = b"\x11" * 8
TOPICS = ["fz", "fz.a", "fz.b.c", "other", "é"]
topics = st.one_of(st.sampled_from(TOPICS), st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
roles = st.sampled_from(list(Role))
_SEALED = {(t, r): seal(KID, KEY, t, r, b"plaintext %s" % t.encode()) for t in TOPICS for r in Role}


# --------------------------------------------------------------------------- strict msgpack

def _depth_ok(obj: Any, limit: int = wire.MAX_DEPTH) -> bool:
    stack = [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            if level >= limit:
                return False
            stack.extend((c, level + 1) for c in (list(item.values()) + list(item) if isinstance(item, dict)
                                                   else item))
    return True


@budget(3000)
@given(st.one_of(st.binary(max_size=200), random_values().map(wire.pack),
                 seeds.map(lambda n: b"".join(random.Random(n).choice(BOMBS + [b"\x00", b"\xa1a", b"\xc4\x01"])
                                              for _ in range(random.Random(n + 1).randrange(9)))),
                 seeds.map(lambda n: hostile_bytes(wire.pack(random_value(random.Random(n))), random.Random(~n)))))
def test_fuzz_unpack(data: bytes) -> None:
    result = outcome(wire.unpack, data)
    if not isinstance(result, KafkaRatchetError):
        assert _depth_ok(result), "unpack returned something nested deeper than its limit"
    else:
        assert isinstance(result, FormatError)


@pytest.mark.parametrize("bomb", [
    b"\x91" * 100_000 + b"\xc0",  # 100,000 nested arrays
    b"\x81\xa0" * 50_000 + b"\xc0",  # 50,000 nested maps
    b"\xdd\xff\xff\xff\xff",  # array of 4 G items, none present
    b"\xdf\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff" + b"\x00" * 100,
    b"\xdb\xff\xff\xff\xff" + b"a" * 100,
    b"\xdc\xff\xff" + b"\x91" * 65535,  # wide and deep
    b"\xc0" * ((1 << 20) + 1),  # one byte over the limit
    b"\x92\xc0\xc0" + b"\xc0",  # extra data
    b"\xa3\xff\xfe\xfd",  # invalid UTF-8 in a str
    b"\x81\x01\xc0",  # int map key (strict keys)
    b"\x81\x90\xc0",  # array as map key
    b"\xd6\xff\x00\x00\x00\x00",  # a timestamp extension
])
def test_unpack_bombs_are_format_errors_quickly(bomb: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(FormatError):
        wire.unpack(bomb)
    assert time.perf_counter() - start < 1.0


def test_unpack_wide_flat_structure_is_bounded() -> None:
    # 1 MiB of nils in one array: legal, and costs only its own size
    data = b"\xdd" + ((1 << 20) - 6).to_bytes(4, "big") + b"\xc0" * ((1 << 20) - 6)
    start = time.perf_counter()
    assert len(wire.unpack(data + b"", max_size=1 << 21)) == (1 << 20) - 6
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------- sealed records

@pytest.mark.usefixtures("aead_engine")  # once per AEAD engine
@budget(3000)
@given(st.sampled_from(sorted(_SEALED)), seeds, topics, roles)
def test_fuzz_open_sealed_only_opens_what_was_sealed(origin: tuple[str, Role], seed: int, topic: str,
                                                     role: Role) -> None:
    sealed_topic, sealed_role = origin
    rng = random.Random(seed)
    data = mutate(_SEALED[origin], rng) if rng.random() < 0.9 else _SEALED[origin]
    kid = outcome(key_id_of, data)
    assert isinstance(kid, (bytes, FormatError))
    result = outcome(open_sealed, KEY, topic, role, data)
    if isinstance(result, bytes):
        # authenticity: exactly the original bytes, for exactly its topic and role
        assert data == _SEALED[(sealed_topic, sealed_role)] and (topic, role) == (sealed_topic, sealed_role)
        assert result == b"plaintext %s" % topic.encode()
    else:
        assert isinstance(result, (DecryptionError, FormatError))


@pytest.mark.usefixtures("aead_engine")
@budget(1000)
@given(st.one_of(st.binary(max_size=120), mutated(*_SEALED.values())), topics, roles)
def test_fuzz_open_sealed_random_bytes(data: bytes, topic: str, role: Role) -> None:
    assert isinstance(outcome(is_sealed, data), bool)
    result = outcome(open_sealed, KEY, topic, role, data)
    assert isinstance(result, KafkaRatchetError) or data[:1] == bytes([MAGIC])


# --------------------------------------------------------------------------- the node's deserializer

@pytest.fixture(scope="module")
def node(scratch: Path, aead_engine: str) -> Any:
    """A node per AEAD engine, so its sealers are built with that engine."""
    return start_stub_node(scratch / f"records-{aead_engine}", make_world())


@budget(2500)
@given(seed=seeds, topic=st.sampled_from(["fz", "fz.a", "fz.b.c"]), role=roles)
def test_fuzz_deserializer_open_path(node: Any, seed: int, topic: str, role: Role) -> None:
    serializer = node.getKeySerializer() if role is Role.KEY else node.getValueSerializer()
    deserializer = (node.getKeyDeserializer if role is Role.KEY else node.getValueDeserializer)(0, 0)
    original = serializer.serialize(topic, None, b"secret payload")
    rng = random.Random(seed)
    blob = rng.choice([mutate(original, rng), rng.randbytes(rng.randrange(100)), original,
                       bytes([MAGIC, rng.choice([0, 1, 2, 255])]) + rng.randbytes(rng.randrange(60))])
    message = outcome(deserializer.deserialize, topic, None, blob)
    assert isinstance(message, KafkaCryptoMessage), "the deserializer never raises on bad bytes"
    assert outcome(message.isCleartext) in (True, False)
    if message.isCleartext():
        assert blob == original and message.getMessage() == b"secret payload"
    else:
        assert isinstance(outcome(message.getMessage), KafkaRatchetError)
    # another deserializer role or topic never opens it
    other = (node.getValueDeserializer if role is Role.KEY else node.getKeyDeserializer)(0, 0)
    assert not outcome(other.deserialize, topic, None, blob).isCleartext()


@budget(600)
@given(st.one_of(st.binary(max_size=40), st.text(max_size=10), st.integers(), st.none(), st.floats(),
                 st.lists(st.integers(), max_size=3), st.builds(bytearray, st.binary(max_size=10)),
                 st.binary(max_size=40).map(lambda b: KafkaCryptoMessage(b)),
                 st.binary(max_size=40).map(KafkaCryptoMessage.of_cleartext)),
       st.sampled_from(["fz", "fz.x", ""]))
def test_fuzz_serializer_inputs(node: Any, value: Any, topic: str) -> None:
    result = outcome(node.getValueSerializer().serialize, topic, None, value)
    assert result is None or isinstance(result, (bytes, KafkaRatchetError))
    if value is None:
        assert result is None
