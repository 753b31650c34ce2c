"""The provisioning tool without a broker: derivation, file formats, inputs, and every refused input."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import nacl.pwhash
import pytest

from kafkaratchet.errors import FormatError, KafkaRatchetError, ProvisioningError
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate
from kafkaratchet.protocol.identity import SigningIdentity, decode_identity_file, fingerprint
from kafkaratchet.protocol.ratchet import decode_seed
from kafkaratchet.protocol.trust import TrustStore
from provision import cli, formats, inputs, rootkey
from provision import password as pw
from tests.unit._provisionkit import (
    OTHER_PW,
    PROV_PW,
    ROOT_PW,
    argon2_once_per_password,  # noqa: F401 - autouse fixture
    assert_refused,
    no_password_env,  # noqa: F401 - autouse fixture
    run,
    secret_file,
    snapshot,
)

FAST = {"opslimit": nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, "memlimit": nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE}


# ------------------------------------------------------------------------------------ derivation


def test_fixed_salts_and_limits_are_the_documented_ones() -> None:
    assert pw.CURRENT_KDF is pw.KDF_V2
    assert pw.ROOT_SALT == hashlib.blake2b(b"kafkaratchet root of trust v2").digest()[:16]
    assert pw.PROVISIONER_SALT == hashlib.blake2b(b"kafkaratchet provisioner v2").digest()[:16]
    assert pw.ROOT_SALT != pw.PROVISIONER_SALT
    assert pw.KDF_V2.opslimit >= nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
    assert pw.KDF_V2.memlimit >= nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    assert pw.QUICKSTART_MIN_PASSWORD_LENGTH == pw.KDF_V2.min_length >= 16
    # root.key files (random salt per file, kept offline) are sealed at the "moderate" limits
    assert pw.OPSLIMIT >= nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    assert pw.MEMLIMIT >= nacl.pwhash.argon2id.MEMLIMIT_MODERATE


def test_derivation_vector_pins_salt_limits_and_normalisation() -> None:
    """Any change here silently splits every deployment's trust: the vector must never move.

    (tests/vectors/password_kdf.json pins both versions; this is the documented v2 example.)
    """
    root = pw.root_identity("correct horse battery staple")
    assert root.public_key.hex() == "437fc093eec872578bdcc9dfbec8998e72f2c160ffefe4cafe466a2d042a975f"
    assert root.fingerprint == "mxua-xvkc-x7lx-zey7"
    provisioner = pw.provisioner_identity("provisioning password 42")
    assert provisioner.public_key.hex() == "2b4915e51ba3054735ad08121f016124c2db79e2c2847963e1d6def6bed9d494"


def test_same_password_same_root_certificate_bytes() -> None:
    one, two = pw.root_identity(ROOT_PW), pw.root_identity(ROOT_PW)
    assert one.public_key == two.public_key
    assert pw.root_certificate(one).encode() == pw.root_certificate(two).encode()
    assert pw.root_certificate(one).usages == Usage.ALL


def test_password_rules() -> None:
    with pytest.raises(ProvisioningError, match="at least 12 characters"):
        pw.password_bytes("short", "root password")
    with pytest.raises(ProvisioningError, match="root password is too short: it needs at least 16 characters"):
        pw.root_identity("fifteen chars!!")  # refused before any Argon2id run
    composed, decomposed = "caf\u00e9 au lait!!", "cafe\u0301 au lait!!"
    assert pw.password_bytes(composed, "x") == pw.password_bytes(decomposed, "x")


def test_provisioner_certificate_allows_what_roles_need_and_no_more() -> None:
    root = SigningIdentity.generate()
    cert = pw.provisioner_certificate(root, SigningIdentity.generate().public_key)
    assert cert.pathlen == 1 and cert.topics is None
    assert Usage.ALLOWLIST not in cert.usages and Usage.DENYLIST not in cert.usages
    assert {Usage.PRODUCE, Usage.CONSUME, Usage.SUBSCRIBE, Usage.CONTROLLER, Usage.CHAIN_ISSUE} <= cert.usages


# ------------------------------------------------------------------------------------- root.key


def test_root_key_round_trip_and_layout() -> None:
    identity = SigningIdentity.generate()
    data = rootkey.seal_root_key(identity, b"a good long password", created=1234, **FAST)
    assert len(data) == rootkey.ROOT_KEY_FILE_SIZE == 150
    assert data[:5] == b"KRRK\x01"
    assert identity.seed_bytes() not in data
    assert rootkey.peek_root_key(data) == (identity.public_key, 1234)
    opened = rootkey.open_root_key(data, b"a good long password")
    assert opened.identity.same_key(identity) and opened.created == 1234
    assert opened.certificate.not_before == 1234 and opened.certificate.self_signed


def test_root_key_wrong_password_and_every_flipped_byte_fail() -> None:
    data = rootkey.seal_root_key(SigningIdentity.generate(), b"a good long password", **FAST)
    with pytest.raises(ProvisioningError, match="wrong password"):
        rootkey.open_root_key(data, b"another long password")
    for offset in (0, 4, 5, 22, 38, 46, 78, 102, 149):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        with pytest.raises(KafkaRatchetError):
            rootkey.open_root_key(bytes(bad), b"a good long password")
    with pytest.raises(FormatError):
        rootkey.peek_root_key(data[:-1])


# ------------------------------------------------------------------------------- request / chain


def _request(identity: SigningIdentity, **changes: Any) -> formats.NodeRequest:
    fields: dict[str, Any] = {"node_id": "n1", "role": "producer", "public_key": identity.public_key,
                              "topics": ("orders",), "pathlen": 0, "lifetime": 3600, "created": 1_700_000_000}
    fields.update(changes)
    return formats.NodeRequest(**fields)


def test_request_round_trip_and_signature() -> None:
    identity = SigningIdentity.generate()
    request = _request(identity)
    data = request.encode(identity)
    assert formats.NodeRequest.decode(data) == request
    assert formats.NodeRequest.decode(_request(identity, topics=None).encode(identity)).topics is None
    with pytest.raises(ProvisioningError):
        request.encode(SigningIdentity.generate())


def test_request_parsing_is_strict() -> None:
    identity = SigningIdentity.generate()
    data = _request(identity).encode(identity)
    kind, version, body, signature = wire.unpack(data)
    bad_inputs = [
        b"", b"\xc1", os.urandom(64), wire.pack([]), wire.pack("kafkaratchet-request"),
        wire.pack(["something-else", 1, body, signature]),
        wire.pack([kind, 2, body, signature]),
        wire.pack([kind, version, body, signature, b""]),
        wire.pack([kind, version, body, signature[:-1] + bytes([signature[-1] ^ 1])]),
        wire.pack([kind, version, body[:-1] + bytes([body[-1] ^ 1]), signature]),
    ]
    bad_inputs += [data[:cut] for cut in range(0, len(data), 7)]
    for bad in bad_inputs:
        with pytest.raises(KafkaRatchetError):
            formats.NodeRequest.decode(bad)
    for field, value in (("role", "superuser"), ("node_id", "../x"), ("topics", ("a.b",)), ("pathlen", -1)):
        fields = [("n1", "producer", identity.public_key, ["orders"], 0, 3600, 1)][0]
        names = ["node_id", "role", "public_key", "topics", "pathlen", "lifetime", "created"]
        body_list = list(fields)
        body_list[names.index(field)] = list(value) if isinstance(value, tuple) else value
        forged_body = wire.pack(body_list)
        forged = wire.pack([kind, version, forged_body, identity.sign(formats.REQUEST_CONTEXT, forged_body)])
        with pytest.raises(KafkaRatchetError):
            formats.NodeRequest.decode(forged)


def test_chain_file_round_trip_and_kind_confusion() -> None:
    root = SigningIdentity.generate()
    node = SigningIdentity.generate()
    chain = Chain.of(issue_certificate(root, node.public_key, usages=[Usage.PRODUCE]))
    root_cert = pw.root_certificate(root)
    data = formats.ChainFile("n1", chain, root_cert).encode()
    parsed = formats.ChainFile.decode(data)
    assert parsed.chain == chain and parsed.root == root_cert and parsed.node_id == "n1"
    with pytest.raises(FormatError, match="this is a chain file, not a request file"):
        formats.NodeRequest.decode(data)
    with pytest.raises(FormatError, match="this is a request file, not a chain file"):
        formats.ChainFile.decode(_request(node).encode(node))
    not_self_signed = issue_certificate(root, node.public_key, usages=Usage.ALL, pathlen=None)
    with pytest.raises(FormatError, match="self-signed"):
        formats.ChainFile.decode(formats.ChainFile("n1", chain, not_self_signed).encode())
    for cut in range(0, len(data), 11):
        with pytest.raises(KafkaRatchetError):
            formats.ChainFile.decode(data[:cut])


# ---------------------------------------------------------------------------------------- inputs


def test_value_parsers() -> None:
    assert inputs.parse_topics(["orders  payments", "orders"]) == ("orders", "payments")
    assert inputs.parse_topics([""]) is None
    assert inputs.parse_topics(["^ord.*"]) == ("^ord.*",)
    for bad in (["orders.eu"], ["bad topic!"], ["^("]):
        with pytest.raises(ProvisioningError):
            inputs.parse_topics(bad)
    for bad in ("", "../etc", ".hidden", "a/b", "x" * 200, "n.config"):
        with pytest.raises(ProvisioningError):
            inputs.parse_node_id(bad)
    assert inputs.parse_bootstrap("a:9092, [::1]:9093") == "a:9092,[::1]:9093"
    for bad in ("nohost", "a:0", "a:99999", ""):
        with pytest.raises(ProvisioningError):
            inputs.parse_bootstrap(bad)
    assert inputs.parse_fingerprint("EVRH7VDOYWC5KLMF") == "evrh-7vdo-ywc5-klmf"
    with pytest.raises(ProvisioningError):
        inputs.parse_fingerprint("not-a-fp")
    with pytest.raises(ProvisioningError):
        inputs.parse_pathlen("7")
    assert inputs.parse_lifetime(" 60 ") == 60


def test_password_file(tmp_path: Path) -> None:
    assert inputs.read_password_file(secret_file(tmp_path / "p", "  spaces kept  "), "x") == "  spaces kept  "
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ProvisioningError, match="empty"):
        inputs.read_password_file(tmp_path / "empty", "root password")
    with pytest.raises(ProvisioningError, match="no such"):
        inputs.read_password_file(tmp_path / "missing", "root password")


def test_prompter_from_a_script_fails_at_the_first_bad_answer() -> None:
    prompter = inputs.Prompter(stdin=io.StringIO("bogus\nproducer\n"), stderr=io.StringIO(), env={})
    with pytest.raises(ProvisioningError, match="unknown role"):
        prompter.ask("Role", "--role", inputs.parse_role)
    prompter = inputs.Prompter(stdin=io.StringIO(""), stderr=io.StringIO(), env={})
    with pytest.raises(ProvisioningError, match="pass --node-id"):
        prompter.ask("Node id", "--node-id", inputs.parse_node_id)
    prompter = inputs.Prompter(stdin=io.StringIO("\n"), stderr=io.StringIO(), env={})
    assert prompter.ask("Lifetime", "--lifetime", inputs.parse_lifetime, default="60") == 60


def test_prompter_from_a_script_takes_the_documented_default_when_input_ends() -> None:
    """No terminal and no more input: a question with a default takes it; one without names its flag."""
    err = io.StringIO()
    prompter = inputs.Prompter(stdin=io.StringIO(""), stderr=err, env={})
    assert prompter.ask("Lifetime", "--lifetime", inputs.parse_lifetime, default="60") == 60
    assert err.getvalue() == "Lifetime [60]: 60 (default: standard input is not a terminal)\n"
    assert prompter.confirm("Allow every topic?", "--all-topics") is False  # the default is no
    with pytest.raises(ProvisioningError, match="standard input ended while asking for role; pass --role"):
        prompter.ask("Role", "--role", inputs.parse_role)
    # at a terminal the end of input (Ctrl-D) still ends the run: someone is there to type the answer
    with pytest.raises(ProvisioningError, match="pass --lifetime"):
        inputs.Prompter(stdin=_Keyboard(""), stderr=io.StringIO(), env={}).ask(
            "Lifetime", "--lifetime", inputs.parse_lifetime, default="60")


class _Keyboard(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_prompter_at_a_terminal_asks_again_up_to_three_times() -> None:
    err = io.StringIO()
    prompter = inputs.Prompter(stdin=_Keyboard("superuser\nproducer\n"), stderr=err, env={})
    assert prompter.ask("Role", "--role", inputs.parse_role) == "producer"
    assert "unknown role 'superuser'" in err.getvalue()
    typed = iter(["short", "long enough password", "long enough password"])
    prompter = inputs.Prompter(stdin=_Keyboard(), stderr=io.StringIO(), env={}, read_secret=lambda _: next(typed))
    assert prompter.password("root password", file=None, env_var=None, flag="--f", confirm=True,
                             check=lambda v: pw.password_bytes(v, "root password")) == "long enough password"
    prompter = inputs.Prompter(stdin=_Keyboard("x\ny\nz\n"), stderr=io.StringIO(), env={})
    with pytest.raises(ProvisioningError):
        prompter.ask("Role", "--role", inputs.parse_role)


def test_prompter_passwords_come_from_file_env_then_no_echo_reader(tmp_path: Path) -> None:
    asked: list[str] = []

    def reader(prompt: str) -> str:
        asked.append(prompt)
        return "typed password!"

    prompter = inputs.Prompter(stdin=io.StringIO(), stderr=io.StringIO(), env={"E": "env password!!"},
                               read_secret=reader)
    assert prompter.password("root password", file=secret_file(tmp_path / "f", "file password!"), env_var="E",
                             check=len, flag="--f") == "file password!"
    assert prompter.password("root password", file=None, env_var="E", check=len, flag="--f") == "env password!!"
    assert prompter.password("root password", file=None, env_var="OTHER", check=len, flag="--f",
                             confirm=True) == "typed password!"
    assert asked == ["Root password: ", "Repeat the root password: "]


# ----------------------------------------------------------------------------- quick start (CLI)


def _password_argv(directory: Path, *extra: str) -> list[str]:
    return ["password", "--dir", str(directory), "--node-id", "n1", "--role", "producer", "--topics", "orders",
            "--pathlen", "0", "--lifetime", "3600", *extra]


def test_quickstart_writes_a_node_that_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    code, out, err = run(_password_argv(tmp_path / "node", "--provisioning-password-file",
                                        str(secret_file(tmp_path / "prov", PROV_PW)),
                                        "--bootstrap-servers", "localhost:9092"))
    assert code == 0, err
    assert err == ""
    node = tmp_path / "node"
    assert stat.S_IMODE((node / "n1.crypto").stat().st_mode) == 0o600
    assert stat.S_IMODE((node / "n1.seed").stat().st_mode) == 0o600
    store = KafkaCryptoStore(node / "n1.config")
    assert store.load_value("bootstrap_servers", "kafka") == "localhost:9092"
    assert store.load_value("role", "crypto") == "producer"
    chain = Chain.decode(store.load_bytes("chain0", "chains") or b"")
    root_cert = pw.root_certificate(pw.root_identity(ROOT_PW))
    assert store.load_bytes(root_cert.subject.hex(), "allowlist") == root_cert.encode()
    checked = TrustStore([root_cert]).validate(chain)
    assert checked.usages == {Usage.PRODUCE} and checked.topics == ("orders",)
    assert len(chain.certificates) == 2
    assert chain.certificates[0].subject == pw.provisioner_identity(PROV_PW).public_key
    identity = decode_identity_file((node / "n1.crypto").read_bytes())
    assert chain.subject == identity.public_key
    assert identity.fingerprint in out and pw.root_identity(ROOT_PW).fingerprint in out
    assert "usages produce | topics orders" in out
    for secret in (ROOT_PW, PROV_PW):
        assert secret not in out + err


@pytest.mark.parametrize(("argv_change", "env", "fragment"), [
    ({"--role": "bogus"}, {}, "unknown role 'bogus'"),
    ({"--topics": "orders.eu"}, {}, "not a root topic"),
    ({"--node-id": "../x"}, {}, "invalid node id"),
    ({"--pathlen": "99"}, {}, "--pathlen"),
    ({"--lifetime": "soon"}, {}, "--lifetime"),
    ({}, {inputs.ROOT_PASSWORD_ENV: "too short"}, "root password is too short"),
    ({}, {inputs.PROVISIONING_PASSWORD_ENV: "tiny"}, "provisioning password is too short"),
    ({}, {inputs.ROOT_PASSWORD_ENV: "fifteen chars!!"}, "root password is too short: it needs at least 16"),
    ({}, {inputs.PROVISIONING_PASSWORD_ENV: "fifteen chars!!"}, "at least 16 characters (a deployment made before"),
    ({}, {inputs.PROVISIONING_PASSWORD_ENV: ROOT_PW}, "must differ from the root password"),
])
def test_quickstart_refuses_bad_input_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         argv_change: dict[str, str], env: dict[str, str],
                                                         fragment: str) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = _password_argv(tmp_path / "node")
    for flag, value in argv_change.items():
        argv[argv.index(flag) + 1] = value
    before = snapshot(tmp_path)
    assert_refused(run(argv), fragment)
    assert snapshot(tmp_path) == before


def test_quickstart_wrong_root_password_and_existing_node(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    node = tmp_path / "node"
    assert run(_password_argv(node))[0] == 0
    before = snapshot(tmp_path)
    assert_refused(run(_password_argv(node)), "already exists; pass --force")
    right = pw.root_identity(ROOT_PW).fingerprint
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, OTHER_PW)
    assert_refused(run(_password_argv(tmp_path / "other", "--root-fingerprint", right)), "wrong root password")
    assert_refused(run(_password_argv(node, "--force")), "does not trust yet; pass --new-root")
    assert_refused(run(_password_argv(node, "--root-password-file", str(tmp_path / "nope"))), "no such")
    assert snapshot(tmp_path) == before
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    code, _, err = run(_password_argv(node, "--force", "--root-fingerprint", right))
    assert code == 0, err
    assert snapshot(tmp_path) != before


def test_quickstart_script_without_topics_must_say_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    argv = ["password", "--dir", str(tmp_path / "n"), "--node-id", "n1", "--role", "consumer", "--pathlen", "0",
            "--lifetime", "60"]
    code, _, err = run(argv, stdin="\nno\n")
    assert code == 2 and err.splitlines()[-1].endswith("no topics given; pass --topics or --all-topics")
    assert not (tmp_path / "n").exists()
    code, _, err = run(argv, stdin="\ny\n")
    assert code == 0, err
    chain = Chain.decode(KafkaCryptoStore(tmp_path / "n" / "n1.config").load_bytes("chain0", "chains") or b"")
    assert chain.leaf.topics is None


def test_scripted_quickstart_without_pathlen_or_lifetime_takes_the_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: every required flag, passwords from the environment, no terminal, no --pathlen/--lifetime."""
    from kafkaratchet.tools import cli as kr_cli

    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    node = tmp_path / "x"
    code, out, err = run(["password", "--node-id", "n1", "--role", "consumer", "--topics", "orders",
                          "--bootstrap-servers", "127.0.0.1:9092", "--dir", str(node)], stdin="")
    assert code == 0, err
    assert "provisioned node n1" in out and "pass --pathlen" not in err
    assert sorted(p.name for p in node.iterdir()) == ["n1.config", "n1.crypto", "n1.seed"]
    leaf = Chain.decode(KafkaCryptoStore(node / "n1.config").load_bytes("chain0", "chains") or b"").leaf
    assert leaf.pathlen == 0 and leaf.expiry - leaf.not_before == pytest.approx(inputs.DEFAULT_LIFETIME, abs=120)
    capsys.readouterr()
    assert kr_cli.main(["keyinfo", str(node / "n1.config")]) == 0, capsys.readouterr().err
    # a question without a default still fails from a script, naming the flag
    code, out, err = run(["password", "--node-id", "n2", "--topics", "orders", "--dir", str(node)], stdin="")
    assert code == 2 and out == "" and [line for line in err.splitlines() if ": error: " in line] == [
        "kafkaratchet-provision: error: standard input ended while asking for role; pass --role"], err


def test_console_script_exit_status_and_no_echoing_fallback(tmp_path: Path) -> None:
    """As a real process with no controlling terminal: never read a password with echo; exit 2, one line."""
    script = Path(sys.executable).parent / "kafkaratchet-provision"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "provision"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKARATCHET_")}
    for extra, fragment in (([], "no terminal to read the root password from without echo; use "
                                 "--root-password-file or KAFKARATCHET_ROOT_PASSWORD"),
                            (["--role", "root"], "unknown role 'root'")):
        proc = subprocess.run([*command, "password", "--dir", str(tmp_path / "n"), "--node-id", "n1", *extra],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                              start_new_session=True, timeout=60)
        assert_refused((proc.returncode, proc.stdout, proc.stderr), fragment)
        assert proc.stdout == ""
    assert not (tmp_path / "n").exists()


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    assert_refused(run(["password", "--no-such-flag"]), "unrecognized arguments")
    assert_refused(run(["frobnicate"]), "invalid choice")
    assert_refused(run([]), "required")


# ---------------------------------------------------------------------------- offline flow (CLI)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A root key, two requested nodes with the same id in different places, and a signed chain for one."""
    base = tmp_path_factory.mktemp("pki")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
        assert run(["init-root", "--out", str(base / "root.key")])[0] == 0
        for place in ("a", "b"):
            code, _, err = run(["request", "--dir", str(base / place), "--node-id", "n1", "--role", "consumer",
                                "--topics", "orders", "payments", "--pathlen", "0", "--lifetime", "3600"])
            assert code == 0, err
        code, _, err = run(["sign", "--root", str(base / "root.key"), "--request", str(base / "a" / "n1.request"),
                            "--out", str(base / "a.chain")])
        assert code == 0, err
    return {"base": base, "root": base / "root.key", "a": base / "a", "b": base / "b", "chain": base / "a.chain"}


def test_init_root_file_and_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     pki: dict[str, Path]) -> None:
    assert stat.S_IMODE(pki["root"].stat().st_mode) == 0o600
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, "short")
    assert_refused(run(["init-root", "--out", str(tmp_path / "r.key")]), "too short")
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    before = snapshot(tmp_path, pki["base"])
    assert_refused(run(["init-root", "--out", str(pki["root"])]), "already exists")
    assert_refused(run(["init-root", "--out", str(tmp_path / "missing" / "r.key")]), "is not a directory")
    assert snapshot(tmp_path, pki["base"]) == before


def test_request_holds_no_secret_and_sign_shows_it(pki: dict[str, Path]) -> None:
    node = pki["a"]
    request_bytes = (node / "n1.request").read_bytes()
    identity = decode_identity_file((node / "n1.crypto").read_bytes())
    _, ratchet_secret = decode_seed((node / "n1.seed").read_bytes())
    for secret in (identity.seed_bytes(), ratchet_secret):
        for blob in (request_bytes, pki["chain"].read_bytes()):
            assert not any(secret[i:i + 8] in blob for i in range(len(secret) - 7))
            assert secret.hex().encode() not in blob and base64.b64encode(secret) not in blob
    request = formats.NodeRequest.decode(request_bytes)
    assert request.public_key == identity.public_key and request.topics == ("orders", "payments")
    assert KafkaCryptoStore(node / "n1.config").load_section("chains") == {}


def test_sign_refusals_write_nothing(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    request = pki["b"] / "n1.request"
    corrupt = tmp_path / "corrupt.request"
    corrupt.write_bytes(request.read_bytes()[:-3])
    tampered = tmp_path / "tampered.request"
    data = bytearray(request.read_bytes())
    data[40] ^= 0x01
    tampered.write_bytes(bytes(data))
    (tmp_path / "existing.chain").write_bytes(b"keep me")
    before = snapshot(pki["base"], tmp_path)
    base = ["sign", "--root", str(pki["root"]), "--out", str(tmp_path / "out.chain")]
    assert_refused(run([*base, "--request", str(corrupt)]), "corrupt or forged request file")
    assert_refused(run([*base, "--request", str(tampered)]), "corrupt or forged request file")
    assert_refused(run([*base, "--request", str(pki["chain"])]), "this is a chain file, not a request file")
    assert_refused(run([*base, "--request", str(tmp_path / "none.request")]), "no such request file")
    assert_refused(run([*base, "--request", str(request), "--topics", "secrets"]), "may only narrow")
    assert_refused(run([*base, "--request", str(request), "--role", "prodcon"]), "may only narrow")
    assert_refused(run([*base, "--request", str(request), "--root", str(request)]), "readable by others")
    assert_refused(run([*base, "--request", str(request), "--out", str(tmp_path / "existing.chain")]),
                   "already exists")
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, OTHER_PW)
    assert_refused(run([*base, "--request", str(request)]), "wrong password for the root key")
    assert snapshot(pki["base"], tmp_path) == before


def test_sign_narrows_and_install_refusals(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    narrowed = tmp_path / "b.chain"
    code, out, err = run(["sign", "--root", str(pki["root"]), "--request", str(pki["b"] / "n1.request"),
                          "--topics", "orders", "--lifetime", "600", "--out", str(narrowed)])
    assert code == 0, err
    assert "topics, lifetime changed" in out
    chain_file = formats.ChainFile.decode(narrowed.read_bytes())
    assert chain_file.chain.leaf.topics == ("orders",)
    root_fp = rootkey.open_root_key(pki["root"].read_bytes(), ROOT_PW.encode()).identity.fingerprint

    other_root = SigningIdentity.generate()
    forged = tmp_path / "forged.chain"
    forged.write_bytes(formats.ChainFile("n1", chain_file.chain, pw.root_certificate(other_root)).encode())
    other_fp = other_root.fingerprint
    corrupt = tmp_path / "corrupt.chain"
    corrupt.write_bytes(narrowed.read_bytes()[:-1])
    before = snapshot(pki["base"], tmp_path)
    install = ["install", "--dir", str(pki["b"])]
    assert_refused(run([*install, "--chain", str(corrupt), "--root-fingerprint", root_fp]), "corrupt chain file")
    assert_refused(run([*install, "--chain", str(pki["b"] / "n1.request")]), "this is a request file")
    assert_refused(run([*install, "--chain", str(pki["chain"]), "--root-fingerprint", root_fp]),
                   "is not for this node")
    assert_refused(run([*install, "--chain", str(narrowed)]), "does not reach a trusted root")
    assert_refused(run([*install, "--chain", str(narrowed), "--root-fingerprint", other_fp]),
                   "does not reach a trusted root")
    assert_refused(run([*install, "--chain", str(forged), "--root-fingerprint", other_fp]),
                   "does not reach a trusted root: unknown-root")
    assert_refused(run([*install, "--chain", str(narrowed), "--node-id", "n2", "--root-fingerprint", root_fp]),
                   "is for node n1, not n2")
    assert_refused(run(["install", "--dir", str(tmp_path), "--chain", str(narrowed)]), "run request there first")
    assert snapshot(pki["base"], tmp_path) == before

    code, out, err = run([*install, "--chain", str(narrowed), "--root-fingerprint", root_fp])
    assert code == 0, err
    store = KafkaCryptoStore(pki["b"] / "n1.config")
    assert Chain.decode(store.load_bytes("chain0", "chains") or b"") == chain_file.chain
    assert store.load_bytes(chain_file.root.subject.hex(), "allowlist") == chain_file.root.encode()
    assert root_fp in out and "usages consume | topics orders" in out
    # a renewal from the same root needs no fingerprint: the node already trusts it
    code, _, err = run([*install, "--chain", str(narrowed)])
    assert code == 0, err
    assert list(KafkaCryptoStore(pki["b"] / "n1.config").load_section("chains")) == ["chain0"]


def test_install_drops_unparsable_chains_and_refuses_a_broken_allowlist(
        pki: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    node = tmp_path / "a"
    shutil.copytree(pki["a"], node)
    root_fp = fingerprint(formats.ChainFile.decode(pki["chain"].read_bytes()).root.subject)
    install = ["install", "--dir", str(node), "--chain", str(pki["chain"]), "--root-fingerprint", root_fp]
    KafkaCryptoStore(node / "n1.config").store_value("chain5", b"not a chain", "chains")
    code, _, err = run(install)
    assert code == 0, err
    assert list(KafkaCryptoStore(node / "n1.config").load_section("chains")) == ["chain0"]
    KafkaCryptoStore(node / "n1.config").store_value("bad", b"not a certificate", "allowlist")
    before = snapshot(node)
    assert_refused(run(install), "[allowlist] bad is not a certificate")
    assert snapshot(node) == before


def test_default_pathlen_is_the_role_table() -> None:
    from kafkaratchet.files.provisioning import ROLE_PATHLEN, ROLE_USAGES
    from provision.spec import default_pathlen

    assert {role: default_pathlen(role) for role in ROLE_USAGES} == {role: ROLE_PATHLEN.get(role, 0)
                                                                     for role in ROLE_USAGES}
    assert default_pathlen("chainserver") == 1 and default_pathlen("producer") == 0


def test_request_refusals_write_nothing(pki: dict[str, Path], tmp_path: Path) -> None:
    before = snapshot(pki["base"], tmp_path)
    argv = ["request", "--dir", str(pki["a"]), "--node-id", "n1", "--role", "consumer", "--topics", "orders",
            "--pathlen", "0", "--lifetime", "60"]
    assert_refused(run(argv), "already exists")
    argv[argv.index("--role") + 1] = "superuser"
    assert_refused(run(argv), "unknown role 'superuser'")
    assert_refused(run(["request", "--dir", str(tmp_path / "x"), "--renew", "--node-id", "n1", "--role",
                        "consumer", "--all-topics", "--pathlen", "0", "--lifetime", "60"]), "has no identity")
    assert snapshot(pki["base"], tmp_path) == before


class _StdinThatLogs(io.StringIO):
    """Each line read, another thread logs and so does the command's own thread."""

    def readline(self, size: int | None = -1) -> str:
        elsewhere = threading.Thread(
            target=lambda: logging.getLogger("kafkaratchet.elsewhere").warning("from another thread"))
        elsewhere.start()
        elsewhere.join()
        logging.getLogger("kafkaratchet.here").warning("from the command")
        return super().readline(size)


def test_in_process_runs_print_only_their_own_log_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node running in the same process (tests, notebooks) must not leak its log lines into a command's stderr."""
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    argv = ["password", "--dir", str(tmp_path / "n"), "--node-id", "n1", "--role", "consumer", "--pathlen", "0",
            "--lifetime", "60"]
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdin=_StdinThatLogs("\nno\n"), stdout=out, stderr=err)
    assert code == 2
    assert "from the command" in err.getvalue() and "from another thread" not in err.getvalue()
