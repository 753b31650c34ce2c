"""Key requests and answers as they travel on ``R.reqs``, ``R.subs`` and ``R.keys``: pure, no I/O.

Every message is one envelope, ``[1, kind, body, chain, signature]``, signed by
the leaf key of ``chain`` over ``body`` with a context per kind, so a request's
signature is never valid for an answer. See docs/PROTOCOL.md, "Key exchange".
"""

from __future__ import annotations

import enum
import hmac
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import nacl.bindings as sodium
import nacl.exceptions

from kafkaratchet.errors import DecryptionError, FormatError, KeyExchangeError, UnsupportedVersionError
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Chain, Usage
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint, verify
from kafkaratchet.protocol.kem import KemPrivateKey, KemType, ciphertext_size, encapsulate, public_key_size
from kafkaratchet.protocol.records import KEY_ID_SIZE, KEY_SIZE
from kafkaratchet.protocol.validation import ValidatedChain

if TYPE_CHECKING:
    from kafkaratchet.protocol.trust import TrustStore

__all__ = [
    "Kind", "KeyRequest", "ForwardedRequest", "KeyAnswer", "WrappedKey", "make_request", "forward_request",
    "make_answer", "open_answer", "parse", "verify_request", "verify_answer", "REQUEST_ID_SIZE", "MAX_KEY_IDS",
    "describe", "verify_subscription",
]

VERSION = 1
REQUEST_ID_SIZE = 16
MAX_KEY_IDS = 64
MAX_ROOT = 249
_CONTEXTS = {1: b"kr-request-v1", 2: b"kr-forward-v1", 3: b"kr-answer-v1"}
_KEYS_AAD = b"kr-keys-v1"
_NONCE_SIZE = 24
_TAG_SIZE = 16


class Kind(enum.IntEnum):
    REQUEST = 1
    FORWARD = 2
    ANSWER = 3


@dataclass(frozen=True)
class WrappedKey:
    """A data key as it travels inside an answer. Its repr hides the key."""

    key_id: bytes
    key: bytes = field(repr=False)
    created: int


@dataclass(frozen=True)
class _Signed:
    body: bytes
    chain: Chain
    signature: bytes
    raw: bytes

    @property
    def signer(self) -> bytes:
        return self.chain.subject

    def check_signature(self, kind: Kind) -> None:
        verify(self.signer, _CONTEXTS[kind], self.body, self.signature)


@dataclass(frozen=True)
class KeyRequest(_Signed):
    root: str
    request_id: bytes
    timestamp_ms: int
    key_ids: tuple[bytes, ...]
    kem_publics: Mapping[KemType, bytes]


@dataclass(frozen=True)
class ForwardedRequest(_Signed):
    """A subscriber's request, re-signed by a controller that judged it."""

    inner: KeyRequest

    @property
    def root(self) -> str:
        return self.inner.root

    @property
    def request_id(self) -> bytes:
        return self.inner.request_id


@dataclass(frozen=True)
class KeyAnswer(_Signed):
    root: str
    request_id: bytes
    timestamp_ms: int
    requester: bytes
    kem: KemType
    kem_ciphertext: bytes
    nonce: bytes
    sealed_keys: bytes


def _envelope(kind: Kind, body: bytes, identity: SigningIdentity, chain: Chain) -> bytes:
    if not hmac.compare_digest(identity.public_key, chain.subject):
        raise KeyExchangeError("the chain is not for this identity")
    signature = identity.sign(_CONTEXTS[kind], body)
    return wire.pack([VERSION, int(kind), body, chain.encode(), signature])


def _root(value: object, what: str) -> str:
    root = wire.expect(value, str, what)
    if not 1 <= len(root) <= MAX_ROOT:
        raise FormatError(f"{what}: length {len(root)} outside 1..{MAX_ROOT}")
    return root


def _parse_request_body(body: bytes, chain: Chain, signature: bytes, raw: bytes) -> KeyRequest:
    fields = wire.expect_list(wire.unpack(body), "request body", size=6)
    root = _root(fields[0], "request root")
    request_id = wire.expect_bytes(fields[1], "request id", size=REQUEST_ID_SIZE)
    timestamp = wire.expect_int(fields[2], "request timestamp", lo=0, hi=1 << 62)
    kids = wire.expect_list(fields[3], "request key ids")
    if len(kids) > MAX_KEY_IDS:
        raise FormatError(f"request asks for {len(kids)} key ids, more than {MAX_KEY_IDS}")
    key_ids = tuple(wire.expect_bytes(k, "request key id", size=KEY_ID_SIZE) for k in kids)
    publics: dict[KemType, bytes] = {}
    for pair in wire.expect_list(fields[4], "request KEM keys", min_size=1):
        kem_type, public = wire.expect_list(pair, "request KEM key", size=2)
        try:
            kem = KemType(wire.expect_int(kem_type, "KEM type"))
        except ValueError:
            continue  # a KEM from the future: ignore it, use the ones we know
        publics[kem] = wire.expect_bytes(public, "KEM public key", size=public_key_size(kem))
    if not publics:
        raise FormatError("request offers no KEM this node supports")
    wire.expect(fields[5], dict, "request extra")
    return KeyRequest(body=body, chain=chain, signature=signature, raw=raw, root=root, request_id=request_id,
                      timestamp_ms=timestamp, key_ids=key_ids, kem_publics=publics)


def _parse_answer_body(body: bytes, chain: Chain, signature: bytes, raw: bytes) -> KeyAnswer:
    fields = wire.expect_list(wire.unpack(body), "answer body", size=8)
    try:
        kem = KemType(wire.expect_int(fields[4], "answer KEM type"))
    except ValueError:
        raise FormatError("answer uses an unknown KEM type") from None
    return KeyAnswer(
        body=body, chain=chain, signature=signature, raw=raw,
        root=_root(fields[0], "answer root"),
        request_id=wire.expect_bytes(fields[1], "answer request id", size=REQUEST_ID_SIZE),
        timestamp_ms=wire.expect_int(fields[2], "answer timestamp", lo=0, hi=1 << 62),
        requester=wire.expect_bytes(fields[3], "answer requester", size=32),
        kem=kem,
        kem_ciphertext=wire.expect_bytes(fields[5], "answer KEM ciphertext", size=ciphertext_size(kem)),
        nonce=wire.expect_bytes(fields[6], "answer nonce", size=_NONCE_SIZE),
        sealed_keys=_sealed_keys(fields[7]),
    )


def _sealed_keys(value: object) -> bytes:
    sealed = wire.expect_bytes(value, "answer sealed keys", max_size=MAX_KEY_IDS * 64 + 64)
    if len(sealed) < _TAG_SIZE:
        # shorter than a Poly1305 tag: libsodium would raise a bare ValueError on it
        raise FormatError(f"answer sealed keys: {len(sealed)} bytes is shorter than a {_TAG_SIZE}-byte tag")
    return sealed


def parse(data: bytes) -> KeyRequest | ForwardedRequest | KeyAnswer:
    """Decode any key-exchange message (signatures and chains are not checked here).

    Outside bytes: anything malformed is a FormatError (UnsupportedVersionError for an unknown
    version or kind), never another exception, and the work done is linear in ``len(data)``.
    """
    return _parse(data, forwarded=True)


def _parse(data: bytes, *, forwarded: bool) -> KeyRequest | ForwardedRequest | KeyAnswer:
    outer = wire.expect_list(wire.unpack(data), "key-exchange message", min_size=1)
    version = wire.expect_int(outer[0], "key-exchange version")
    if version != VERSION:
        raise UnsupportedVersionError(f"key-exchange message version {version} is not supported")
    if len(outer) != 5:
        raise FormatError(f"key-exchange message: expected 5 items, got {len(outer)}")
    try:
        kind = Kind(wire.expect_int(outer[1], "key-exchange kind"))
    except ValueError:
        raise UnsupportedVersionError("unknown key-exchange message kind") from None
    body = wire.expect_bytes(outer[2], "key-exchange body")
    chain = Chain.decode(wire.expect_bytes(outer[3], "key-exchange chain"))
    signature = wire.expect_bytes(outer[4], "key-exchange signature", size=64)
    if kind is Kind.REQUEST:
        return _parse_request_body(body, chain, signature, bytes(data))
    if kind is Kind.ANSWER:
        return _parse_answer_body(body, chain, signature, bytes(data))
    if not forwarded:
        # Only one level of forwarding exists. Refusing a forward inside a forward *before*
        # decoding it keeps parsing linear: a 1 MiB message of ~4,000 nested forwards used to
        # cost seconds of CPU and end in RecursionError (tests/unit/test_fuzz_keyexchange.py).
        raise FormatError("a forwarded request must wrap a plain request")
    inner = _parse(body, forwarded=False)
    if not isinstance(inner, KeyRequest):
        raise FormatError("a forwarded request must wrap a plain request")
    return ForwardedRequest(body=body, chain=chain, signature=signature, raw=bytes(data), inner=inner)


def make_request(identity: SigningIdentity, chain: Chain, root: str, key_ids: Iterable[bytes],
                 kems: Sequence[KemPrivateKey], *, now: float | None = None) -> KeyRequest:
    ids = tuple(dict.fromkeys(key_ids))[:MAX_KEY_IDS]
    request_id = os.urandom(REQUEST_ID_SIZE)
    timestamp = int((time.time() if now is None else now) * 1000)
    body = wire.pack([root, request_id, timestamp, list(ids), [[int(k.kem), k.public_bytes] for k in kems], {}])
    result = parse(_envelope(Kind.REQUEST, body, identity, chain))
    assert isinstance(result, KeyRequest)
    return result


def forward_request(identity: SigningIdentity, chain: Chain, request: KeyRequest) -> ForwardedRequest:
    result = parse(_envelope(Kind.FORWARD, request.raw, identity, chain))
    assert isinstance(result, ForwardedRequest)
    return result


def _keys_aad(request_id: bytes, root: str, requester: bytes) -> bytes:
    return _KEYS_AAD + request_id + requester + root.encode("utf-8")


def make_answer(identity: SigningIdentity, chain: Chain, request: KeyRequest | ForwardedRequest,
                keys: Iterable[WrappedKey], *, now: float | None = None) -> KeyAnswer:
    """Wrap ``keys`` to the requester's ephemeral key, using the strongest KEM both sides have.

    At most :data:`MAX_KEY_IDS` keys travel in one answer (the newest, when a request that names
    no key ids meets a producer holding more), so an answer always fits what :func:`parse` accepts.
    """
    inner = request.inner if isinstance(request, ForwardedRequest) else request
    chosen = list(keys)
    if len(chosen) > MAX_KEY_IDS:
        chosen = sorted(chosen, key=lambda k: k.created, reverse=True)[:MAX_KEY_IDS]
    kem = max(inner.kem_publics)
    ciphertext, shared = encapsulate(kem, inner.kem_publics[kem])
    nonce = os.urandom(_NONCE_SIZE)
    plaintext = wire.pack([[k.key_id, k.key, int(k.created)] for k in chosen])
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, _keys_aad(inner.request_id, inner.root, inner.signer), nonce, shared)
    timestamp = int((time.time() if now is None else now) * 1000)
    body = wire.pack([inner.root, inner.request_id, timestamp, inner.signer, int(kem), ciphertext, nonce, sealed])
    result = parse(_envelope(Kind.ANSWER, body, identity, chain))
    assert isinstance(result, KeyAnswer)
    return result


def open_answer(answer: KeyAnswer, kems: Mapping[KemType, KemPrivateKey]) -> list[WrappedKey]:
    """The keys inside an answer to one of our requests; DecryptionError if it is not for us."""
    private = kems.get(answer.kem)
    if private is None:
        raise KeyExchangeError("answer uses a KEM our request did not offer")
    shared = private.decapsulate(answer.kem_ciphertext)
    try:
        plaintext = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            answer.sealed_keys, _keys_aad(answer.request_id, answer.root, answer.requester), answer.nonce, shared)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise DecryptionError("answer's keys do not open under our ephemeral key") from None
    keys = []
    for item in wire.expect_list(wire.unpack(plaintext), "answer keys", min_size=1):
        kid, key, created = wire.expect_list(item, "answer key", size=3)
        keys.append(WrappedKey(wire.expect_bytes(kid, "key id", size=KEY_ID_SIZE),
                               wire.expect_bytes(key, "key", size=KEY_SIZE),
                               wire.expect_int(created, "key created", lo=0)))
    return keys


def _check_fresh(timestamp_ms: int, now: float, max_age: float, skew: float, what: str) -> None:
    age = now - timestamp_ms / 1000
    if age > max_age + skew:
        raise KeyExchangeError(f"{what} is {age:.0f} s old (stale or replayed)")
    if age < -skew:
        raise KeyExchangeError(f"{what} is dated {-age:.0f} s in the future (clock skew beyond tolerance)")


def verify_request(request: KeyRequest | ForwardedRequest, trust: TrustStore, *, max_age: float,
                   now: float | None = None) -> ValidatedChain:
    """The requester's validated chain, if a producer may answer this request; KafkaRatchetError if not.

    A direct request needs ``consume`` for its root; a forwarded one needs a controller chain with
    ``controller`` and an inner chain with ``subscribe`` or ``consume``. The message's own signature
    is checked first: no topic pattern of a genuine chain is ever matched against a root name that
    arrived in a message nobody signed.
    """
    now = time.time() if now is None else now
    if isinstance(request, ForwardedRequest):
        request.check_signature(Kind.FORWARD)
        controller = trust.validate(request.chain, now=now)
        controller.require(Usage.CONTROLLER, request.root)
        return verify_subscription(request.inner, trust, max_age=max_age, now=now)
    request.check_signature(Kind.REQUEST)
    _check_fresh(request.timestamp_ms, now, max_age, trust.skew, "request")
    requester = trust.validate(request.chain, now=now)
    requester.require(Usage.CONSUME, request.root)
    return requester


def verify_subscription(request: KeyRequest, trust: TrustStore, *, max_age: float,
                        now: float | None = None) -> ValidatedChain:
    """The requester's validated chain, if a controller may vouch for this request: ``subscribe`` or
    ``consume`` for its root, a good signature, fresh. KafkaRatchetError if not."""
    now = time.time() if now is None else now
    request.check_signature(Kind.REQUEST)
    _check_fresh(request.timestamp_ms, now, max_age, trust.skew, "request")
    requester = trust.validate(request.chain, now=now)
    if not requester.allows(Usage.CONSUME, request.root):
        requester.require(Usage.SUBSCRIBE, request.root)
    return requester


def verify_answer(answer: KeyAnswer, trust: TrustStore, *, now: float | None = None) -> ValidatedChain:
    now = time.time() if now is None else now
    answer.check_signature(Kind.ANSWER)
    producer = trust.validate(answer.chain, now=now)
    producer.require(Usage.PRODUCE, answer.root)
    return producer


def describe(message: KeyRequest | ForwardedRequest | KeyAnswer) -> str:
    """A one-line, secret-free description for logs."""
    kind = type(message).__name__
    return f"{kind}(root={message.root!r}, from={fingerprint(message.signer)}, id={message.request_id.hex()[:8]})"
