"""The quick start's password derivation, pinned by tests/vectors/password_kdf.json, and its legacy version.

Argon2id at the v2 limits costs seconds per call: every derivation here goes
through the session's memo (_provisionkit), and the vector's passwords
are the suite's own root and provisioning passwords, so pinning the vector adds
two real v1 runs (about half a second each) and no v2 run to the suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kafkaratchet.errors import ProvisioningError
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Chain, Usage
from kafkaratchet.protocol.trust import TrustStore
from provision import inputs
from provision import password as pw
from tests.unit._provisionkit import (
    OTHER_PW,
    PROV_PW,
    ROOT_PW,
    argon2_once_per_password,  # noqa: F401 - autouse fixture
    assert_refused,
    no_password_env,  # noqa: F401 - autouse fixture
    run,
    snapshot,
)
from tests.unit._vectors import VECTORS, generator, load

DATA: dict[str, Any] = load("password_kdf.json")
KDFS = {pw.KDF_V1.version: pw.KDF_V1, pw.KDF_V2.version: pw.KDF_V2}
V1_MESSAGE = "this deployment was created with the v1 quick-start parameters"


def _kdf_cases() -> list[dict[str, Any]]:
    assert {case["version"] for case in DATA["kdfs"]} == set(KDFS), "one vector entry per version the tool knows"
    return list(DATA["kdfs"])


# ------------------------------------------------------------------------------------ the vector


@pytest.mark.parametrize("case", _kdf_cases(), ids=lambda c: f"v{c['version']}")
def test_parameters_are_the_vectors(case: dict[str, Any]) -> None:
    kdf = KDFS[case["version"]]
    assert (kdf is pw.CURRENT_KDF) == case["current"]
    assert kdf.root_label.decode() == case["root_label"] and kdf.root_salt.hex() == case["root_salt"]
    assert kdf.provisioner_label.decode() == case["provisioner_label"]
    assert kdf.provisioner_salt.hex() == case["provisioner_salt"]
    assert (kdf.opslimit, kdf.memlimit, kdf.min_length) == (case["opslimit"], case["memlimit"],
                                                            case["min_password_length"])
    assert pw.KEY_SIZE == case["key_size"]


@pytest.mark.parametrize("case", _kdf_cases(), ids=lambda c: f"v{c['version']}")
def test_known_answers(case: dict[str, Any]) -> None:
    kdf = KDFS[case["version"]]
    derive = {"root": pw.root_identity, "provisioner": pw.provisioner_identity}
    assert {answer["key"] for answer in case["derivations"]} == set(derive)
    for answer in case["derivations"]:
        assert derive[answer["key"]](answer["password"], kdf).public_key.hex() == answer["public_key"], answer["key"]


@pytest.mark.parametrize("case", _kdf_cases(), ids=lambda c: f"v{c['version']}")
def test_a_password_below_the_minimum_is_refused_before_any_derivation(
        case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    kdf = KDFS[case["version"]]
    too_short = case["too_short"]
    assert len(too_short) == case["min_password_length"] - 1

    def no_derivation(*_: object, **__: object) -> bytes:
        raise AssertionError("a refused password must not reach Argon2id")

    monkeypatch.setattr(pw, "derive_key", no_derivation)
    for derive, what in ((pw.root_identity, "root password"), (pw.provisioner_identity, "provisioning password")):
        with pytest.raises(ProvisioningError) as info:
            derive(too_short, kdf)
        assert str(info.value).startswith(f"the {what} is too short: it needs at least {kdf.min_length} characters")
        assert too_short not in str(info.value)
    assert pw.password_bytes(too_short + "x", "root password", min_length=kdf.min_length) == (too_short + "x").encode()


@pytest.mark.parametrize("case", DATA["normalisation"], ids=lambda c: c["utf8"][:8])
def test_passwords_are_nfc_normalised(case: dict[str, Any]) -> None:
    assert pw.password_bytes(case["password"], "root password").hex() == case["utf8"]


def test_generator_reproduces_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator (libsodium and the documented recipe only) writes exactly the file; its Argon2id calls
    go through the session memo, so this costs no derivation the known-answer tests did not already pay."""
    module = generator("generate_password")
    monkeypatch.setattr(module, "argon2id", lambda password, salt, opslimit, memlimit:
                        pw.derive_key(password, salt, opslimit=opslimit, memlimit=memlimit))
    assert module.render() == (VECTORS / "password_kdf.json").read_text(encoding="utf-8")


# ------------------------------------------------------------------- deployments made with v1


def _argv(directory: Path, *extra: str) -> list[str]:
    return ["password", "--dir", str(directory), "--node-id", "n1", "--role", "producer", "--topics", "orders",
            "--pathlen", "0", "--lifetime", "3600", *extra]


def _trusted_roots(directory: Path) -> set[str]:
    return set(KafkaCryptoStore(directory / "n1.config").load_section("allowlist"))


def _passwords(monkeypatch: pytest.MonkeyPatch, root: str = ROOT_PW, provisioning: str = PROV_PW) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, root)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, provisioning)


def test_legacy_kdf_provisions_a_v1_node_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passwords(monkeypatch)
    code, out, err = run(_argv(tmp_path / "old", "--legacy-kdf"))
    assert code == 0, err
    [warning] = err.splitlines()
    assert "WARNING: --legacy-kdf" in warning and "v1 quick-start parameters" in warning
    assert "derivation   quick start v1" in out
    v1_root = pw.root_identity(ROOT_PW, pw.KDF_V1)
    assert _trusted_roots(tmp_path / "old") == {v1_root.public_key.hex()}
    store = KafkaCryptoStore(tmp_path / "old" / "n1.config")
    chain = Chain.decode(store.load_bytes("chain0", "chains") or b"")
    assert chain.certificates[0].subject == pw.provisioner_identity(PROV_PW, pw.KDF_V1).public_key
    assert TrustStore([pw.root_certificate(v1_root)]).validate(chain).usages == {Usage.PRODUCE}
    for secret in (ROOT_PW, PROV_PW):
        assert secret not in out + err


def test_a_v1_deployment_is_named_and_never_silently_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passwords(monkeypatch)
    old = tmp_path / "old"
    assert run(_argv(old, "--legacy-kdf"))[0] == 0
    v1_fingerprint = pw.root_identity(ROOT_PW, pw.KDF_V1).fingerprint
    before = snapshot(tmp_path)
    # a new node for the old deployment, named by its root fingerprint
    result = run(_argv(tmp_path / "new", "--root-fingerprint", v1_fingerprint))
    assert_refused(result, V1_MESSAGE)
    assert "--legacy-kdf" in result[2] and "offline PKI" in result[2] and v1_fingerprint in result[2]
    # re-provisioning a node of the old deployment: its allowlist names the v1 root
    assert_refused(run(_argv(old, "--force")), V1_MESSAGE)
    assert snapshot(tmp_path) == before
    # a password that derives neither version's root is still just a wrong password
    _passwords(monkeypatch, root=OTHER_PW)
    assert_refused(run(_argv(tmp_path / "new", "--root-fingerprint", v1_fingerprint)), "wrong root password:")
    assert snapshot(tmp_path) == before
    # the two ways on: keep the deployment on v1, or move a node to the v2 root (every node must move)
    _passwords(monkeypatch)
    code, _, err = run(_argv(tmp_path / "new", "--legacy-kdf", "--root-fingerprint", v1_fingerprint))
    assert code == 0, err
    assert _trusted_roots(tmp_path / "new") == _trusted_roots(old)
    code, _, err = run(_argv(old, "--force", "--new-root"))
    assert code == 0, err
    assert _trusted_roots(old) == {pw.root_identity(ROOT_PW).public_key.hex()}


def test_legacy_kdf_on_a_v2_deployment_is_named_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _passwords(monkeypatch)
    v2_fingerprint = pw.root_identity(ROOT_PW).fingerprint
    assert_refused(run(_argv(tmp_path / "n", "--legacy-kdf", "--root-fingerprint", v2_fingerprint)),
                   "this deployment was created with the v2 quick-start parameters")
    assert not (tmp_path / "n").exists()


def test_password_minimum_depends_on_the_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 13-character password: too short for v2 (and the error points at --legacy-kdf), long enough for v1
    (refused here only because both passwords are the same, so that nothing is derived)."""
    _passwords(monkeypatch, root="thirteen char", provisioning="thirteen char")
    result = run(_argv(tmp_path / "n"))
    assert_refused(result, "root password is too short: it needs at least 16 characters")
    assert "--legacy-kdf" in result[2] and "thirteen char" not in result[2]
    assert_refused(run(_argv(tmp_path / "n", "--legacy-kdf")), "must differ from the root password")
    assert not (tmp_path / "n").exists()
