"""``kafkaratchet keyinfo``: chains with their expiry warnings, trust lists, producer keys; never a secret."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.provisioning import issue_node_chain, write_node
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity, derive_subkey
from kafkaratchet.protocol.ratchet import DataKey, decode_seed
from kafkaratchet.tools import cli as kr_cli
from kafkaratchet.tools import keyinfo


def _node(directory: Path, *, expired: bool, crypto: dict[str, object] | None = None
          ) -> tuple[Path, list[bytes], list[DataKey]]:
    """A node with one chain (expired or expiring in an hour), one root, one denied key, two archived keys."""
    now = int(time.time())
    root = SigningIdentity.generate()
    identity = SigningIdentity.generate()
    if expired:
        cert = issue_certificate(root, identity.public_key, usages=[Usage.PRODUCE], topics=["orders"],
                                 not_before=now - 7200, expiry=now - 3600)
        chain = Chain.of(cert)
    else:
        chain = issue_node_chain(root, None, identity.public_key, "prodcon", topics=["orders"], lifetime=3600)
    denied = SigningIdentity.generate().public_key
    store = write_node(directory, "n1", identity, chains=[chain], roots=[self_signed_root(root)], denied=[denied],
                       crypto=crypto)
    keys = [DataKey(key_id=bytes([i]) * 8, key=bytes([0xA0 + i]) * 32, root="orders", created=now - 600 * i)
            for i in (1, 2)]
    ring = KeyRing(directory / "n1.keys", derive_subkey(identity, b"kr-key-archive"))
    for key in keys:
        ring.add_own(key)
    ring.persist()
    _, ratchet_secret = decode_seed((directory / "n1.seed").read_bytes())
    secrets = [identity.seed_bytes(), ratchet_secret, derive_subkey(identity, b"kr-key-archive"),
               *(k.key for k in keys)]
    return store.path, secrets, keys


def _assert_no_secret(text: str, secrets: list[bytes]) -> None:
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), base64.b32encode(secret).decode().lower(),
                     secret.decode("latin-1")):
            assert form not in text


def test_expired_chain_is_flagged_and_nothing_secret_printed(tmp_path: Path) -> None:
    config, secrets, keys = _node(tmp_path, expired=True)
    out = io.StringIO()
    assert keyinfo.main(config, as_json=False, warn_within=None, out=out) == 1
    text = out.getvalue()
    assert "WARNING: chain0 EXPIRED 1 h" in text
    assert "EXPIRED" in text.split("allowlist")[0]
    assert "denylist (1)" in text and "allowlist (1)" in text
    assert "usages   produce" in text and "topics   orders" in text
    for key in keys:
        assert key.key_id.hex() in text
    assert "age 10 min" in text and "age 20 min" in text
    _assert_no_secret(text, secrets)

    out = io.StringIO()
    assert keyinfo.main(config, as_json=True, warn_within=None, out=out) == 1
    report = json.loads(out.getvalue())
    [chain] = report["chains"]
    assert chain["status"] == "invalid" and chain["reason"].startswith("expired")
    assert chain["expires_in"] < 0 and chain["usages"] == ["produce"] and chain["pathlen"] == 0
    assert [k["key_id"] for k in report["producer_keys"]["orders"]] == [keys[1].key_id.hex(), keys[0].key_id.hex()]
    assert any("EXPIRED" in w for w in report["warnings"])
    _assert_no_secret(out.getvalue(), secrets)


def test_expiring_chain_uses_the_refresh_window(tmp_path: Path) -> None:
    config, secrets, _ = _node(tmp_path / "a", expired=False)
    out = io.StringIO()
    assert keyinfo.main(config, warn_within=None, out=out) == 1  # default window: one day > one hour left
    assert "WARNING: chain0 expires in" in out.getvalue()
    assert keyinfo.main(config, warn_within=60, out=io.StringIO()) == 0
    quiet, _, _ = _node(tmp_path / "b", expired=False, crypto={"chain_refresh_window": 600})
    out = io.StringIO()
    assert keyinfo.main(quiet, as_json=True, warn_within=None, out=out) == 0
    report = json.loads(out.getvalue())
    assert report["warn_within"] == 600 and report["warn_within_source"] == "[crypto] chain_refresh_window"
    assert report["chains"][0]["status"] == "valid" and report["warnings"] == []
    _assert_no_secret(out.getvalue(), secrets)


def test_keyinfo_through_the_kafkaratchet_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, secrets, _ = _node(tmp_path, expired=True)
    assert kr_cli.main(["keyinfo", str(config), "--warn-within", "10"]) == 1
    captured = capsys.readouterr()
    assert "EXPIRED" in captured.out
    _assert_no_secret(captured.out + captured.err, secrets)
    KafkaCryptoStore(config).store_value("chain_refresh_window", "soon", "crypto")
    assert kr_cli.main(["keyinfo", str(config)]) == 2
    assert "chain_refresh_window" in capsys.readouterr().err
    assert kr_cli.main(["keyinfo", str(tmp_path / "missing.config")]) == 2
