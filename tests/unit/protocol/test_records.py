"""Sealed records: round trips of every size, tamper evidence, topic and role binding."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings

import nacl.bindings as sodium
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkaratchet import _aead
from kafkaratchet.errors import (
    CryptoError,
    DecryptionError,
    KafkaRatchetError,
    NotARecordError,
    UnsupportedVersionError,
)
from kafkaratchet.protocol.records import (
    GIL_RELEASE_THRESHOLD,
    OVERHEAD,
    POOLED_LIMIT,
    Role,
    Sealer,
    is_sealed,
    key_id_of,
    open_sealed,
    reference_open,
    reference_seal,
    seal,
)

pytestmark = pytest.mark.usefixtures("aead_engine")  # every test here runs once per AEAD engine

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
    assert record == reference_seal(KID, KEY, "edge.topic", Role.KEY, plaintext, record[10:26])
    assert open_sealed(KEY, "edge.topic", Role.KEY, record) == plaintext
    assert reference_open(KEY, "edge.topic", Role.KEY, record) == plaintext
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


# ------------------------------------------------------------------ the engine and the nonce source
def test_the_parametrised_engine_is_the_one_that_runs(aead_engine: str) -> None:
    calls: list[str] = []
    engine = _aead.selected
    assert engine.name == aead_engine

    class Spy:
        name = engine.name

        def encrypt(self, *args: bytes) -> bytes:
            calls.append("encrypt")
            return engine.encrypt(*args)  # type: ignore[arg-type]

        def decrypt(self, *args: bytes) -> bytes | None:
            calls.append("decrypt")
            return engine.decrypt(*args)  # type: ignore[arg-type]

    sealer = Sealer(KID, KEY, "t", Role.VALUE)
    assert sealer.engine is engine
    spied = Spy()
    original, _aead.selected = _aead.selected, spied
    try:
        spy_sealer = Sealer(KID, KEY, "t", Role.VALUE)
        assert open_sealed(KEY, "t", Role.VALUE, spy_sealer.seal(b"x")) == b"x"
    finally:
        _aead.selected = original
    assert calls == ["encrypt", "decrypt"]


def test_a_forked_child_never_reuses_the_parent_s_nonce_randomness() -> None:
    while len(_aead.NONCES) == 0:  # the pool must hold pieces for the child to inherit
        seal(KID, KEY, "t", Role.VALUE, b"fill the pool")
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with other threads alive, in a full run
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(writer, b"".join(seal(KID, KEY, "t", Role.VALUE, b"c")[10:26] for _ in range(4)))
        finally:
            os._exit(0)
    os.close(writer)
    parent = {seal(KID, KEY, "t", Role.VALUE, b"p")[10:26] for _ in range(4)}
    child_bytes = b""
    while chunk := os.read(reader, 1024):
        child_bytes += chunk
    os.close(reader)
    os.waitpid(pid, 0)
    child = {child_bytes[i:i + 16] for i in range(0, len(child_bytes), 16)}
    assert len(child) == 4 and not parent & child


def _python(code: str, engine: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != _aead.ENV_VAR}
    if engine is not None:
        environ[_aead.ENV_VAR] = engine
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True,
                          timeout=60)


def test_importing_the_format_loads_no_engine_and_seals_nothing() -> None:
    out = _python("import sys, kafkaratchet.protocol.records as s, kafkaratchet._aead as a, kafkaratchet.node\n"
                  "print('ctypes' in sys.modules, sorted(a._built), a.selected.name, len(a.NONCES))").stdout
    assert out.split() == ["False", "[]", "unselected", "0"]


@pytest.mark.parametrize(("setting", "chosen"), [(None, "fast"), ("plain", "plain"), ("fast", "fast"),
                                                 ("turbo", "fast")])
def test_the_environment_variable_selects_the_engine(setting: str | None, chosen: str) -> None:
    result = _python("import logging, os; logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
                     "from kafkaratchet import _aead\n"
                     "from kafkaratchet.protocol import records as sealing\n"
                     "sealing.seal(os.urandom(8), os.urandom(32), 't', sealing.Role.VALUE, b'x')\n"
                     "print(_aead.selected.name)", setting)
    assert result.stdout.split() == [chosen]
    assert ("turbo" in result.stderr) is (setting == "turbo")


def test_a_failing_self_test_means_the_plain_engine_and_one_warning(monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(_aead, "_built", {"plain": _aead.engine("plain")})
    monkeypatch.setattr(_aead, "self_test", lambda engine: False)
    monkeypatch.setattr(_aead, "selected", _aead._Unselected())
    with caplog.at_level("WARNING", logger="kafkaratchet._aead"):
        assert Sealer(KID, KEY, "t", Role.VALUE).engine.name == "plain"
    assert len(caplog.records) == 1 and "self-test" in caplog.records[0].getMessage()
    with pytest.raises(CryptoError):
        _aead.engine("fast")
