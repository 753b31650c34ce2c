"""Every case in tests/vectors/identity.json, key_archive.json, kem.json and key_exchange.json.

Run the way another implementation would: only the JSON and the documented
error names (an exception class name, or a ChainError reason) are used. The
generator builds the bytes from docs/PROTOCOL.md without the library's
encoders; these tests check that the library decodes them, and that what the
library writes itself decodes the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest

from kafkaratchet import errors
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.protocol import kem, wire
from kafkaratchet.protocol.certs import REASONS, Certificate, Chain
from kafkaratchet.protocol.identity import (
    SigningIdentity,
    decode_identity_file,
    derive_subkey,
    encode_identity_file,
    fingerprint,
)
from kafkaratchet.protocol.keyexchange import (
    ForwardedRequest,
    KeyAnswer,
    KeyRequest,
    WrappedKey,
    make_answer,
    open_answer,
    parse,
    verify_answer,
    verify_request,
)
from kafkaratchet.protocol.ratchet import DataKey
from kafkaratchet.protocol.trust import TrustStore
from tests.unit._vectors import VECTORS, generator
from tests.unit._vectors import cases as _cases
from tests.unit._vectors import load as _load

FILES = ("identity.json", "key_archive.json", "kem.json", "key_exchange.json")


def _check_names(case: dict[str, Any]) -> None:
    assert case["name"].startswith("bad_" if "error" in case else "good_"), case["name"]
    assert "error" not in case or "expect" not in case, case["name"]


def _expect_error(case: dict[str, Any], exc: BaseException) -> None:
    """``error`` is a ChainError reason, or the exact class name of the exception."""
    if case["error"] in REASONS:
        assert isinstance(exc, errors.ChainError), repr(exc)
        assert exc.reason == case["error"]
    else:
        assert type(exc).__name__ == case["error"], repr(exc)


def _kem_key(kem_type: int, params: dict[str, Any]) -> kem.KemPrivateKey:
    """A KemPrivateKey from the case's seeds (the library makes only random ones; tests only)."""
    from cryptography.hazmat.primitives.asymmetric import mlkem

    key = object.__new__(kem.KemPrivateKey)
    key.kem = kem.KemType(kem_type)
    key._x_public, key._x_secret = sodium.crypto_kx_seed_keypair(bytes.fromhex(params["x25519_seed"]))
    key._pq = None
    public = key._x_public
    if key.kem is kem.KemType.X25519_MLKEM768:
        key._pq = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(params["mlkem_seed"]))
        public += key._pq.public_key().public_bytes_raw()
    key.public_bytes = public
    assert public.hex() == params["public"]  # the seeds give the public key the case states
    return key


# -- the files and their generator ---------------------------------------------------------------------------
def test_vector_counts() -> None:
    for name in FILES:
        cases = _cases(name)
        assert sum(c["name"].startswith("good_") for c in cases) >= 3, name
        assert sum(c["name"].startswith("bad_") for c in cases) >= 6, name
        assert len({c["name"] for c in cases}) == len(cases), f"{name}: duplicate case names"


def test_generator_reproduces_the_files() -> None:
    module = generator("generate_exchange")
    for name in FILES:
        assert module.render(name) == (VECTORS / name).read_text(encoding="utf-8"), name


def test_generator_check_flag() -> None:
    """``generate_exchange.py --check`` exits 0 on the committed files (what CI and a reviewer run)."""
    env = {**os.environ, "PYTHONPATH": str(VECTORS.parents[1])}
    result = subprocess.run([sys.executable, str(VECTORS / "generate_exchange.py"), "--check"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


# -- 3. identity file ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _cases("identity.json"), ids=lambda c: c["name"])
def test_identity_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    data = bytes.fromhex(case["file"])
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            decode_identity_file(data)
        _expect_error(case, info.value)
        return
    expect = case["expect"]
    identity = decode_identity_file(data)
    assert identity.seed_bytes().hex() == expect["seed"]
    assert identity.public_key.hex() == expect["public_key"]
    assert identity.fingerprint == fingerprint(identity.public_key) == expect["fingerprint"]
    assert encode_identity_file(SigningIdentity(bytes.fromhex(expect["seed"]))) == data


# -- 4. key archive ------------------------------------------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_archive_key_derivation() -> None:
    data = _load("key_archive.json")
    identity = SigningIdentity(bytes.fromhex(data["identity_seed"]))
    assert derive_subkey(identity, b"kr-key-archive").hex() == data["archive_key"]


@pytest.mark.parametrize("case", _cases("key_archive.json"), ids=lambda c: c["name"])
def test_archive_vector(case: dict[str, Any], tmp_path: Path) -> None:
    _check_names(case)
    key = bytes.fromhex(_load("key_archive.json")["archive_key"])
    path = _write(tmp_path / "node.keys", bytes.fromhex(case["archive"]))
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            KeyRing(path, key)
        _expect_error(case, info.value)
        return
    entries = [[k.root, k.key_id.hex(), k.key.hex(), int(k.created)] for k in KeyRing(path, key).own_keys()]
    assert entries == case["expect"]["entries"]
    # what the library writes back is the documented layout around the same plaintext (only the nonce is fresh)
    path.unlink()
    ring = KeyRing(path, key)
    for root, kid, value, created in case["expect"]["entries"]:
        ring.add_own(DataKey(key_id=bytes.fromhex(kid), key=bytes.fromhex(value), root=root, created=created))
    ring.persist()
    written = path.read_bytes()
    assert written[:5] == b"KRKA\x01"
    plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(written[29:], written[:5], written[5:29], key)
    assert plaintext.hex() == case["expect"]["plaintext"]
    assert [[k.root, k.key_id.hex(), k.key.hex(), int(k.created)] for k in KeyRing(path, key).own_keys()] == entries


# -- 6. KEMs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _cases("kem.json"), ids=lambda c: c["name"])
def test_kem_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    ciphertext = bytes.fromhex(case["ciphertext"])
    if case["kind"] == "mlkem768":
        from cryptography.hazmat.primitives.asymmetric import mlkem

        private = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(case["mlkem_seed"]))
        assert private.public_key().public_bytes_raw().hex() == case["public"]
        assert private.decapsulate(ciphertext).hex() == case["shared"]
    elif case["kind"] == "combine":
        parts = [bytes.fromhex(case[f]) for f in ("ss_mlkem", "ss_x25519", "ciphertext", "public")]
        assert kem._combine(*parts).hex() == case["shared"]
    elif "error" in case:
        private = _kem_key(case["kem"], case)
        with pytest.raises(errors.KafkaRatchetError) as info:
            private.decapsulate(ciphertext)
        _expect_error(case, info.value)
    else:
        assert _kem_key(case["kem"], case).decapsulate(ciphertext).hex() == case["shared"]


# -- 6. key-exchange messages --------------------------------------------------------------------------------
def _store() -> TrustStore:
    data = _load("key_exchange.json")
    return TrustStore([Certificate.decode(bytes.fromhex(c)) for c in data["roots"]], skew=data["skew"])


def _kems(case: dict[str, Any]) -> dict[kem.KemType, kem.KemPrivateKey]:
    return {kem.KemType(int(t)): _kem_key(int(t), p) for t, p in case.get("requester_kems", {}).items()}


def _run_exchange(case: dict[str, Any]) -> dict[str, Any]:
    """Parse, verify as the receiving node would at the file's ``now``, and open an answer."""
    data = _load("key_exchange.json")
    now, max_age = data["now"], data["max_age"]
    message = parse(bytes.fromhex(case["message"]))
    if isinstance(message, KeyAnswer):
        producer = verify_answer(message, _store(), now=now)
        keys = open_answer(message, _kems(case))
        return {"kind": "answer", "root": message.root, "request_id": message.request_id.hex(),
                "timestamp_ms": message.timestamp_ms, "requester": message.requester.hex(),
                "signer": producer.subject.hex(), "kem": int(message.kem),
                "keys": [[k.key_id.hex(), k.key.hex(), k.created] for k in keys]}
    requester = verify_request(message, _store(), max_age=max_age, now=now)
    inner = message.inner if isinstance(message, ForwardedRequest) else message
    assert isinstance(inner, KeyRequest)
    return {"kind": "forward" if isinstance(message, ForwardedRequest) else "request", "root": inner.root,
            "request_id": inner.request_id.hex(), "timestamp_ms": inner.timestamp_ms,
            "key_ids": [k.hex() for k in inner.key_ids], "kem_types": sorted(int(k) for k in inner.kem_publics),
            "signer": message.signer.hex(), "requester": requester.subject.hex()}


@pytest.mark.parametrize("case", _cases("key_exchange.json"), ids=lambda c: c["name"])
def test_exchange_vector(case: dict[str, Any]) -> None:
    _check_names(case)
    if "error" in case:
        with pytest.raises(errors.KafkaRatchetError) as info:
            _run_exchange(case)
        _expect_error(case, info.value)
        return
    assert _run_exchange(case) == case["expect"]


@pytest.mark.parametrize("case", [c for c in _cases("key_exchange.json") if "request" in c], ids=lambda c: c["name"])
def test_library_answer_opens_the_same(case: dict[str, Any]) -> None:
    """The library's own answer to the case's request (fresh randomness) opens to the same keys."""
    data = _load("key_exchange.json")
    request = parse(bytes.fromhex(case["request"]))
    assert isinstance(request, KeyRequest)
    keys = [WrappedKey(bytes.fromhex(kid), bytes.fromhex(key), created) for kid, key, created in case["expect"]["keys"]]
    answer = make_answer(SigningIdentity(bytes.fromhex(data["producer_seed"])),
                         Chain.decode(bytes.fromhex(data["producer_chain"])), request, keys, now=data["now"])
    assert int(answer.kem) == case["expect"]["kem"]
    assert answer.request_id.hex() == case["expect"]["request_id"]
    assert answer.requester.hex() == case["expect"]["requester"]
    reparsed = parse(answer.raw)
    assert isinstance(reparsed, KeyAnswer)
    opened = open_answer(reparsed, _kems(case))
    assert [[k.key_id.hex(), k.key.hex(), k.created] for k in opened] == case["expect"]["keys"]
    assert wire.unpack(answer.body)[0] == case["expect"]["root"]
