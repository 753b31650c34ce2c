"""Sealed records: round trips of every size, tamper evidence, topic and role binding."""

from __future__ import annotations

import os
import threading

import nacl.bindings as sodium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkaratchet.errors import (
    CryptoError,
    DecryptionError,
    KafkaRatchetError,
    NotARecordError,
    UnsupportedVersionError,
)
from kafkaratchet.sealing import (
    GIL_RELEASE_THRESHOLD,
    OVERHEAD,
    POOLED_LIMIT,
    Role,
    Sealer,
    is_sealed,
    key_id_of,
    open_sealed,
    seal,
)

KEY = os.urandom(32)
KID = os.urandom(8)
topics = st.text(min_size=1, max_size=60)
roles = st.sampled_from(list(Role))


def test_overhead_is_at_most_45_bytes() -> None:
    assert OVERHEAD <= 45
    assert len(seal(KID, KEY, "t", Role.VALUE, b"x" * 100)) - 100 == OVERHEAD


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(size=st.one_of(st.integers(0, 4096), st.sampled_from([65536, 1 << 20])), topic=topics, role=roles)
def test_round_trip_from_0_bytes_to_1_mib(size: int, topic: str, role: Role) -> None:
    plaintext = os.urandom(size)
    record = seal(KID, KEY, topic, role, plaintext)
    assert is_sealed(record) and key_id_of(record) == KID
    assert open_sealed(KEY, topic, role, record) == plaintext


@settings(max_examples=300)
@given(data=st.binary(max_size=200), topic=topics, role=roles, bit=st.integers(min_value=0))
def test_flipping_any_bit_fails_with_the_defined_error(data: bytes, topic: str, role: Role, bit: int) -> None:
    record = bytearray(seal(KID, KEY, topic, role, data))
    position = bit % (len(record) * 8)
    record[position // 8] ^= 1 << (position % 8)
    with pytest.raises((DecryptionError, NotARecordError, UnsupportedVersionError)):
        open_sealed(KEY, topic, role, bytes(record))


@settings(max_examples=150)
@given(data=st.binary(max_size=100), topic=topics, other=topics, role=roles)
def test_other_topic_or_role_never_opens(data: bytes, topic: str, other: str, role: Role) -> None:
    record = seal(KID, KEY, topic, role, data)
    if other != topic:
        with pytest.raises(DecryptionError):
            open_sealed(KEY, other, role, record)
    swapped = Role.KEY if role is Role.VALUE else Role.VALUE
    with pytest.raises(DecryptionError):
        open_sealed(KEY, topic, swapped, record)


def test_wrong_key_fails() -> None:
    record = seal(KID, KEY, "t", Role.VALUE, b"secret")
    with pytest.raises(DecryptionError):
        open_sealed(os.urandom(32), "t", Role.VALUE, record)


@settings(max_examples=500)
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_give_a_defined_error(data: bytes) -> None:
    with pytest.raises(KafkaRatchetError):
        open_sealed(KEY, "t", Role.VALUE, data)


def test_nonces_differ_between_records() -> None:
    records = {seal(KID, KEY, "t", Role.VALUE, b"same")[10:26] for _ in range(1000)}
    assert len(records) == 1000


# ------------------------------------------------------------------ the fast paths behind seal and open
PATH_EDGES = [0, 1, GIL_RELEASE_THRESHOLD - 1, GIL_RELEASE_THRESHOLD, GIL_RELEASE_THRESHOLD + 1,
              POOLED_LIMIT - 1, POOLED_LIMIT, POOLED_LIMIT + 1]


@pytest.mark.parametrize("size", PATH_EDGES)
def test_every_path_gives_exactly_pynacl_s_aead(size: int) -> None:
    """GIL-holding ctypes, GIL-releasing cffi into a pooled buffer, and unpooled: one format."""
    plaintext = os.urandom(size)
    record = seal(KID, KEY, "edge.topic", Role.KEY, plaintext)
    aad = record[:10] + Role.KEY + b"edge.topic"
    assert record[26:] == sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, record[2:26], KEY)
    assert open_sealed(KEY, "edge.topic", Role.KEY, record) == plaintext
    with pytest.raises(DecryptionError):
        open_sealed(KEY, "edge.topic", Role.VALUE, record)


def test_threads_sealing_and_opening_at_once_never_share_a_buffer() -> None:
    """Output buffers are reused; with the GIL released mid-call (large records) they must never be shared."""
    sizes = (64, GIL_RELEASE_THRESHOLD + 808, POOLED_LIMIT - 1)
    failures: list[str] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        sealer = Sealer(KID, KEY, f"t{n}", Role.VALUE)
        barrier.wait()
        for i in range(60):
            plaintext = bytes([n]) * sizes[(n + i) % len(sizes)]
            record = sealer.seal(plaintext)
            if open_sealed(KEY, f"t{n}", Role.VALUE, record) != plaintext:
                failures.append(f"thread {n}, record {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_a_sealer_checks_its_key_once_and_never_shows_it() -> None:
    with pytest.raises(CryptoError):
        Sealer(KID, KEY[:31], "t", Role.VALUE)
    with pytest.raises(CryptoError):
        Sealer(KID[:7], KEY, "t", Role.VALUE)
    with pytest.raises(CryptoError):
        Sealer(KID, KEY, "t", b"V")  # type: ignore[arg-type]
    sealer = Sealer(KID, KEY, "t", Role.VALUE)
    assert KEY.hex() not in repr(sealer) and repr(KEY) not in repr(sealer)
    assert open_sealed(KEY, "t", Role.VALUE, sealer.seal(bytearray(b"not bytes"))) == b"not bytes"
