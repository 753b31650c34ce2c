"""The one reader of a node's files: strict (how a node starts) and lenient (how keyinfo looks at it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafkaratchet.errors import ConfigError, ProvisioningError
from kafkaratchet.files import credentials
from kafkaratchet.files.credentials import Credentials
from kafkaratchet.files.nodefiles import NodeFiles, parse_public_key_arg, same_constraints
from kafkaratchet.files.provisioning import issue_node_chain, write_node
from kafkaratchet.files.secretfile import write_atomic
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol import validation, wire
from kafkaratchet.protocol.certs import Chain, Usage, issue_certificate, self_signed_root
from kafkaratchet.protocol.identity import SigningIdentity, fingerprint
from kafkaratchet.protocol.validation import chain_expiry
from kafkaratchet.tools import keyinfo
from provision import trustupdates


def _good(directory: Path) -> tuple[KafkaCryptoStore, SigningIdentity, SigningIdentity, bytes]:
    root = SigningIdentity.generate()
    identity = SigningIdentity.generate()
    chain = issue_node_chain(root, None, identity.public_key, "prodcon", topics=["orders"], lifetime=3600)
    denied = SigningIdentity.generate().public_key
    store = write_node(directory, "n1", identity, chains=[chain], roots=[self_signed_root(root)], denied=[denied])
    return store, identity, root, denied


def _break_everything(store: KafkaCryptoStore) -> None:
    """One problem in each part of the node's files."""
    (store.directory / "n1.crypto").write_bytes(b"not an identity")
    store.store_value("zz-bad", b"not a certificate", "allowlist")
    store.store_value("zz-short", b"\x01" * 5, "denylist")
    store.store_value("chain7", b"not a chain", "chains")
    write_atomic(store.directory / "n1.trust", b"\xc1 not msgpack")


def test_strict_read_of_a_good_node(tmp_path: Path) -> None:
    store, identity, root, denied = _good(tmp_path)
    files, skipped = NodeFiles.read(store, strict=True)
    assert skipped == [] and files.problems == {}
    assert files.identity is not None and files.identity.public_key == identity.public_key
    assert [c.subject for c in files.chains.values()] == [identity.public_key]
    assert [c.subject for c in files.root_certificates] == [root.public_key]
    assert files.denied_keys == [denied]
    assert files.trust_updates == [] and files.trust_path == tmp_path / "n1.trust"
    lenient, problems = NodeFiles.read(store, strict=False)
    assert problems == [] and lenient.chains == files.chains and lenient.roots == files.roots


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda s: (s.directory / "n1.crypto").unlink(), "does not exist"),
    (lambda s: (s.directory / "n1.crypto").write_bytes(b"junk"), "n1.crypto"),
    (lambda s: s.store_value("bad", b"junk", "allowlist"), r"\[allowlist\] bad is not a certificate"),
    (lambda s: s.store_value("bad", b"\x01" * 31, "denylist"), r"\[denylist\] bad is not a 32-byte key"),
    (lambda s: s.store_value("chain9", b"junk", "chains"), r"\[chains\] chain9 cannot be parsed"),
    (lambda s: s.store_value("chain9", Chain.of(issue_certificate(
        SigningIdentity.generate(), SigningIdentity.generate().public_key, usages=[Usage.PRODUCE])).encode(),
        "chains"), r"\[chains\] chain9 is for key .* not this node's"),
    (lambda s: write_atomic(s.directory / "n1.trust", b"junk"), "not a trust entries file"),
])
def test_strict_read_refuses_each_problem_and_credentials_with_it(tmp_path: Path, damage, expected: str) -> None:
    store, _, _, _ = _good(tmp_path)
    damage(store)
    with pytest.raises(ConfigError, match=expected):
        NodeFiles.read(store, strict=True)
    with pytest.raises(ConfigError, match=expected):
        Credentials(store)
    _, problems = NodeFiles.read(store, strict=False)
    assert len(problems) == 1


def test_strict_read_stops_at_the_first_problem_lenient_collects_them_all(tmp_path: Path) -> None:
    store, _, _, _ = _good(tmp_path)
    _break_everything(store)
    with pytest.raises(ConfigError, match="n1.crypto"):
        NodeFiles.read(store, strict=True)
    files, problems = NodeFiles.read(store, strict=False)
    assert len(problems) == 5
    assert [p.split(":")[0] for p in problems][0].endswith("n1.crypto")
    assert "[allowlist] zz-bad" in problems[1] and "[denylist] zz-short" in problems[2]
    assert "[chains] chain7" in problems[3] and "not a trust entries file" in problems[4]
    # what could be read still is
    assert files.identity is None and len(files.roots) == 1 and len(files.denied) == 1
    assert list(files.chains) == ["chain0"] and list(files.bad_chains) == ["chain7"]
    assert set(files.problems) == {"identity", "allowlist", "denylist", "chains", "trust"}


def test_a_trust_entry_that_does_not_verify_is_skipped_not_fatal(tmp_path: Path) -> None:
    store, _, _, _ = _good(tmp_path)
    write_atomic(tmp_path / "n1.trust", wire.pack([1, [b"forged entry"]]))
    files, skipped = NodeFiles.read(store, strict=True)
    assert files.trust_updates == [] and len(skipped) == 1 and "does not verify" in skipped[0]
    assert Credentials(store).trust.entry_count == 0


def test_keyinfo_reports_every_problem_of_a_node_with_several(tmp_path: Path) -> None:
    store, _, _, _ = _good(tmp_path)
    _break_everything(store)
    other = Chain.of(issue_certificate(SigningIdentity.generate(), SigningIdentity.generate().public_key,
                                       usages=[Usage.PRODUCE]))
    store.store_value("chain8", other.encode(), "chains")
    report = keyinfo.inspect_node(store.path)
    warnings = "\n".join(report["warnings"])
    for expected in ("n1.crypto", "[allowlist] zz-bad", "[denylist] zz-short", "[chains] chain7 cannot be parsed",
                     "not a trust entries file", "chain8 does not validate"):
        assert expected in warnings, expected
    assert report["fingerprint"] is None and report["public_key"] is None
    assert [c["name"] for c in report["chains"]] == ["chain0", "chain7", "chain8"]
    assert report["chains"][1]["status"] == "invalid" and report["chains"][1]["reason"].startswith("unparsable")
    assert len(report["allowlist"]) == 1 and len(report["denylist"]) == 1


def test_keyinfo_names_a_foreign_chain_once(tmp_path: Path) -> None:
    store, _, root, _ = _good(tmp_path)
    foreign = issue_node_chain(root, None, SigningIdentity.generate().public_key, "consumer")
    store.store_value("chain1", foreign.encode(), "chains")
    report = keyinfo.inspect_node(store.path)
    assert [w for w in report["warnings"] if "not this node's" in w] == [
        f"{store.path}: [chains] chain1 is for key {fingerprint(foreign.subject)}, not this node's"]
    assert [c["for_this_node"] for c in report["chains"]] == [True, False]


def test_chain_expiry_with_and_without_root() -> None:
    now = int(time.time())
    root_id, node = SigningIdentity.generate(), SigningIdentity.generate()
    leaf = issue_certificate(root_id, node.public_key, usages=[Usage.PRODUCE], expiry=now + 100)
    never = issue_certificate(root_id, node.public_key, usages=[Usage.PRODUCE])
    assert chain_expiry(Chain.of(leaf)) == now + 100
    assert chain_expiry(Chain.of(never)) == 0
    assert chain_expiry(Chain.of(leaf), self_signed_root(root_id, expiry=now + 50)) == now + 50
    assert chain_expiry(Chain.of(leaf), self_signed_root(root_id, expiry=now + 500)) == now + 100
    assert chain_expiry(Chain.of(leaf), self_signed_root(root_id)) == now + 100
    assert chain_expiry(Chain.of(never), self_signed_root(root_id, expiry=now + 50)) == now + 50
    assert chain_expiry(Chain.of(never), self_signed_root(root_id)) == 0
    # one function, importable under its old names
    assert credentials.chain_expiry is keyinfo.chain_expiry is validation.chain_expiry


def test_same_constraints() -> None:
    root, node = SigningIdentity.generate(), SigningIdentity.generate()
    a = issue_node_chain(root, None, node.public_key, "prodcon", topics=["orders"], lifetime=60)
    b = issue_node_chain(root, None, node.public_key, "prodcon", topics=["orders"], lifetime=600)
    assert same_constraints(a, b)
    assert not same_constraints(a, issue_node_chain(root, None, node.public_key, "producer", topics=["orders"]))
    assert not same_constraints(a, issue_node_chain(root, None, node.public_key, "prodcon", topics=["other"]))


def test_public_key_argument(tmp_path: Path) -> None:
    store, identity, _, _ = _good(tmp_path)
    key = identity.public_key
    assert parse_public_key_arg(key.hex()) == key
    assert parse_public_key_arg(f" {key.hex()}\n") == key
    assert parse_public_key_arg(str(store.path)) == key
    store.store_value("bad", b"junk", "allowlist")  # the key alone is read: other parts do not matter
    assert parse_public_key_arg(str(store.path)) == key
    for bad, message in (("abcd", "neither a 64-digit hex"), (str(tmp_path / "x.config"), "does not exist")):
        with pytest.raises(ConfigError, match=message):
            parse_public_key_arg(bad)
        with pytest.raises(ProvisioningError, match=message):
            trustupdates.subject_key(bad)
    (tmp_path / "n1.crypto").unlink()
    with pytest.raises(ConfigError, match="n1.crypto"):
        parse_public_key_arg(str(store.path))

