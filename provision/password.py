"""Keys from passwords: Argon2id (libsodium) for the quick start and for sealing root.key.

The quick start has no files to carry between machines: the root of trust and
the provisioner are *derived* from two passwords, so every node provisioned with
the same passwords ends up trusting the same root. That only works with a fixed
salt (a per-run random salt would give every node a different root), so the
salts are constants of the protocol, documented in docs/provisioning.md:

    root salt        = BLAKE2b-512(b"kafkaratchet root of trust v1")[:16]
    provisioner salt = BLAKE2b-512(b"kafkaratchet provisioner v1")[:16]

A fixed salt means one attacker's precomputation works against every
deployment, which is why the limits are libsodium's "moderate" (3 passes,
256 MiB; about a second per guess on a server) and the root password must be
at least :data:`MIN_PASSWORD_LENGTH` characters. Passwords are Unicode-normalised
(NFC) before hashing, so the same password typed on two systems gives one key.
"""

from __future__ import annotations

import hashlib
import unicodedata

import nacl.exceptions
import nacl.pwhash

from kafkaratchet.certs import Certificate, Usage, issue_certificate, self_signed_root
from kafkaratchet.errors import ProvisioningError
from kafkaratchet.identity import SigningIdentity
from kafkaratchet.provisioning import ROLE_USAGES

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "OPSLIMIT",
    "MEMLIMIT",
    "ROOT_SALT",
    "PROVISIONER_SALT",
    "PROVISIONER_USAGES",
    "fixed_salt",
    "password_bytes",
    "derive_key",
    "root_identity",
    "provisioner_identity",
    "root_certificate",
    "provisioner_certificate",
]

#: Shortest root (and provisioning) password accepted, in Unicode characters after NFC.
MIN_PASSWORD_LENGTH = 12
OPSLIMIT: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
KEY_SIZE = 32
SALT_SIZE: int = nacl.pwhash.argon2id.SALTBYTES


def fixed_salt(label: bytes) -> bytes:
    """The first 16 bytes of BLAKE2b-512 of ``label``: a salt anyone can recompute from the docs."""
    return hashlib.blake2b(label).digest()[:SALT_SIZE]


ROOT_SALT = fixed_salt(b"kafkaratchet root of trust v1")
PROVISIONER_SALT = fixed_salt(b"kafkaratchet provisioner v1")

#: What a provisioner may hand out: everything some role gets, nothing more (no allow/deny-list edits:
#: an ``admin`` node is signed by the root itself, which takes the root password).
PROVISIONER_USAGES: frozenset[str] = frozenset().union(
    *(usages for role, usages in ROLE_USAGES.items() if role != "admin"))


def password_bytes(password: str, what: str) -> bytes:
    """NFC-normalised UTF-8 of ``password``; ProvisioningError when it is too short.

    The error names ``what`` ("root password") and the rule, never the password.
    """
    normalised = unicodedata.normalize("NFC", password)
    if len(normalised) < MIN_PASSWORD_LENGTH:
        raise ProvisioningError(f"the {what} is too short: it needs at least {MIN_PASSWORD_LENGTH} characters")
    return normalised.encode("utf-8")


def derive_key(password: bytes, salt: bytes, *, opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT) -> bytes:
    """32 bytes of Argon2id (version 1.3) over ``password`` and ``salt``.

    Slow on purpose (about a second at the default limits): callers derive each
    password once per run and keep nothing on disk.
    """
    if len(salt) != SALT_SIZE:
        raise ProvisioningError(f"an Argon2id salt must be {SALT_SIZE} bytes")
    try:
        return nacl.pwhash.argon2id.kdf(KEY_SIZE, password, salt, opslimit=opslimit, memlimit=memlimit)
    except (MemoryError, nacl.exceptions.RuntimeError) as exc:
        raise ProvisioningError(
            f"Argon2id failed ({type(exc).__name__}); it needs {memlimit >> 20} MiB of free memory") from None


def root_identity(password: str) -> SigningIdentity:
    """The quick start's root of trust: the Ed25519 key whose seed is Argon2id(root password, root salt)."""
    return SigningIdentity(derive_key(password_bytes(password, "root password"), ROOT_SALT))


def provisioner_identity(password: str) -> SigningIdentity:
    """The quick start's provisioner key, from the provisioning password and its own fixed salt."""
    return SigningIdentity(derive_key(password_bytes(password, "provisioning password"), PROVISIONER_SALT))


def root_certificate(root: SigningIdentity, *, not_before: int = 0) -> Certificate:
    """The root's self-signed allowlist entry: every usage, every topic, no path limit, no expiry.

    ``not_before`` is fixed (0 for the quick start) rather than "a minute ago", so
    that with deterministic Ed25519 signatures the same root always yields the
    byte-identical certificate on every node.
    """
    return self_signed_root(root, usages=Usage.ALL, topics=None, pathlen=None, expiry=0, not_before=not_before)


def provisioner_certificate(root: SigningIdentity, provisioner: bytes, *, node_pathlen: int = 0) -> Certificate:
    """The root's certificate for the provisioner key: first link of every quick-start chain.

    Path length ``node_pathlen + 1``: exactly room for the node's certificate and
    whatever the node itself was allowed to issue (1 for an ordinary node).
    """
    return issue_certificate(root, provisioner, usages=PROVISIONER_USAGES, topics=None,
                             pathlen=node_pathlen + 1, expiry=0, not_before=0)
