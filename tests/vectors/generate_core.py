"""Regenerate ratchet.json and records.json deterministically: python tests/vectors/generate_core.py.

Inputs are fixed byte patterns; sealed records fix their random nonce tail here
by building the record from the documented layout, so the files are stable.
"""

from __future__ import annotations

import json
from pathlib import Path

import nacl.bindings as sodium

from kafkaratchet.protocol.ratchet import derive_data_key, encode_seed, step_secret
from kafkaratchet.protocol.records import MAGIC, VERSION, Role

HERE = Path(__file__).resolve().parent


def ratchet_vectors() -> dict[str, object]:
    cases: list[dict[str, object]] = []
    secret = bytes(range(32))
    for i in range(3):
        fresh = bytes([0xA0 + i]) * 32
        nxt = step_secret(secret, fresh)
        cases.append({"name": f"good_step_{i}", "kind": "step", "secret": secret.hex(), "fresh": fresh.hex(),
                      "next": nxt.hex()})
        secret = nxt
    for root in ("orders", "x", "ünïcode"):
        key = derive_data_key(secret, root)
        cases.append({"name": f"good_key_{root.encode().hex()}", "kind": "data_key", "secret": secret.hex(),
                      "root": root, "key_id": key.key_id.hex(), "key": key.key.hex()})
    good = encode_seed(7, secret)
    cases.append({"name": "good_seed_file", "kind": "seed_file", "file": good.hex(), "epoch": 7,
                  "secret": secret.hex()})
    flipped = bytearray(good)
    flipped[20] ^= 1
    bad_version = bytearray(good)
    bad_version[4] = 2
    bad_magic = bytearray(good)
    bad_magic[0] = ord("X")
    for name, data in (("bad_seed_checksum", bytes(flipped)), ("bad_seed_truncated", good[:-1]),
                       ("bad_seed_version", bytes(bad_version)), ("bad_seed_magic", bytes(bad_magic)),
                       ("bad_seed_empty", b"")):
        cases.append({"name": name, "kind": "seed_file", "file": data.hex(), "error": "RatchetError"})
    description = "ratchet steps, data keys and key ids, seed files (docs/PROTOCOL.md, section Ratchet)"
    return {"description": description, "cases": cases}


def _record(key: bytes, key_id: bytes, tail: bytes, topic: str, role: Role, plaintext: bytes) -> bytes:
    header = bytes((MAGIC, VERSION)) + key_id + tail
    aad = header[:10] + role.value + topic.encode()
    return header + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, header[2:], key)


def record_vectors() -> dict[str, object]:
    key = bytes([0x42]) * 32
    key_id = bytes.fromhex("0102030405060708")
    tail = bytes(range(100, 116))
    cases: list[dict[str, object]] = []

    def add(name: str, record: bytes, topic: str, role: Role, **expect: object) -> None:
        cases.append({"name": name, "key": key.hex(), "key_id": key_id.hex(), "topic": topic,
                      "role": role.name.lower(), "record": record.hex(), **expect})

    for text, role in ((b"", Role.VALUE), (b"hello, kafka", Role.VALUE), (b"k-1", Role.KEY)):
        add(f"good_{role.name.lower()}_{len(text)}", _record(key, key_id, tail, "orders.eu", role, text),
            "orders.eu", role, plaintext=text.hex())
    good = _record(key, key_id, tail, "orders.eu", Role.VALUE, b"hello, kafka")
    add("bad_other_topic", good, "orders.us", Role.VALUE, error="DecryptionError")
    add("bad_other_role", good, "orders.eu", Role.KEY, error="DecryptionError")
    flipped = bytearray(good)
    flipped[-1] ^= 0x80
    add("bad_tag_flipped", bytes(flipped), "orders.eu", Role.VALUE, error="DecryptionError")
    body = bytearray(good)
    body[30] ^= 1
    add("bad_ciphertext_flipped", bytes(body), "orders.eu", Role.VALUE, error="DecryptionError")
    kid = bytearray(good)
    kid[5] ^= 1
    add("bad_key_id_changed", bytes(kid), "orders.eu", Role.VALUE, error="DecryptionError")
    add("bad_version", bytes((MAGIC, 2)) + good[2:], "orders.eu", Role.VALUE, error="UnsupportedVersionError")
    add("bad_magic", b"\x00" + good[1:], "orders.eu", Role.VALUE, error="NotARecordError")
    add("bad_truncated", good[:41], "orders.eu", Role.VALUE, error="NotARecordError")
    add("bad_plaintext_json", b'{"a": 1}', "orders.eu", Role.VALUE, error="NotARecordError")
    return {"description": "sealed records (docs/PROTOCOL.md, section Sealed records)", "cases": cases}


def main() -> None:
    for name, data in (("ratchet.json", ratchet_vectors()), ("records.json", record_vectors())):
        (HERE / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
