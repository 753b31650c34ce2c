"""Identity signatures, fingerprints, and both KEM types."""

from __future__ import annotations

import pytest

from kafkaratchet.errors import CryptoError, FormatError, SignatureError
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint, verify
from kafkaratchet.protocol.kem import KemPrivateKey, KemType, encapsulate


def test_sign_and_verify_with_domain_separation() -> None:
    me = SigningIdentity.generate()
    sig = me.sign(b"ctx-a", b"message")
    verify(me.public_key, b"ctx-a", b"message", sig)
    for ctx, msg in ((b"ctx-b", b"message"), (b"ctx-a", b"messagE"), (b"ctx-", b"amessage")):
        with pytest.raises(SignatureError):
            verify(me.public_key, ctx, msg, sig)
    with pytest.raises(SignatureError):
        verify(SigningIdentity.generate().public_key, b"ctx-a", b"message", sig)


def test_fingerprint_is_short_stable_and_printable() -> None:
    me = SigningIdentity(bytes(32))
    fp = me.fingerprint
    assert fp == fingerprint(me.public_key) and len(fp) == 19 and fp.count("-") == 3 and fp.isascii()
    assert SigningIdentity.generate().fingerprint != fp


def test_repr_hides_the_private_key() -> None:
    me = SigningIdentity.generate()
    assert me.seed_bytes().hex() not in repr(me) and me.fingerprint in repr(me)


def test_bad_seed_rejected() -> None:
    with pytest.raises(FormatError):
        SigningIdentity(b"short")


@pytest.mark.parametrize("kem", list(KemType))
def test_kem_round_trip_and_binding(kem: KemType) -> None:
    receiver = KemPrivateKey(kem)
    ciphertext, shared = encapsulate(kem, receiver.public_bytes)
    assert receiver.decapsulate(ciphertext) == shared and len(shared) == 32
    other = KemPrivateKey(kem)
    assert other.decapsulate(ciphertext) != shared
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    try:
        assert receiver.decapsulate(tampered) != shared
    except CryptoError:
        pass


def test_hybrid_depends_on_both_halves() -> None:
    receiver = KemPrivateKey(KemType.X25519_MLKEM768)
    ciphertext, shared = encapsulate(KemType.X25519_MLKEM768, receiver.public_bytes)
    pq_tampered = ciphertext[:40] + bytes([ciphertext[40] ^ 1]) + ciphertext[41:]
    assert receiver.decapsulate(pq_tampered) != shared  # ML-KEM implicit rejection changes the secret


@pytest.mark.parametrize("kem", list(KemType))
def test_wrong_sizes_are_format_errors(kem: KemType) -> None:
    with pytest.raises(FormatError):
        encapsulate(kem, b"\x01" * 5)
    with pytest.raises(FormatError):
        KemPrivateKey(kem).decapsulate(b"\x01" * 5)


def test_low_order_point_is_refused() -> None:
    with pytest.raises(CryptoError):
        encapsulate(KemType.X25519, bytes(32))
