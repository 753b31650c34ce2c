"""Keys from passwords: Argon2id (libsodium) for the quick start and for sealing root.key.

The quick start has no files to carry between machines: the root of trust and
the provisioner are *derived* from two passwords, so every node provisioned with
the same passwords ends up trusting the same root. That only works with a fixed
salt (a per-run random salt would give every node a different root), so the
salts are constants of the protocol, documented in docs/provisioning.md and
pinned by tests/vectors/password_kdf.json.

The public halves of both derived keys are in every chain on the wire, so
anyone who reads a chain (a broker operator, say) can guess the passwords
offline, at the cost of one Argon2id run per guess. The current derivation,
:data:`KDF_V2`, therefore uses libsodium's "sensitive" limits (4 passes,
1 GiB) and refuses passwords shorter than 16 characters:

    root salt        = BLAKE2b-512(b"kafkaratchet root of trust v2")[:16]
    provisioner salt = BLAKE2b-512(b"kafkaratchet provisioner v2")[:16]

:data:`KDF_V1` ("moderate" limits, "... v1" salts, 12 characters) is kept only
so that ``--legacy-kdf`` can add a node to a deployment made before v2, and so
the tool can recognise such a deployment and say so. Passwords are
Unicode-normalised (NFC) before hashing, so the same password typed on two
systems gives one key.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash

from kafkaratchet.errors import ProvisioningError
from kafkaratchet.files.provisioning import ROLE_USAGES
from kafkaratchet.protocol.certs import Certificate, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "QUICKSTART_MIN_PASSWORD_LENGTH",
    "OPSLIMIT",
    "MEMLIMIT",
    "ROOT_SALT",
    "PROVISIONER_SALT",
    "PROVISIONER_USAGES",
    "QuickstartKdf",
    "KDF_V1",
    "KDF_V2",
    "CURRENT_KDF",
    "fixed_salt",
    "password_bytes",
    "derive_key",
    "root_identity",
    "provisioner_identity",
    "root_certificate",
    "provisioner_certificate",
]

#: Shortest password accepted anywhere (root.key's password, the v1 quick start), in characters after NFC.
MIN_PASSWORD_LENGTH = 12
#: Limits root.key files are sealed with (each file has its own random salt, and it stays offline).
OPSLIMIT: int = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT: int = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
KEY_SIZE = 32
SALT_SIZE: int = nacl.pwhash.argon2id.SALTBYTES


def fixed_salt(label: bytes) -> bytes:
    """The first 16 bytes of BLAKE2b-512 of ``label``: a salt anyone can recompute from the docs."""
    return hashlib.blake2b(label).digest()[:SALT_SIZE]


@dataclass(frozen=True)
class QuickstartKdf:
    """One version of the quick start's derivation: its fixed salts, Argon2id limits and shortest password."""

    version: int
    root_label: bytes
    provisioner_label: bytes
    opslimit: int
    memlimit: int
    min_length: int

    @property
    def root_salt(self) -> bytes:
        return fixed_salt(self.root_label)

    @property
    def provisioner_salt(self) -> bytes:
        return fixed_salt(self.provisioner_label)

    def describe(self) -> str:
        return (f"quick start v{self.version} (Argon2id, {self.opslimit} passes, {self.memlimit >> 20} MiB, "
                f"passwords of {self.min_length}+ characters)")


#: Before v2: libsodium's "moderate" limits. About 0.6 s per guess on one core; kept for ``--legacy-kdf``.
KDF_V1 = QuickstartKdf(1, b"kafkaratchet root of trust v1", b"kafkaratchet provisioner v1",
                       opslimit=3, memlimit=256 << 20, min_length=12)
#: libsodium's "sensitive" limits: about 3.4 s and 1 GiB per guess on one core (docs/provisioning.md).
KDF_V2 = QuickstartKdf(2, b"kafkaratchet root of trust v2", b"kafkaratchet provisioner v2",
                       opslimit=4, memlimit=1 << 30, min_length=16)
CURRENT_KDF = KDF_V2

#: Shortest root and provisioning password of the current quick start.
QUICKSTART_MIN_PASSWORD_LENGTH = CURRENT_KDF.min_length
ROOT_SALT = CURRENT_KDF.root_salt
PROVISIONER_SALT = CURRENT_KDF.provisioner_salt

#: What a provisioner may hand out: everything some role gets, nothing more (no allow/deny-list edits:
#: an ``admin`` node is signed by the root itself, which takes the root password).
PROVISIONER_USAGES: frozenset[str] = frozenset().union(
    *(usages for role, usages in ROLE_USAGES.items() if role != "admin"))


def password_bytes(password: str, what: str, *, min_length: int = MIN_PASSWORD_LENGTH, hint: str = "") -> bytes:
    """NFC-normalised UTF-8 of ``password``; ProvisioningError when it is shorter than ``min_length``.

    The error names ``what`` ("root password") and the rule (plus ``hint``), never the password.
    """
    normalised = unicodedata.normalize("NFC", password)
    if len(normalised) < min_length:
        raise ProvisioningError(f"the {what} is too short: it needs at least {min_length} characters{hint}")
    return normalised.encode("utf-8")


def derive_key(password: bytes, salt: bytes, *, opslimit: int = OPSLIMIT, memlimit: int = MEMLIMIT) -> bytes:
    """32 bytes of Argon2id (version 1.3) over ``password`` and ``salt``.

    Slow on purpose (seconds at the quick start's limits): callers derive each
    password once per run and keep nothing on disk.
    """
    if len(salt) != SALT_SIZE:
        raise ProvisioningError(f"an Argon2id salt must be {SALT_SIZE} bytes")
    try:
        return nacl.pwhash.argon2id.kdf(KEY_SIZE, password, salt, opslimit=opslimit, memlimit=memlimit)
    except (MemoryError, nacl.exceptions.RuntimeError) as exc:
        raise ProvisioningError(
            f"Argon2id failed ({type(exc).__name__}); it needs {memlimit >> 20} MiB of free memory") from None


def root_identity(password: str, kdf: QuickstartKdf = CURRENT_KDF) -> SigningIdentity:
    """The quick start's root of trust: the Ed25519 key whose seed is Argon2id(root password, root salt)."""
    secret = password_bytes(password, "root password", min_length=kdf.min_length)
    return SigningIdentity(derive_key(secret, kdf.root_salt, opslimit=kdf.opslimit, memlimit=kdf.memlimit))


def provisioner_identity(password: str, kdf: QuickstartKdf = CURRENT_KDF) -> SigningIdentity:
    """The quick start's provisioner key, from the provisioning password and its own fixed salt."""
    secret = password_bytes(password, "provisioning password", min_length=kdf.min_length)
    return SigningIdentity(derive_key(secret, kdf.provisioner_salt, opslimit=kdf.opslimit, memlimit=kdf.memlimit))


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
