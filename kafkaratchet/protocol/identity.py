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

from kafkaratchet.errors import FormatError, SignatureError

__all__ = ["SigningIdentity", "verify", "fingerprint", "PUBLIC_KEY_SIZE", "SIGNATURE_SIZE", "encode_identity_file",
           "decode_identity_file", "derive_subkey", "IDENTITY_FILE_SIZE"]

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


# -- the node's identity file (``<node>.crypto``) -------------------------------------------------
# "KRID" | version 0x01 | Ed25519 seed (32) | check (16, BLAKE2b-128 of the preceding 37 bytes)
_ID_MAGIC = b"KRID\x01"
_ID_CHECK_PERSON = b"kr-identity-chk\x00"
IDENTITY_FILE_SIZE = len(_ID_MAGIC) + SEED_SIZE + 16


def encode_identity_file(identity: SigningIdentity) -> bytes:
    body = _ID_MAGIC + identity.seed_bytes()
    return body + sodium.crypto_generichash_blake2b_salt_personal(body, digest_size=16, person=_ID_CHECK_PERSON)


def decode_identity_file(data: bytes) -> SigningIdentity:
    """The identity in a ``.crypto`` file; FormatError when the bytes are not one."""
    if len(data) != IDENTITY_FILE_SIZE or not data.startswith(_ID_MAGIC[:4]):
        raise FormatError("not a kafkaratchet identity file")
    if data[4:5] != _ID_MAGIC[4:]:
        raise FormatError(f"unsupported identity file version {data[4]}")
    body, check = data[:-16], data[-16:]
    expected = sodium.crypto_generichash_blake2b_salt_personal(body, digest_size=16, person=_ID_CHECK_PERSON)
    if not hmac.compare_digest(check, expected):
        raise FormatError("identity file checksum mismatch (corrupt)")
    return SigningIdentity(bytes(body[len(_ID_MAGIC):]))


def derive_subkey(identity: SigningIdentity, purpose: bytes) -> bytes:
    """A 32-byte key for a local purpose (sealing the key archive), bound to this identity."""
    return sodium.crypto_generichash_blake2b_salt_personal(
        b"", digest_size=32, key=identity.seed_bytes(), person=purpose.ljust(16, b"\x00")[:16])
