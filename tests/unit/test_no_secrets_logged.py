"""Exercise every core with logging at DEBUG, then look for any secret in the log, in reprs and in errors."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from kafkaratchet.errors import KafkaRatchetError
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.protocol import keyexchange as kx
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity, derive_subkey
from kafkaratchet.protocol.kem import KemPrivateKey, KemType, encapsulate
from kafkaratchet.protocol.ratchet import decode_seed
from kafkaratchet.protocol.records import Role, open_sealed, seal
from kafkaratchet.protocol.trust import TrustStore


def _forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode().rstrip("="),
            base64.urlsafe_b64encode(secret).decode().rstrip("="), repr(secret)[2:-1]]


def test_no_secret_reaches_logs_reprs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[bytes] = []
    texts: list[str] = []

    root, node, producer = (SigningIdentity.generate() for _ in range(3))
    secrets += [i.seed_bytes() for i in (root, node, producer)]
    trust = TrustStore([self_signed_root(root)])
    consumer_chain = Chain.of(issue_certificate(root, node.public_key, usages=[Usage.CONSUME]))
    producer_chain = Chain.of(issue_certificate(root, producer.public_key, usages=[Usage.PRODUCE]))
    texts += [repr(x) for x in (root, node, trust, consumer_chain, trust.validate(consumer_chain))]

    ratchet = Ratchet.create(tmp_path / "n.seed")
    secrets.append(decode_seed(ratchet.path.read_bytes())[1])
    key = ratchet.key_for("orders")
    ratchet.step()
    secrets += [key.key, decode_seed(ratchet.path.read_bytes())[1], ratchet.key_for("orders").key]
    texts += [repr(ratchet), repr(key), str(key)]

    for kem in KemType:
        private = KemPrivateKey(kem)
        _, shared = encapsulate(kem, private.public_bytes)
        secrets.append(shared)
        texts.append(repr(private))

    record = seal(key.key_id, key.key, "orders.x", Role.VALUE, b"payload")
    for wrong in ("orders.y", "other"):
        try:
            open_sealed(key.key, wrong, Role.VALUE, record)
        except KafkaRatchetError as exc:
            texts.append(str(exc))

    kems = [KemPrivateKey(k) for k in KemType]
    request = kx.make_request(node, consumer_chain, "orders", [key.key_id], kems)
    kx.verify_request(request, trust, max_age=60)
    answer = kx.make_answer(producer, producer_chain, request, [kx.WrappedKey(key.key_id, key.key, 0)])
    kx.verify_answer(answer, trust)
    opened = kx.open_answer(answer, {k.kem: k for k in kems})
    texts += [repr(request), repr(answer), repr(opened), kx.describe(request), kx.describe(answer)]
    try:
        kx.open_answer(answer, {k.kem: KemPrivateKey(k.kem) for k in kems})
    except KafkaRatchetError as exc:
        texts.append(str(exc))

    archive_key = derive_subkey(node, b"kr-key-archive")
    secrets.append(archive_key)
    ring = KeyRing(tmp_path / "n.keys", archive_key)
    ring.add_own(key)
    ring.persist()
    ring.expire(0, now=1e12)
    texts.append(repr(ring))

    haystack = "\n".join(texts + [caplog.text] + [r.getMessage() for r in caplog.records])
    assert caplog.records, "the cores logged nothing at DEBUG: this test would prove nothing"
    for secret in secrets:
        for form in _forms(secret):
            assert form not in haystack


def test_secret_files_hold_the_only_copies(tmp_path: Path) -> None:
    ratchet = Ratchet.create(tmp_path / "n.seed")
    secret = decode_seed(ratchet.path.read_bytes())[1]
    for path in tmp_path.iterdir():
        assert (path.stat().st_mode & 0o077) == 0
    assert secret not in os.fsencode(repr(ratchet))
