"""The offline root key file (``root.key``): an Ed25519 seed sealed under a password.

The root of an offline PKI lives on one machine and is only ever opened to sign
a node's request, so the file must be useless to whoever copies it without the
password: the seed is sealed with XChaCha20-Poly1305 under a key derived from
the password with Argon2id and a random salt. The public half is kept in the
clear so ``sign`` can show which root it is about to open before asking for the
password. Layout (150 bytes, integers big-endian; see docs/provisioning.md)::

    offset size
      0     4   magic "KRRK"
      4     1   version 0x01
      5     1   KDF 0x01 = Argon2id v1.3
      6     8   opslimit
     14     8   memlimit (bytes)
     22    16   salt (random)
     38     8   created (Unix seconds; the root certificate's not_before)
     46    32   root public key
     78    24   nonce (random)
    102    48   XChaCha20-Poly1305(seed) with bytes 0..101 as associated data

Every header byte is authenticated, so a wrong password, a flipped bit or a
swapped public key all fail the same way, before any key is used.
"""

from __future__ import annotations

import hmac
import os
import struct
import time
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions

from kafkaratchet.errors import FormatError, ProvisioningError
from kafkaratchet.protocol.certs import Certificate
from kafkaratchet.protocol.identity import SigningIdentity

from .password import MEMLIMIT, OPSLIMIT, SALT_SIZE, derive_key, root_certificate

__all__ = ["RootKey", "seal_root_key", "open_root_key", "peek_root_key", "ROOT_KEY_FILE_SIZE"]

_MAGIC = b"KRRK"
_VERSION = 1
_KDF_ARGON2ID = 1
_HEADER = struct.Struct(">4sBBQQ16sQ32s")
_NONCE_SIZE = 24
_SEED_SIZE = 32
_TAG_SIZE = 16
ROOT_KEY_FILE_SIZE = _HEADER.size + _NONCE_SIZE + _SEED_SIZE + _TAG_SIZE
# bounds on what a file may ask of Argon2id: enough to refuse a file that would exhaust memory or time
_MAX_OPSLIMIT = 64
_MIN_MEMLIMIT = 8192
_MAX_MEMLIMIT = 4 << 30


@dataclass(frozen=True)
class RootKey:
    """An opened root key: the identity, when it was created, and its allowlist certificate."""

    identity: SigningIdentity
    created: int

    @property
    def certificate(self) -> Certificate:
        return root_certificate(self.identity, not_before=self.created)


@dataclass(frozen=True)
class _Header:
    opslimit: int
    memlimit: int
    salt: bytes
    created: int
    public_key: bytes
    nonce: bytes
    ciphertext: bytes
    associated: bytes


def seal_root_key(identity: SigningIdentity, password: bytes, *, created: int | None = None,
                  opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT) -> bytes:
    """The bytes of a root.key file holding ``identity``, sealed under ``password``."""
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(_NONCE_SIZE)
    stamp = int(time.time()) if created is None else created
    header = _HEADER.pack(_MAGIC, _VERSION, _KDF_ARGON2ID, opslimit, memlimit, salt, stamp, identity.public_key)
    associated = header + nonce
    key = derive_key(password, salt, opslimit=opslimit, memlimit=memlimit)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(identity.seed_bytes(), associated, nonce, key)
    return associated + sealed


def _parse(data: bytes) -> _Header:
    if len(data) != ROOT_KEY_FILE_SIZE or not data.startswith(_MAGIC):
        raise FormatError("not a kafkaratchet root key file")
    magic, version, kdf, opslimit, memlimit, salt, created, public_key = _HEADER.unpack_from(data)
    if version != _VERSION:
        raise FormatError(f"unsupported root key file version {version}")
    if kdf != _KDF_ARGON2ID:
        raise FormatError(f"unknown key derivation function {kdf}")
    if not 1 <= opslimit <= _MAX_OPSLIMIT or not _MIN_MEMLIMIT <= memlimit <= _MAX_MEMLIMIT:
        raise FormatError("Argon2id limits out of range (corrupt file?)")
    associated = data[: _HEADER.size + _NONCE_SIZE]
    return _Header(opslimit, memlimit, salt, created, public_key, data[_HEADER.size:_HEADER.size + _NONCE_SIZE],
                   data[_HEADER.size + _NONCE_SIZE:], associated)


def peek_root_key(data: bytes) -> tuple[bytes, int]:
    """(public key, created) of a root.key file, without the password (FormatError if not one)."""
    header = _parse(data)
    return header.public_key, header.created


def open_root_key(data: bytes, password: bytes) -> RootKey:
    """The root key sealed in ``data``; ProvisioningError for a wrong password or a tampered file."""
    header = _parse(data)
    key = derive_key(password, header.salt, opslimit=header.opslimit, memlimit=header.memlimit)
    try:
        seed = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(header.ciphertext, header.associated,
                                                                 header.nonce, key)
    except nacl.exceptions.CryptoError:
        raise ProvisioningError("wrong password for the root key (or the file was altered)") from None
    identity = SigningIdentity(seed)
    if not hmac.compare_digest(identity.public_key, header.public_key):
        raise ProvisioningError("the root key file is inconsistent: its public key does not match its seed")
    return RootKey(identity, header.created)
