"""A node's long-term Ed25519 signing identity and its printable fingerprint.

Every signature is domain-separated by a context label, so a signature made for
one structure (a certificate) can never be replayed as another (a key request).
"""

from __future__ import annotations

import base64
import hmac

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing

from .errors import FormatError, SignatureError

__all__ = ["SigningIdentity", "verify", "fingerprint", "PUBLIC_KEY_SIZE", "SIGNATURE_SIZE"]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
_FINGERPRINT_PERSON = b"kr-fingerprint\x00\x00"


def _signed_bytes(context: bytes, message: bytes) -> bytes:
    return len(context).to_bytes(1, "big") + context + message


def fingerprint(public_key: bytes) -> str:
    """80 bits of BLAKE2b over the public key, as four groups of base32 (``abcd-efgh-ijkl-mnop``)."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise FormatError(f"public key must be {PUBLIC_KEY_SIZE} bytes")
    digest = sodium.crypto_generichash_blake2b_salt_personal(
        public_key, digest_size=10, person=_FINGERPRINT_PERSON
    )
    text = base64.b32encode(digest).decode("ascii").lower()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def verify(public_key: bytes, context: bytes, message: bytes, signature: bytes) -> None:
    """Check a detached signature; raise SignatureError (never return False)."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        raise SignatureError("malformed public key or signature")
    try:
        nacl.signing.VerifyKey(public_key).verify(_signed_bytes(context, message), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        raise SignatureError(f"signature by {fingerprint(public_key)} does not verify") from None


class SigningIdentity:
    """An Ed25519 private key. Its repr names the fingerprint, never the key."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise FormatError(f"identity seed must be {SEED_SIZE} bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> SigningIdentity:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def seed_bytes(self) -> bytes:
        """The 32-byte private seed, for writing to the node's 0600 ``.crypto`` file only."""
        return bytes(self._key)

    def sign(self, context: bytes, message: bytes) -> bytes:
        return self._key.sign(_signed_bytes(context, message)).signature

    def same_key(self, other: SigningIdentity) -> bool:
        return hmac.compare_digest(self.seed_bytes(), other.seed_bytes())

    def __repr__(self) -> str:
        return f"SigningIdentity({self.fingerprint})"
