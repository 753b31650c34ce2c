"""Key encapsulation for the key exchange: X25519, and hybrid X25519 + ML-KEM-768.

A requester makes a fresh :class:`KemPrivateKey` per request and publishes its
public bytes; a producer :func:`encapsulate`\\ s to them and wraps the data keys
under the 32-byte shared secret. The X25519 part is libsodium's ``crypto_kx``
(BLAKE2b over the DH output and both public keys); the hybrid combines the two
shared secrets with personalised BLAKE2b over both secrets and the whole
transcript, so it stays secure while either component does.
"""

from __future__ import annotations

import enum
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

from kafkaratchet.errors import CryptoError, FormatError

__all__ = ["KemType", "KemPrivateKey", "encapsulate", "public_key_size", "ciphertext_size", "SHARED_SIZE"]

SHARED_SIZE = 32
_X25519_SIZE = 32
_MLKEM768_PUBLIC = 1184
_MLKEM768_CIPHERTEXT = 1088
_HYBRID_PERSON = b"kr-hybrid-kem-v1"


class KemType(enum.IntEnum):
    X25519 = 1
    X25519_MLKEM768 = 2


def public_key_size(kem: KemType) -> int:
    return _X25519_SIZE if kem is KemType.X25519 else _X25519_SIZE + _MLKEM768_PUBLIC


def ciphertext_size(kem: KemType) -> int:
    return _X25519_SIZE if kem is KemType.X25519 else _X25519_SIZE + _MLKEM768_CIPHERTEXT


def _mlkem() -> Any:
    # Imported on first use: the cryptography backend costs import time nobody needs to pay
    # for sealing records.
    from cryptography.hazmat.primitives.asymmetric import mlkem

    return mlkem


def _combine(ss_pq: bytes, ss_x: bytes, ciphertext: bytes, public: bytes) -> bytes:
    return sodium.crypto_generichash_blake2b_salt_personal(
        ss_pq + ss_x + ciphertext + public, digest_size=SHARED_SIZE, person=_HYBRID_PERSON
    )


class KemPrivateKey:
    """An ephemeral decapsulation key; lives for one request and is never persisted."""

    __slots__ = ("kem", "_x_public", "_x_secret", "_pq", "public_bytes")

    def __init__(self, kem: KemType) -> None:
        self.kem = KemType(kem)
        self._x_public, self._x_secret = sodium.crypto_kx_keypair()
        self._pq = None
        public = self._x_public
        if self.kem is KemType.X25519_MLKEM768:
            self._pq = _mlkem().MLKEM768PrivateKey.generate()
            public += self._pq.public_key().public_bytes_raw()
        self.public_bytes: bytes = public

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """The shared secret for ``ciphertext``; CryptoError when it cannot be one of ours."""
        if len(ciphertext) != ciphertext_size(self.kem):
            raise FormatError(f"{self.kem.name} ciphertext must be {ciphertext_size(self.kem)} bytes")
        peer = ciphertext[:_X25519_SIZE]
        try:
            ss_x, _ = sodium.crypto_kx_server_session_keys(self._x_public, self._x_secret, peer)
        except (nacl.exceptions.CryptoError, ValueError):
            raise CryptoError("X25519 key agreement failed") from None
        if self._pq is None:
            return ss_x
        try:
            ss_pq = self._pq.decapsulate(ciphertext[_X25519_SIZE:])
        except ValueError:
            raise CryptoError("ML-KEM-768 decapsulation failed") from None
        return _combine(ss_pq, ss_x, ciphertext, self.public_bytes)

    def __repr__(self) -> str:
        return f"KemPrivateKey({self.kem.name})"


def encapsulate(kem: KemType, public: bytes) -> tuple[bytes, bytes]:
    """(ciphertext, shared secret) for the holder of ``public``."""
    kem = KemType(kem)
    if len(public) != public_key_size(kem):
        raise FormatError(f"{kem.name} public key must be {public_key_size(kem)} bytes")
    eph_public, eph_secret = sodium.crypto_kx_keypair()
    try:
        _, ss_x = sodium.crypto_kx_client_session_keys(eph_public, eph_secret, public[:_X25519_SIZE])
    except (nacl.exceptions.CryptoError, ValueError):
        raise CryptoError("X25519 key agreement failed (low-order public key?)") from None
    if kem is KemType.X25519:
        return eph_public, ss_x
    mlkem = _mlkem()
    try:
        peer = mlkem.MLKEM768PublicKey.from_public_bytes(public[_X25519_SIZE:])
        ss_pq, ct_pq = peer.encapsulate()
    except ValueError:
        raise CryptoError("invalid ML-KEM-768 public key") from None
    ciphertext = eph_public + ct_pq
    return ciphertext, _combine(ss_pq, ss_x, ciphertext, public)
