"""Regenerate password_kdf.json: python tests/vectors/generate_password.py [--check].

The quick start derives the root of trust and the provisioner key from two
passwords (docs/provisioning.md, "How the keys are derived"). This file pins
every constant of that derivation, for the current version and the legacy one
``--legacy-kdf`` keeps: the salt labels and salts, the Argon2id limits, the
shortest password, and known answers (password -> Ed25519 public key). It is
written from the documented recipe with libsodium alone, not from
``provision.password``, so the unit test compares two implementations. Each
derivation costs seconds (1 GiB for v2): regenerating takes about ten.
``--check`` compares instead of writing (exit 1 on a difference).
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
from pathlib import Path
from typing import Any

import nacl.pwhash
import nacl.signing
from vectorfiles import write_or_check

HERE = Path(__file__).resolve().parent
NAME = "password_kdf.json"

#: version -> (root salt label, provisioner salt label, opslimit, memlimit, shortest password)
PARAMETERS: dict[int, tuple[str, str, int, int, int]] = {
    2: ("kafkaratchet root of trust v2", "kafkaratchet provisioner v2", 4, 1 << 30, 16),
    1: ("kafkaratchet root of trust v1", "kafkaratchet provisioner v1", 3, 256 << 20, 12),
}
CURRENT = 2
#: (which key, password): the test suite's own passwords, so the vector costs the tests nothing extra
ANSWERS = [("root", "correct horse battery staple"), ("provisioner", "provisioning password 42")]
#: NFC: a decomposed password hashes as its composed form
NORMALISED = ["cafe\u0301 au lait, sans sucre", "Pa\u0308sswort fu\u0308r den Root-Schlu\u0308ssel"]


def argon2id(password: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """crypto_pwhash with Argon2id v1.3, 32 bytes (replaced by a memo in the unit test)."""
    return nacl.pwhash.argon2id.kdf(32, password, salt, opslimit=opslimit, memlimit=memlimit)


def salt(label: str) -> bytes:
    return hashlib.blake2b(label.encode("ascii")).digest()[:16]


def public_key(seed: bytes) -> str:
    return bytes(nacl.signing.SigningKey(seed).verify_key).hex()


def vectors() -> dict[str, Any]:
    kdfs: list[dict[str, Any]] = []
    for version, (root_label, provisioner_label, opslimit, memlimit, min_length) in PARAMETERS.items():
        salts = {"root": salt(root_label), "provisioner": salt(provisioner_label)}
        answers = [{"key": key, "password": password,
                    "public_key": public_key(argon2id(unicodedata.normalize("NFC", password).encode(),
                                                      salts[key], opslimit, memlimit))}
                   for key, password in ANSWERS]
        kdfs.append({
            "version": version, "current": version == CURRENT, "algorithm": "Argon2id v1.3 (crypto_pwhash)",
            "root_label": root_label, "root_salt": salts["root"].hex(),
            "provisioner_label": provisioner_label, "provisioner_salt": salts["provisioner"].hex(),
            "opslimit": opslimit, "memlimit": memlimit, "key_size": 32, "min_password_length": min_length,
            "too_short": "x" * (min_length - 1), "derivations": answers,
        })
    normalised = [{"password": text, "utf8": unicodedata.normalize("NFC", text).encode().hex()}
                  for text in NORMALISED]
    return {"description": "the quick start's password derivation (docs/provisioning.md, How the keys are derived)",
            "kdfs": kdfs, "normalisation": normalised}


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=True) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(HERE, {NAME: render}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
