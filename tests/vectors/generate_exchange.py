"""Regenerate identity.json, key_archive.json, kem.json and key_exchange.json deterministically.

Run: python tests/vectors/generate_exchange.py (``--check`` to compare).

The bytes are built here from the layouts documented in docs/PROTOCOL.md
(sections 3, 4 and 6) with nacl.bindings, msgpack and ``cryptography``'s
ML-KEM, not with the library's encoders: the runner
(tests/unit/protocol/test_vectors_exchange.py) checks that the library decodes them,
and that what the library writes itself decodes the same. Every input is
fixed: Ed25519 identities use the seed ``bytes([n]) * 32``, X25519 (crypto_kx)
key pairs come from fixed seeds (``crypto_kx_seed_keypair``), nonces and
request ids are fixed byte patterns. ML-KEM-768 encapsulation takes no
caller randomness, so its one ciphertext is stored below (made once by
encapsulating to the seeded key ``MLKEM_SEED``; the generator checks it
decapsulates to ``MLKEM_SS``, i.e. it is a genuine encapsulation). The files
are therefore byte-for-byte stable; ``--check`` compares instead of writing
(exit 1 on a difference).
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import nacl.bindings as sodium
from cryptography.hazmat.primitives.asymmetric import mlkem
from vectorfiles import write_or_check

from kafkaratchet.protocol.certs import DEFAULT_SKEW, Certificate, Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity

HERE = Path(__file__).resolve().parent
NOW = 1_700_000_000
DAY = 86_400
MAX_AGE = 3_600  # the runner's request_max_age, seconds

MLKEM_SS = bytes.fromhex("d7a9ad4096c0f0ce29484d284663750beec242535a8447afff7f0191c28b0505")
MLKEM_CIPHERTEXT = bytes.fromhex(
    "fc43add05d22dcddd1b6baaa78e2264fb1ddc295c8fabec58c7ba4bc927d6904264ca0e77e68fb57981fa219d61c67c7b9adc210cfb1afa0"
    "8eb2a4dd3d02728eddef4a1fb6d700777c8fe02415dd907b58fc99bc26710b58718797b55aafec0ef856d3ea9816cfba3b497997875b4b00"
    "5337fa085ed7dab422f71b252f89204869c1a24ebbdbf4f4c75b6e39d65c50ecd0b38a946e7333a27a434ba9b26464c231cfcd1678482776"
    "d64027c82f5fc3404a98a7b49557cbe0d2fceaa7fd5138a539f732b0f7c49cf534d593d51e12a657dcb466dc7dd70980e1f6ed59319d6cbc"
    "ff865c2da3e9b364b44f69fd594483da8a165e11d69d649dad0cc5f6c8e1a139dfca2ec52e543ae6cce731f4387ca21554fc328f1207f230"
    "f0d89372d9820ce2652c18b3263da5ce2a027f0aae7b5b986b61010fe23320407d0832d6217ca88d6c48f2ffac75836f7f8fc49712eccc63"
    "df0bea6808643f31a296d4f7abd2d63a21f9ea92855ee5e44adc194e15206d9a185f201f61e521933539aeb72cf9205cce691fe38d4b5891"
    "bd51ffd15ebca8d3e4b2b819546b42d7a7565a8444219eac5067b4645b858db0e7a4b7b1e5b76d707ccacc95bd6d26b7bc325b533ef8dd5d"
    "4e80e8c7560f490f6d7c3fdb3b76faf849eab5d21dd9de91913a6c7f2a7b02e7f3411ff44483b8316e784f9ff0751e1ba73af211bedc3637"
    "7b23db6e1c9eb1c76438dd5f34530f178b28635ab98af0ad5e9167abc602d9a05c732befa5b8070b7e6cf93d67ac72a15de6a25c06de1451"
    "35e2c1f0fe0f7ffc51221d667bd3c59dfcd0292e0a6bddfebc0b7d127f52031516eb6ad921168007831b6dde6b17f68cea63ac75b678de95"
    "6d66a73253971039e6702ae0dc3c72eec99fce1713c2f8a3b3d6c74995a7a310c01b6d8c9321bfd7da3ae91dd06dd79fafb58471e6777288"
    "6d901645ca5d46c95211319d0473d7f9a25c3978f8d24fd71cf599f80714421653939e7d195fd28487ec61ed12a5342a5f0113655ce9e816"
    "52504399624ec646cf28b5caee17b3eb0e8dcf1a5d5075799cd6a0d97c4de6d42fe84dbfef5f8cbe26b5f002be77e2d0490d98ab974bc38b"
    "2ad2257d1129fde9f17247762d2e9c12c67af2e6d256b5f6a9dddb89904345c20c648081c61810d4cdfd899591dccec89f37d9950eeb1689"
    "4a52c23fc845cc90d44cb3b9e73b8afd32fba12ae01155b6bbf9cfcd5947a85f4503a7230bed83551e588b1daea30ecbe3b8e6075ac5c146"
    "230cd26d224688cc7fd2d59ad3e6c40b4f458f4523355aacaf6efeb7e40768a9ba95c062701705c2a458964282b4d5208f7be30512372443"
    "7aa303e302728a520d4d2335ce357690d308b593acea73d735016f41f221eaaa81213543dd030a2282bf995f1b498ac00711cd4ba3795bd6"
    "061c77b025e3ec57adae41a3929660a3d989bcbc11700aa0aa3990bed6a0bd54680ee8a2f4ade696b28778e413d4b7c9f90b94c0a4fc8d04"
    "d7198120754eea069913c57fb711afb3393d0770b78ca9ce"
)
#: the ML-KEM-768 (d || z) seed of the requester's hybrid key, to which MLKEM_CIPHERTEXT was encapsulated
MLKEM_SEED = bytes(range(0x40, 0x80))


# -- primitives, as docs/PROTOCOL.md states them --------------------------------------------------
def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def blake2b(msg: bytes, *, size: int, person: bytes, key: bytes = b"") -> bytes:
    return sodium.crypto_generichash_blake2b_salt_personal(msg, digest_size=size, key=key,
                                                           person=person.ljust(16, b"\x00"))


def aead(plaintext: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes:
    return sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, aad, nonce, key)


def sign(seed: bytes, context: bytes, message: bytes) -> bytes:
    """Domain-separated Ed25519: len(context) | context | message."""
    _, secret = sodium.crypto_sign_seed_keypair(seed)
    return sodium.crypto_sign(bytes([len(context)]) + context + message, secret)[:64]


def public_of(seed: bytes) -> bytes:
    return sodium.crypto_sign_seed_keypair(seed)[0]


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def seed(n: int) -> bytes:
    return bytes([n]) * 32


Case = dict[str, Any]


def render_file(description: str, cases: list[Case], **top: Any) -> dict[str, Any]:
    return {"description": description, **top, "cases": cases}


# -- 3. identity file -----------------------------------------------------------------------------
def identity_file(ed_seed: bytes, *, magic: bytes = b"KRID", version: int = 1) -> bytes:
    body = magic + bytes([version]) + ed_seed
    return body + blake2b(body, size=16, person=b"kr-identity-chk")


def fingerprint(public: bytes) -> str:
    text = base64.b32encode(blake2b(public, size=10, person=b"kr-fingerprint")).decode("ascii").lower()
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def identity_vectors() -> dict[str, Any]:
    cases: list[Case] = []
    for n in (1, 20, 0xFF):
        s = seed(n)
        cases.append({"name": f"good_seed_{n:02x}", "file": identity_file(s).hex(), "expect": {
            "seed": s.hex(), "public_key": public_of(s).hex(), "fingerprint": fingerprint(public_of(s))}})
    good = identity_file(seed(20))

    def bad(name: str, data: bytes) -> None:
        cases.append({"name": name, "file": data.hex(), "error": "FormatError"})

    # magic and version cases carry a correct check over their own bytes: only the magic or version check stops them
    bad("bad_magic", identity_file(seed(20), magic=b"KRIX"))
    bad("bad_magic_seed_file", identity_file(seed(20), magic=b"KRSD"))
    bad("bad_version_0", identity_file(seed(20), version=0))
    bad("bad_version_2", identity_file(seed(20), version=2))
    bad("bad_checksum", flip(good, 52))
    bad("bad_seed_changed", flip(good, 10))
    bad("bad_size_truncated", good[:-1])
    bad("bad_size_trailing_byte", good + b"\x00")
    bad("bad_size_empty", b"")
    return render_file("node identity files, <node>.crypto (docs/PROTOCOL.md, section 3)", cases)


# -- 4. key archive -------------------------------------------------------------------------------
ARCHIVE_HEADER = b"KRKA\x01"
ARCHIVE_SEED = seed(20)
ARCHIVE_KEY = blake2b(b"", key=ARCHIVE_SEED, size=32, person=b"kr-key-archive")
ARCHIVE_NONCE = bytes(range(0x80, 0x98))
ENTRIES: list[list[Any]] = [
    ["orders", bytes.fromhex("0102030405060708"), bytes([0x11]) * 32, NOW - 2 * DAY],
    ["orders", bytes.fromhex("1112131415161718"), bytes([0x12]) * 32, NOW - DAY],
    ["ünïcode.root", bytes.fromhex("2122232425262728"), bytes([0x21]) * 32, NOW],
]


def archive(plaintext: bytes, *, key: bytes = ARCHIVE_KEY, header: bytes = ARCHIVE_HEADER,
            aad: bytes = ARCHIVE_HEADER, nonce: bytes = ARCHIVE_NONCE) -> bytes:
    return header + nonce + aead(plaintext, aad, nonce, key)


def archive_vectors() -> dict[str, Any]:
    cases: list[Case] = []

    def good(name: str, entries: list[list[Any]]) -> None:
        plaintext = pack(entries)
        cases.append({"name": name, "archive": archive(plaintext).hex(), "expect": {
            "plaintext": plaintext.hex(),
            "entries": [[root, kid.hex(), key.hex(), created] for root, kid, key, created in entries]}})

    def bad(name: str, data: bytes) -> None:
        cases.append({"name": name, "archive": data.hex(), "error": "ConfigError"})

    good("good_three_entries", ENTRIES)
    good("good_one_entry_created_zero", [["x", bytes(8), bytes(32), 0]])
    good("good_empty", [])
    sealed = archive(pack(ENTRIES))
    # -- the envelope
    bad("bad_magic", archive(pack(ENTRIES), header=b"KRKB\x01"))  # sealed with the right associated data
    bad("bad_version", archive(pack(ENTRIES), header=b"KRKA\x02"))  # likewise
    bad("bad_header_only", ARCHIVE_HEADER)
    bad("bad_shorter_than_a_tag", ARCHIVE_HEADER + ARCHIVE_NONCE + bytes(15))
    bad("bad_truncated", sealed[:-1])
    bad("bad_tag_flipped", flip(sealed, len(sealed) - 1, 0x80))
    bad("bad_ciphertext_flipped", flip(sealed, 30))
    bad("bad_nonce_flipped", flip(sealed, 6))
    bad("bad_wrong_key", archive(pack(ENTRIES), key=blake2b(b"", key=seed(21), size=32, person=b"kr-key-archive")))
    bad("bad_no_associated_data", archive(pack(ENTRIES), aad=b""))
    # -- the plaintext, each sealed correctly under the archive key
    kid, key = bytes(8), bytes(32)
    for name, plaintext in (
        ("bad_plaintext_not_msgpack", b"\xc1"),
        ("bad_plaintext_trailing_bytes", pack(ENTRIES) + b"\xc0"),
        ("bad_plaintext_a_map", pack({"orders": []})),
        ("bad_entry_not_an_array", pack([b"orders"])),
        ("bad_entry_three_fields", pack([["orders", kid, key]])),
        ("bad_entry_five_fields", pack([["orders", kid, key, NOW, 0]])),
        ("bad_root_bin", pack([[b"orders", kid, key, NOW]])),
        ("bad_key_id_7_bytes", pack([["orders", bytes(7), key, NOW]])),
        ("bad_key_id_str", pack([["orders", "01234567", key, NOW]])),
        ("bad_key_31_bytes", pack([["orders", kid, bytes(31), NOW]])),
        ("bad_key_33_bytes", pack([["orders", kid, bytes(33), NOW]])),
        ("bad_created_negative", pack([["orders", kid, key, -1]])),
        ("bad_created_float", pack([["orders", kid, key, 1.5]])),
        ("bad_created_bool", pack([["orders", kid, key, True]])),
    ):
        bad(name, archive(plaintext))
    return render_file("producer key archives, <node>.keys, opened with archive_key (docs/PROTOCOL.md, section 4)",
                       cases, identity_seed=ARCHIVE_SEED.hex(), archive_key=ARCHIVE_KEY.hex())


# -- 6. KEMs ---------------------------------------------------------------------------------------
X1_SEED = bytes([0x31]) * 32  # the requester's type 1 (X25519) key
X2_SEED = bytes([0x32]) * 32  # the X25519 half of its type 2 (hybrid) key
P1_SEED = bytes([0x51]) * 32  # the producer's ephemeral X25519 key for a type 1 answer
P2_SEED = bytes([0x52]) * 32  # ... and for a type 2 answer
X1_PUBLIC = sodium.crypto_kx_seed_keypair(X1_SEED)[0]
X2_PUBLIC = sodium.crypto_kx_seed_keypair(X2_SEED)[0]
MLKEM_KEY = mlkem.MLKEM768PrivateKey.from_seed_bytes(MLKEM_SEED)
MLKEM_PUBLIC = MLKEM_KEY.public_key().public_bytes_raw()
HYBRID_PUBLIC = X2_PUBLIC + MLKEM_PUBLIC
if MLKEM_KEY.decapsulate(MLKEM_CIPHERTEXT) != MLKEM_SS:
    raise SystemExit("MLKEM_CIPHERTEXT is not an encapsulation to MLKEM_SEED's key")


def combine(ss_mlkem: bytes, ss_x25519: bytes, ciphertext: bytes, public: bytes) -> bytes:
    return blake2b(ss_mlkem + ss_x25519 + ciphertext + public, size=32, person=b"kr-hybrid-kem-v1")


def encapsulate(kem: int, eph_seed: bytes, public: bytes, mlkem_ct: bytes = MLKEM_CIPHERTEXT) -> tuple[bytes, bytes]:
    """(ciphertext, shared) as a producer makes them, with a fixed ephemeral key and ML-KEM ciphertext."""
    eph_public, eph_secret = sodium.crypto_kx_seed_keypair(eph_seed)
    _, ss_x = sodium.crypto_kx_client_session_keys(eph_public, eph_secret, public[:32])  # client transmit key
    if kem == 1:
        return eph_public, ss_x
    ciphertext = eph_public + mlkem_ct
    return ciphertext, combine(MLKEM_KEY.decapsulate(mlkem_ct), ss_x, ciphertext, public)


def kem_vectors() -> dict[str, Any]:
    cases: list[Case] = []
    x1 = {"kem": 1, "x25519_seed": X1_SEED.hex(), "public": X1_PUBLIC.hex()}
    x2 = {"kem": 2, "x25519_seed": X2_SEED.hex(), "mlkem_seed": MLKEM_SEED.hex(), "public": HYBRID_PUBLIC.hex()}
    cases.append({"name": "good_mlkem768_decapsulate", "kind": "mlkem768", "mlkem_seed": MLKEM_SEED.hex(),
                  "public": MLKEM_PUBLIC.hex(), "ciphertext": MLKEM_CIPHERTEXT.hex(), "shared": MLKEM_SS.hex()})
    rejected = flip(MLKEM_CIPHERTEXT, 100)
    cases.append({"name": "good_mlkem768_implicit_rejection", "kind": "mlkem768", "mlkem_seed": MLKEM_SEED.hex(),
                  "public": MLKEM_PUBLIC.hex(), "ciphertext": rejected.hex(),
                  "shared": MLKEM_KEY.decapsulate(rejected).hex()})
    ct1, ss1 = encapsulate(1, P1_SEED, X1_PUBLIC)
    cases.append({"name": "good_x25519_decapsulate", "kind": "decapsulate", **x1, "ciphertext": ct1.hex(),
                  "shared": ss1.hex()})
    ct2, ss2 = encapsulate(2, P2_SEED, HYBRID_PUBLIC)
    eph_public, eph_secret = sodium.crypto_kx_seed_keypair(P2_SEED)
    ss_x = sodium.crypto_kx_client_session_keys(eph_public, eph_secret, X2_PUBLIC)[1]
    cases.append({"name": "good_hybrid_decapsulate", "kind": "decapsulate", **x2, "ciphertext": ct2.hex(),
                  "ss_x25519": ss_x.hex(), "ss_mlkem": MLKEM_SS.hex(), "shared": ss2.hex()})
    ct3, ss3 = encapsulate(2, P2_SEED, HYBRID_PUBLIC, rejected)
    cases.append({"name": "good_hybrid_mlkem_rejected", "kind": "decapsulate", **x2, "ciphertext": ct3.hex(),
                  "shared": ss3.hex()})
    for name, parts in (
        ("good_combine_hybrid", (MLKEM_SS, ss_x, ct2, HYBRID_PUBLIC)),
        ("good_combine_patterns", (bytes([0xAA]) * 32, bytes([0xBB]) * 32, bytes(range(256)) * 4 + bytes(96),
                                   bytes([0xCC]) * 1216)),
    ):
        ss_mlkem, ss_x25519, ciphertext, public = parts
        cases.append({"name": name, "kind": "combine", "ss_mlkem": ss_mlkem.hex(), "ss_x25519": ss_x25519.hex(),
                      "ciphertext": ciphertext.hex(), "public": public.hex(),
                      "shared": combine(ss_mlkem, ss_x25519, ciphertext, public).hex()})
    for name, params, ciphertext, error in (
        ("bad_x25519_ciphertext_31_bytes", x1, ct1[:31], "FormatError"),
        ("bad_x25519_ciphertext_1120_bytes", x1, ct2, "FormatError"),
        ("bad_hybrid_ciphertext_1119_bytes", x2, ct2[:-1], "FormatError"),
        ("bad_hybrid_ciphertext_32_bytes", x2, ct1, "FormatError"),
        ("bad_x25519_zero_point", x1, bytes(32), "CryptoError"),
        ("bad_hybrid_zero_point", x2, bytes(32) + MLKEM_CIPHERTEXT, "CryptoError"),
    ):
        cases.append({"name": name, "kind": "decapsulate", **params, "ciphertext": ciphertext.hex(), "error": error})
    return render_file("KEM decapsulation and the hybrid combiner (docs/PROTOCOL.md, section 6, Shared secret)",
                       cases)


# -- 6. key-exchange messages ---------------------------------------------------------------------
ROOT, REQUESTER, PRODUCER, CONTROLLER, SUBSCRIBER = seed(1), seed(20), seed(21), seed(22), seed(23)
CONTEXTS = {1: b"kr-request-v1", 2: b"kr-forward-v1", 3: b"kr-answer-v1"}
RID = bytes(range(0xA0, 0xB0))
TS = (NOW - 10) * 1000
KID1, KID2 = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
KEYS = [[KID1, bytes([0x11]) * 32, NOW - DAY], [KID2, bytes([0x12]) * 32, NOW]]
ANSWER_NONCE = bytes(range(0xC0, 0xD8))


def leaf(subject: bytes, *usages: str) -> Chain:
    cert: Certificate = issue_certificate(SigningIdentity(ROOT), public_of(subject), usages=usages,
                                          topics=["orders"], not_before=NOW - DAY)
    return Chain((cert,))


CHAINS = {REQUESTER: leaf(REQUESTER, Usage.CONSUME), PRODUCER: leaf(PRODUCER, Usage.PRODUCE),
          CONTROLLER: leaf(CONTROLLER, Usage.CONTROLLER), SUBSCRIBER: leaf(SUBSCRIBER, Usage.SUBSCRIBE)}


def envelope(kind: int, body: bytes, signer: bytes, *, chain_of: bytes | None = None, context: bytes | None = None,
             version: int = 1, items: int = 5, signature: bytes | None = None) -> bytes:
    """[version, kind, body, chain, signature]: signed by ``signer`` under its kind's context unless told."""
    chain = CHAINS[signer if chain_of is None else chain_of].encode()
    signature = sign(signer, CONTEXTS.get(kind, b"") if context is None else context, body) \
        if signature is None else signature
    return pack([version, kind, body, chain, signature][:items])


def request_body(*, root: Any = "orders", rid: Any = RID, ts: Any = TS, kids: Any = None, kems: Any = None,
                 extra: Any = None, items: int = 6) -> bytes:
    kids = [KID1, KID2] if kids is None else kids
    kems = [[1, X1_PUBLIC]] if kems is None else kems
    return pack([root, rid, ts, kids, kems, {} if extra is None else extra][:items])


def answer_body(kem: int, *, public: bytes | None = None, requester: bytes | None = None,
                sealed_for: bytes | None = None, keys: list[list[Any]] | None = None, rid: Any = RID,
                root: Any = "orders", ciphertext: bytes | None = None, nonce: Any = ANSWER_NONCE,
                sealed: Any = None, kem_field: Any = None) -> bytes:
    """An answer to REQUESTER's request RID, wrapped to its type ``kem`` key with fixed randomness."""
    public = (X1_PUBLIC if kem == 1 else HYBRID_PUBLIC) if public is None else public
    requester = public_of(REQUESTER) if requester is None else requester
    sealed_for = requester if sealed_for is None else sealed_for
    ct, shared = encapsulate(kem, P1_SEED if kem == 1 else P2_SEED, public)
    aad = b"kr-keys-v1" + RID + sealed_for + b"orders"
    if sealed is None:
        sealed = aead(pack(KEYS if keys is None else keys), aad, ANSWER_NONCE, shared)
    return pack([root, rid, TS + 1000, requester, kem if kem_field is None else kem_field,
                 ct if ciphertext is None else ciphertext, nonce, sealed])


def exchange_vectors() -> dict[str, Any]:
    cases: list[Case] = []
    kems = {"1": {"x25519_seed": X1_SEED.hex(), "public": X1_PUBLIC.hex()},
            "2": {"x25519_seed": X2_SEED.hex(), "mlkem_seed": MLKEM_SEED.hex(), "public": HYBRID_PUBLIC.hex()}}
    request = envelope(1, request_body(kems=[[1, X1_PUBLIC], [2, HYBRID_PUBLIC]]), REQUESTER)
    request_x25519 = envelope(1, request_body(), REQUESTER)
    subscription = envelope(1, request_body(), SUBSCRIBER)
    forward = envelope(2, subscription, CONTROLLER)
    request_expect = {"root": "orders", "request_id": RID.hex(), "timestamp_ms": TS,
                      "key_ids": [KID1.hex(), KID2.hex()], "kem_types": [1]}

    def good(name: str, message: bytes, expect: dict[str, Any], **extra: Any) -> None:
        cases.append({"name": name, "message": message.hex(), **extra, "expect": expect})

    def bad(name: str, message: bytes, error: str, **extra: Any) -> None:
        cases.append({"name": name, "message": message.hex(), **extra, "error": error})

    good("good_request", request, {"kind": "request", **request_expect, "kem_types": [1, 2],
                                   "signer": public_of(REQUESTER).hex(), "requester": public_of(REQUESTER).hex()})
    good("good_request_any_key_unknown_kem_skipped",
         envelope(1, request_body(kids=[], kems=[[9, b"from the future"], [1, X1_PUBLIC]]), REQUESTER),
         {"kind": "request", **request_expect, "key_ids": [], "kem_types": [1], "signer": public_of(REQUESTER).hex(),
          "requester": public_of(REQUESTER).hex()})
    good("good_forward", forward, {"kind": "forward", **request_expect, "signer": public_of(CONTROLLER).hex(),
                                   "requester": public_of(SUBSCRIBER).hex()})
    keys_expect = [[kid.hex(), key.hex(), created] for kid, key, created in KEYS]
    answer_expect = {"kind": "answer", "root": "orders", "request_id": RID.hex(), "timestamp_ms": TS + 1000,
                     "requester": public_of(REQUESTER).hex(), "signer": public_of(PRODUCER).hex(),
                     "keys": keys_expect}
    answer1 = envelope(3, answer_body(1), PRODUCER)
    answer2 = envelope(3, answer_body(2), PRODUCER)
    good("good_answer_x25519", answer1, {**answer_expect, "kem": 1}, requester_kems={"1": kems["1"]},
         request=request_x25519.hex())
    good("good_answer_hybrid", answer2, {**answer_expect, "kem": 2}, requester_kems=kems, request=request.hex())

    # -- the envelope
    body = request_body()
    bad("bad_version_2", envelope(1, body, REQUESTER, version=2), "UnsupportedVersionError")
    bad("bad_version_2_short", pack([2]), "UnsupportedVersionError")
    bad("bad_kind_0", envelope(0, body, REQUESTER, context=CONTEXTS[1]), "UnsupportedVersionError")
    bad("bad_kind_4", envelope(4, body, REQUESTER, context=CONTEXTS[1]), "UnsupportedVersionError")
    bad("bad_envelope_4_items", envelope(1, body, REQUESTER, items=4), "FormatError")
    bad("bad_envelope_not_array", pack({"version": 1}), "FormatError")
    bad("bad_truncated", request[:-1], "FormatError")
    bad("bad_trailing_byte", request + b"\xc0", "FormatError")
    bad("bad_signature_63_bytes", envelope(1, body, REQUESTER, signature=sign(REQUESTER, CONTEXTS[1], body)[:63]),
        "FormatError")
    bad("bad_chain_not_a_chain", pack([1, 1, body, b"\x90", sign(REQUESTER, CONTEXTS[1], body)]), "FormatError")
    # -- signatures: every context but the kind's own, and a key other than the chain's
    bad("bad_request_signed_as_forward", envelope(1, body, REQUESTER, context=CONTEXTS[2]), "SignatureError")
    bad("bad_request_signed_as_answer", envelope(1, body, REQUESTER, context=CONTEXTS[3]), "SignatureError")
    bad("bad_request_signed_by_another_key", envelope(1, body, PRODUCER, chain_of=REQUESTER), "SignatureError")
    bad("bad_forward_signed_as_request", envelope(2, subscription, CONTROLLER, context=CONTEXTS[1]),
        "SignatureError")
    bad("bad_forward_inner_signed_as_forward",
        envelope(2, envelope(1, body, SUBSCRIBER, context=CONTEXTS[2]), CONTROLLER), "SignatureError")
    bad("bad_answer_signed_as_request", envelope(3, answer_body(1), PRODUCER, context=CONTEXTS[1]),
        "SignatureError", requester_kems={"1": kems["1"]})
    bad("bad_answer_signed_as_forward", envelope(3, answer_body(1), PRODUCER, context=CONTEXTS[2]),
        "SignatureError", requester_kems={"1": kems["1"]})
    # -- request bodies (validly signed)
    for name, changed in (
        ("bad_request_body_5_fields", request_body(items=5)),
        ("bad_request_root_empty", request_body(root="")),
        ("bad_request_root_250_chars", request_body(root="o" * 250)),
        ("bad_request_root_bin", request_body(root=b"orders")),
        ("bad_request_id_15_bytes", request_body(rid=RID[:15])),
        ("bad_request_timestamp_negative", request_body(ts=-1)),
        ("bad_request_key_id_7_bytes", request_body(kids=[KID1[:7]])),
        ("bad_request_65_key_ids", request_body(kids=[i.to_bytes(8, "big") for i in range(65)])),
        ("bad_request_no_kem", request_body(kems=[])),
        ("bad_request_only_unknown_kem", request_body(kems=[[9, X1_PUBLIC]])),
        ("bad_request_x25519_public_31_bytes", request_body(kems=[[1, X1_PUBLIC[:31]]])),
        ("bad_request_hybrid_public_1215_bytes", request_body(kems=[[2, HYBRID_PUBLIC[:-1]]])),
        ("bad_request_extra_not_map", request_body(extra=[])),
    ):
        bad(name, envelope(1, changed, REQUESTER), "FormatError")
    # -- forwards
    bad("bad_forward_of_forward", envelope(2, forward, CONTROLLER), "FormatError")
    bad("bad_forward_of_answer", envelope(2, answer1, CONTROLLER), "FormatError")
    bad("bad_forward_inner_truncated", envelope(2, subscription[:-1], CONTROLLER), "FormatError")
    # -- answer bodies (validly signed)
    one = {"requester_kems": {"1": kems["1"]}}
    for name, changed in (
        ("bad_answer_body_7_fields", pack(msgpack.unpackb(answer_body(1))[:7])),
        ("bad_answer_request_id_15_bytes", answer_body(1, rid=RID[:15])),
        ("bad_answer_requester_31_bytes", answer_body(1, requester=public_of(REQUESTER)[:31])),
        ("bad_answer_unknown_kem_type", answer_body(1, kem_field=3)),
        ("bad_answer_x25519_ciphertext_31_bytes", answer_body(1, ciphertext=bytes(31))),
        ("bad_answer_hybrid_ciphertext_1119_bytes", answer_body(2, ciphertext=bytes(1119))),
        ("bad_answer_nonce_23_bytes", answer_body(1, nonce=ANSWER_NONCE[:23])),
        ("bad_answer_sealed_keys_15_bytes", answer_body(1, sealed=bytes(15))),
        ("bad_answer_sealed_keys_too_long", answer_body(1, sealed=bytes(64 * 64 + 65))),
    ):
        bad(name, envelope(3, changed, PRODUCER), "FormatError", **one)
    # -- answers that parse and verify but do not open, or hold no keys
    tag = answer_body(1)
    fields = msgpack.unpackb(tag)
    fields[7] = flip(fields[7], len(fields[7]) - 1, 0x80)
    bad("bad_answer_tag_flipped", envelope(3, pack(fields), PRODUCER), "DecryptionError", **one)
    bad("bad_answer_other_requester", envelope(3, answer_body(1, sealed_for=public_of(SUBSCRIBER)), PRODUCER),
        "DecryptionError", **one)
    fields = msgpack.unpackb(answer2)
    body2 = msgpack.unpackb(fields[2])
    body2[5] = flip(body2[5], 100)  # inside the ML-KEM ciphertext: implicit rejection, another secret
    bad("bad_answer_mlkem_ciphertext_flipped", envelope(3, pack(body2), PRODUCER), "DecryptionError",
        requester_kems=kems)
    bad("bad_answer_kem_not_offered", answer2, "KeyExchangeError", requester_kems={"1": kems["1"]})
    bad("bad_answer_no_keys", envelope(3, answer_body(1, keys=[]), PRODUCER), "FormatError", **one)
    bad("bad_answer_key_31_bytes", envelope(3, answer_body(1, keys=[[KID1, bytes(31), NOW]]), PRODUCER),
        "FormatError", **one)
    # -- freshness and authority (the chains are valid; see chains.json for the chain rules)
    stale = (NOW - MAX_AGE - DEFAULT_SKEW - 1) * 1000
    bad("bad_request_stale", envelope(1, request_body(ts=stale), REQUESTER), "KeyExchangeError")
    bad("bad_request_from_the_future", envelope(1, request_body(ts=(NOW + DEFAULT_SKEW + 1) * 1000), REQUESTER),
        "KeyExchangeError")
    bad("bad_request_other_root", envelope(1, request_body(root="payments"), REQUESTER), "topic-not-allowed")
    bad("bad_request_without_consume", envelope(1, body, SUBSCRIBER), "usage-not-allowed")
    bad("bad_forward_without_controller", envelope(2, subscription, PRODUCER), "usage-not-allowed")
    bad("bad_forward_of_a_producer", envelope(2, envelope(1, body, PRODUCER), CONTROLLER), "usage-not-allowed")
    bad("bad_answer_without_produce", envelope(3, answer_body(1), CONTROLLER), "usage-not-allowed", **one)
    return render_file(
        "key-exchange messages: parse, verify (signature, freshness, chain and usage at now against roots, "
        "max_age, skew), and for answers open with the requester's KEM keys (docs/PROTOCOL.md, section 6)",
        cases, now=NOW, skew=DEFAULT_SKEW, max_age=MAX_AGE,
        roots=[self_signed_root(SigningIdentity(ROOT), not_before=NOW - DAY).encode().hex()],
        producer_seed=PRODUCER.hex(), producer_chain=CHAINS[PRODUCER].encode().hex())


FILES: dict[str, Callable[[], dict[str, Any]]] = {
    "identity.json": identity_vectors,
    "key_archive.json": archive_vectors,
    "kem.json": kem_vectors,
    "key_exchange.json": exchange_vectors,
}


def render(name: str) -> str:
    return json.dumps(FILES[name](), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(HERE, {name: functools.partial(render, name) for name in FILES}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
