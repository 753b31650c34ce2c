"""``kafkaratchet-provision denylist`` / ``allowlist``: signed entries published and applied live."""

from __future__ import annotations

import io

import pytest

from kafkaratchet.identity import SigningIdentity
from provision.cli import main as provision

from .nodes import Cluster, drain

pytestmark = pytest.mark.integration


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = provision(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_denylist_command_cuts_a_consumer_off(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    admin = cluster.provision("admin", "admin")
    code, out, err = _run("denylist", "--config", str(admin.path), str(cons.store.path))
    assert (code, err) == (0, "") and cons.crypto.fingerprint in out
    assert prod.crypto.credentials.wait_until(lambda c: c.trust.is_denied(cons.crypto.public_key), 30)
    assert prod.crypto.credentials.wait_until(lambda c: True, 0)
    producer = prod.producer()
    producer.send(unique_root, value=b"after the denylist entry")
    producer.flush()
    [record] = drain(cons.consumer(unique_root, wait=3.0), 1)
    assert not record.value.isCleartext()


def test_allowlist_command_admits_a_new_root_live(cluster: Cluster) -> None:
    cons = cluster.node("cons", "consumer")
    admin = cluster.provision("admin", "admin")
    new_root = SigningIdentity.generate()
    code, out, err = _run("allowlist", "--config", str(admin.path), new_root.public_key.hex(), "--topics", "weather")
    assert (code, err) == (0, "") and new_root.fingerprint in out
    assert cons.crypto.credentials.wait_until(lambda c: new_root.public_key in c.trust.roots, 30)
    assert cons.crypto.credentials.trust.roots[new_root.public_key].topics == ("weather",)


@pytest.mark.parametrize("case", ["no-usage", "wider-than-signer", "bad-key", "both-self-and-key"])
def test_bad_trust_update_input_is_refused_before_publishing(cluster: Cluster, case: str) -> None:
    plain = cluster.provision("plain", "consumer")
    narrow = cluster.provision("narrow", "admin")
    key = SigningIdentity.generate().public_key.hex()
    argv = {
        "no-usage": ("denylist", "--config", str(plain.path), key),
        "wider-than-signer": ("allowlist", "--config", str(narrow.path), key, "--usages", "produce", "made-up"),
        "bad-key": ("denylist", "--config", str(narrow.path), "not-a-key"),
        "both-self-and-key": ("denylist", "--config", str(narrow.path), "--self", key),
    }[case]
    code, out, err = _run(*argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("kafkaratchet-provision: error: ")
