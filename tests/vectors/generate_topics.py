"""Regenerate topics.json (docs/PROTOCOL.md section 7): python tests/vectors/generate_topics.py [--check].

The record keys of the trust topics, computed here from the documented recipe with
nacl.bindings and msgpack (not the library's functions), so a change to either side shows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgpack
import nacl.bindings as sodium
from vectorfiles import write_or_check

from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity

HERE = Path(__file__).resolve().parent
NB = 1_699_913_600


def _digest(data: bytes, person: bytes) -> bytes:
    return sodium.crypto_generichash_blake2b_salt_personal(data, digest_size=16, person=person.ljust(16, b"\x00"))


def render() -> str:
    root, subject = SigningIdentity(bytes([1]) * 32), SigningIdentity(bytes([2]) * 32)
    cases: list[dict[str, Any]] = []
    for name, value in (("good_entry_key_empty", b""), ("good_entry_key_bytes", bytes(range(200)))):
        cases.append({"name": name, "kind": "entry", "value": value.hex(),
                      "key": (b"kr-trust-v2:" + _digest(value, b"kr-trust-entry")).hex()})
    for name, usages, topics, pathlen, expiry in (
            ("good_chain_key_every_topic", [Usage.CONSUME], None, 0, 0),
            ("good_chain_key_topics_unsorted_with_a_duplicate", [Usage.PRODUCE, Usage.CONSUME],
             ["orders", "^m-[0-9]+", "orders"], None, NB + 86_400),
            ("good_chain_key_renewal_same_rights_later_expiry", [Usage.PRODUCE, Usage.CONSUME],
             ["orders", "^m-[0-9]+"], None, NB + 2 * 86_400)):
        cert = issue_certificate(root, subject.public_key, usages=usages, topics=topics, pathlen=pathlen,
                                 expiry=expiry, not_before=NB)
        rights = msgpack.packb([sorted(usages), None if topics is None else sorted(set(topics)), pathlen],
                               use_bin_type=True)
        key = b"kr-chain-v1:" + subject.public_key + _digest(rights, b"kr-chain-rights")
        cases.append({"name": name, "kind": "chain", "chain": Chain.of(cert).encode().hex(), "key": key.hex()})
    data = {"description": "record keys of the trust topics (docs/PROTOCOL.md section 7)", "cases": cases}
    return json.dumps(data, indent=1) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(HERE, {"topics.json": render}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
