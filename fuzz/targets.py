"""The fuzz targets: one function per parser or handler that takes outside bytes, plus their seeds.

Each target takes the raw bytes libFuzzer (via atheris) made up and feeds them to
kafkaratchet exactly as the broker, a file or a command line would. The rule is the
suite's (tests/unit/test_fuzz_*.py): a defined result or a KafkaRatchetError
subclass. Any other exception escapes the target, and atheris records the input
as a crash; a call slower than libFuzzer's ``-timeout`` is recorded as a hang.

This module has no dependency on atheris, so ``python fuzz/run.py --check`` can
replay a corpus (or a crash file) with plain Python.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Certificate, Chain, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity, decode_identity_file, derive_subkey, encode_identity_file
from kafkaratchet.protocol.kem import KemPrivateKey, KemType
from kafkaratchet.protocol.ratchet import decode_seed, encode_seed
from kafkaratchet.protocol.records import Role, key_id_of, open_sealed, seal
from kafkaratchet.protocol.trust import TrustStore, TrustUpdate, make_trust_update

__all__ = ["TARGETS", "seeds", "World"]

NOW = 1_700_000_000
_TOPICS = ["fz", "fz.a", "other", "fz.b.c"]


def _ident(n: int) -> SigningIdentity:
    return SigningIdentity(bytes([n]) * 32)


class World:
    """Fixed identities, chains, messages and files: the targets' trust anchors and the seed corpus."""

    def __init__(self) -> None:
        self.root = _ident(1)
        self.root_cert = self_signed_root(self.root, not_before=NOW - 3600)
        self.node, self.consumer, self.controller, self.subscriber, self.producer, self.admin = (
            _ident(n) for n in range(2, 8))
        usages = {"node": ["produce", "consume"], "consumer": ["consume"], "controller": ["controller", "consume"],
                  "subscriber": ["subscribe"], "producer": ["produce"], "admin": ["allowlist", "denylist"]}
        self.chains = {name: Chain.of(issue_certificate(self.root, getattr(self, name).public_key, usages=u,
                                                        topics=None if name == "admin" else ["fz", "^fz-[0-9]+"],
                                                        not_before=NOW - 3600))
                       for name, u in usages.items()}
        self.kems = [KemPrivateKey(KemType.X25519), KemPrivateKey(KemType.X25519_MLKEM768)]
        self.request = kx.make_request(self.consumer, self.chains["consumer"], "fz", [b"\x01" * 8], self.kems,
                                       now=NOW)
        sub = kx.make_request(self.subscriber, self.chains["subscriber"], "fz", [], self.kems[:1], now=NOW)
        self.forward = kx.forward_request(self.controller, self.chains["controller"], sub)
        self.answer = kx.make_answer(self.producer, self.chains["producer"], self.request,
                                     [kx.WrappedKey(b"\x01" * 8, b"\x02" * 32, NOW)], now=NOW)
        self.updates = [
            make_trust_update("allow", self.admin, self.chains["admin"], _ident(50).public_key,
                              usages=["consume"], topics=["fz"], issued_at=NOW - 100),
            make_trust_update("deny", self.admin, self.chains["admin"], _ident(51).public_key, issued_at=NOW - 100),
            make_trust_update("deny", self.admin, self.chains["admin"], _ident(53).public_key, topics=["fz"],
                              issued_at=NOW - 100),
            make_trust_update("deny", self.consumer, self.chains["consumer"], self.consumer.public_key,
                              issued_at=NOW - 100),
            make_trust_update("allow", self.root, None, self.root.public_key, topics=["fz"], usages=["consume"],
                              not_before=NOW - 3600, issued_at=NOW - 100),
        ]
        self.data_key = b"\x02" * 32
        # one sealed record per (topic, role), in the order target_records decodes its first byte
        self.records = [seal(b"\x01" * 8, self.data_key, _TOPICS[i % len(_TOPICS)],
                             Role.KEY if i & 0x80 else Role.VALUE, b"payload")
                        for i in (0, 1, 2, 3, 0x80, 0x81, 0x82, 0x83)]

    def trust(self) -> TrustStore:
        return TrustStore([self.root_cert])


_WORLD: World | None = None


def world() -> World:
    global _WORLD
    if _WORLD is None:
        _WORLD = World()
    return _WORLD


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except KafkaRatchetError:
        return None


# --------------------------------------------------------------------------- targets

def target_records(data: bytes) -> None:
    """A record as a deserializer meets it: first byte picks topic and role, the rest is the record."""
    if not data:
        return
    topic = _TOPICS[data[0] % len(_TOPICS)]
    role = Role.KEY if data[0] & 0x80 else Role.VALUE
    record = data[1:]
    _guard(lambda: key_id_of(record))
    opened = _guard(lambda: open_sealed(world().data_key, topic, role, record))
    if opened is not None:
        # only what the key's holder sealed, for this topic and role, ever opens (seeds are sealed with
        # random nonces, in whichever process wrote the corpus, so the plaintext is what is checked)
        assert opened == b"payload", "a forged record opened"


def target_certs(data: bytes) -> None:
    """Certificate and chain decoding, signature checks, validation against the world's root."""
    cert = _guard(lambda: Certificate.decode(data))
    if cert is not None:
        _guard(cert.verify_signature)
        repr(cert)
    chain = _guard(lambda: Chain.decode(data))
    if chain is not None:
        checked = _guard(lambda: world().trust().validate(chain, now=NOW))
        if checked is not None:
            for usage in ("produce", "consume", "subscribe"):
                checked.allows(usage, "fz-12")
            _guard(chain.encode)


def target_keyexchange(data: bytes) -> None:
    """Key requests, forwarded requests and answers: parse, verify, open."""
    message = _guard(lambda: kx.parse(data))
    if message is None:
        return
    kx.describe(message)
    trust = world().trust()
    if isinstance(message, kx.KeyAnswer):
        _guard(lambda: kx.verify_answer(message, trust, now=NOW))
        _guard(lambda: kx.open_answer(message, {k.kem: k for k in world().kems}))
    else:
        _guard(lambda: kx.verify_request(message, trust, max_age=120, now=NOW))


def target_trust(data: bytes) -> None:
    """Trust updates v2: decode and apply to a fresh store; an invalid one changes nothing."""
    update = _guard(lambda: TrustUpdate.decode(data))
    if update is None:
        return
    store = world().trust()
    before = store.state
    try:
        store.apply(update, now=NOW)
    except KafkaRatchetError:
        assert store.state == before, "an invalid update changed the store"


class _StubProducer:
    def send(self, *_: Any, **__: Any) -> None:
        return None

    def partitions_for(self, topic: str) -> None:
        return None


class _StubConsumer:
    def partitions_for_topic(self, topic: str) -> None:
        return None

    def poll(self, timeout_ms: int = 0) -> dict[Any, Any]:
        time.sleep(timeout_ms / 1000)
        return {}


_NODE: Any = None
_MANAGEMENT_TOPICS = ["fz.reqs", "fz.keys", "allowlist", "denylist", "chains", "fz.subs", "fz"]


def _node() -> Any:
    """A real KafkaCrypto on stub clients, its exchange loop never started: the fuzzer calls the loop's handler."""
    global _NODE
    if _NODE is None:
        from kafkaratchet.files.provisioning import write_node
        from kafkaratchet.node import KafkaCrypto
        from kafkaratchet.protocol.records import Role as _Role

        directory = Path(tempfile.mkdtemp(prefix="kr-fuzz-node-"))
        import atexit

        atexit.register(shutil.rmtree, directory, True)
        w = world()
        write_node(directory, "fz", w.node, chains=[w.chains["node"]], roots=[w.root_cert])
        node = KafkaCrypto.unstarted(None, _StubProducer(), _StubConsumer(), config=str(directory / "fz.config"))
        node.close()
        node.sealers.seal("fz", _Role.VALUE, b"x")
        node.exchange.state.produce_roots.add("fz")
        _NODE = node
    return _NODE


def target_management(data: bytes) -> None:
    """The management thread's handler (``ExchangeLoop.dispatch``) on any topic: it must never raise."""
    if not data:
        return
    node = _node()
    node.exchange.state.seen.clear()
    node.exchange.dispatch(_MANAGEMENT_TOPICS[data[0] % len(_MANAGEMENT_TOPICS)], data[1:])


_SCRATCH = Path(tempfile.mkdtemp(prefix="kr-fuzz-store-"))


def target_store(data: bytes) -> None:
    """The loaders: first byte picks config file, seed file, identity file or key archive."""
    if not data:
        return
    kind, body = data[0] % 4, data[1:]
    if kind == 0:
        path = _SCRATCH / "fuzz.config"
        path.write_bytes(body)
        store = _guard(lambda: KafkaCryptoStore(path))
        if store is None:
            return
        for section in ("DEFAULT", "kafka", "crypto", "chains", "allowlist", "denylist"):
            store.load_section(section)
        for use in ("producer", "consumer"):
            _guard(lambda use=use: store.get_kafka_config(use, extra="crypto"))
        settings = _guard(lambda: NodeSettings.from_section(store.load_section("crypto")))
        if settings is not None:
            settings.root("fz.a")
        for option, suffix in (("cryptokey", ".crypto"), ("ratchet", ".seed")):
            store.secret_path(option, suffix)
        for section in ("chains", "allowlist", "denylist"):
            for name in store.load_section(section):
                blob = _guard(lambda name=name, section=section: store.load_bytes(name, section))
                if blob is not None:
                    decode = Chain.decode if section == "chains" else Certificate.decode
                    _guard(lambda blob=blob, decode=decode: decode(blob))
    elif kind == 1:
        _guard(lambda: decode_seed(body))
    elif kind == 2:
        _guard(lambda: decode_identity_file(body))
    else:
        path = _SCRATCH / "fuzz.keys"
        path.write_bytes(body)
        os.chmod(path, 0o600)
        _guard(lambda: KeyRing(path, derive_subkey(world().node, b"kr-key-archive")))


def target_provision(data: bytes) -> None:
    """The provisioning tool's file formats and flag values (skipped if provision/ is absent)."""
    try:
        from provision import formats, inputs, rootkey
    except ImportError:
        return
    if not data:
        return
    kind, body = data[0] % 4, data[1:]
    if kind == 0:
        _guard(lambda: formats.NodeRequest.decode(body))
    elif kind == 1:
        _guard(lambda: formats.ChainFile.decode(body))
    elif kind == 2:
        _guard(lambda: rootkey.peek_root_key(body))
    else:
        text = body.decode("utf-8", "replace")
        for name in ("parse_node_id", "parse_role", "parse_pathlen", "parse_lifetime", "parse_bootstrap",
                     "parse_fingerprint"):
            _guard(lambda name=name: getattr(inputs, name)(text))
        _guard(lambda: inputs.parse_topics([text]))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "records": target_records,
    "certs": target_certs,
    "keyexchange": target_keyexchange,
    "trust": target_trust,
    "management": target_management,
    "store": target_store,
    "provision": target_provision,
}


def seeds(target: str) -> list[bytes]:
    """Valid inputs for ``target``: the starting corpus (libFuzzer mutates from here)."""
    w = world()
    messages = [w.request.raw, w.forward.raw, w.answer.raw]
    if target == "records":
        return [bytes([i]) + r for i, r in zip((0, 1, 2, 3, 0x80, 0x81, 0x82, 0x83), w.records, strict=True)]
    if target == "certs":
        return [c.encode() for chain in w.chains.values() for c in chain.certificates] + \
               [chain.encode() for chain in w.chains.values()]
    if target == "keyexchange":
        return messages
    if target == "trust":
        return [u.encode() for u in w.updates]
    if target == "management":
        return [bytes([0]) + m for m in messages[:2]] + [bytes([1]) + w.answer.raw] + \
               [bytes([2]) + w.updates[0].encode(), bytes([3]) + w.updates[1].encode(),
                bytes([4]) + w.chains["node"].encode()]
    if target == "store":
        directory = Path(tempfile.mkdtemp(prefix="kr-fuzz-seed-"))
        try:
            from kafkaratchet.files.provisioning import write_node

            write_node(directory, "fz", w.node, chains=[w.chains["node"]], roots=[w.root_cert],
                       denied=[b"\x09" * 32], bootstrap_servers="127.0.0.1:9092",
                       crypto={"clock_skew": 60, "kems": "x25519"})
            config = (directory / "fz.config").read_bytes()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        archive_key = derive_subkey(w.node, b"kr-key-archive")
        import nacl.bindings as sodium

        plain = wire.pack([["fz", b"\x01" * 8, b"\x02" * 32, NOW]])
        archive = b"KRKA\x01" + b"\x00" * 24 + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plain, b"KRKA\x01", b"\x00" * 24, archive_key)
        return [b"\x00" + config, b"\x01" + encode_seed(3, b"\x42" * 32), b"\x02" + encode_identity_file(w.node),
                b"\x03" + archive]
    if target == "provision":
        try:
            from provision import formats
        except ImportError:
            return [b"\x00"]
        request = formats.NodeRequest("n1", "consumer", w.consumer.public_key, ("fz",), 0, 3600, NOW)
        return [b"\x00" + request.encode(w.consumer),
                b"\x01" + formats.ChainFile("n1", w.chains["consumer"], w.root_cert).encode(),
                b"\x03n1", b"\x03abcd-efgh-ijkl-mnop", b"\x03127.0.0.1:9092"]
    raise KeyError(target)
