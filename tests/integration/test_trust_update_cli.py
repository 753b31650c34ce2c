"""``kafkaratchet-provision denylist`` / ``allowlist``: signed entries published and applied live."""

from __future__ import annotations

import io

import pytest

from kafkaratchet.protocol.identity import SigningIdentity
from provision.cli import main as provision

from .nodes import Cluster, drain, publish_trust

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
    cluster.topic(unique_root)
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


def test_a_scoped_admin_denies_within_its_topics_by_default(cluster: Cluster, unique_root: str) -> None:
    prod = cluster.node("prod", "producer")
    cons = cluster.node("cons", "consumer")
    other = f"{unique_root}x"
    narrow = cluster.provision("narrow", "admin", topics=[other])
    code, out, err = _run("denylist", "--config", str(narrow.path), str(cons.store.path), "--topics", unique_root)
    assert code == 2 and "widened-topics" in err, "a denial outside the signer's topics is refused before publishing"
    code, out, err = _run("denylist", "--config", str(narrow.path), str(cons.store.path))
    assert (code, err) == (0, "") and f"for {other} " in out
    assert prod.crypto.credentials.wait_until(lambda c: cons.crypto.public_key in c.trust.state.scoped, 30)
    assert not prod.crypto.trust.is_denied(cons.crypto.public_key)
    cluster.topic(unique_root)
    producer = prod.producer()
    producer.send(unique_root, value=b"still readable on its own topic")
    producer.flush()
    [record] = drain(cons.consumer(unique_root), 1)
    assert record.value.getMessage() == b"still readable on its own topic"


def test_republish_turns_denials_kept_in_a_config_into_v2_entries(cluster: Cluster, unique_root: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The upgrade path: denials an admin node persisted before trust updates v2 (its [denylist]) are re-signed
    as v2 entries that every node applies; a v1 entry on the topic is ignored with one line naming the fix.
    A denylist topic of the test's own: no v1 entry of an earlier run is on it, and none goes to the cluster's."""
    from kafkaratchet.protocol import wire
    from kafkaratchet.protocol.certs import issue_certificate

    denylist = {"denylist_topic": f"{unique_root}-denylist"}
    admin = cluster.provision("admin", "admin", crypto=denylist)
    gone = [SigningIdentity.generate() for _ in range(3)]
    for key in gone:
        admin.store_value(key.public_key.hex(), key.public_key, "denylist")
    node = cluster.node("prod", "producer", crypto=denylist)
    old = issue_certificate(gone[0], gone[0].public_key, usages=[])
    with caplog.at_level("WARNING", logger="kafkaratchet"):
        publish_trust(cluster.bootstrap, denylist["denylist_topic"], *[wire.pack([1, "deny", old.encode(), None])] * 3)
        code, out, err = _run("denylist", "--config", str(admin.path), "--republish")
        assert (code, err) == (0, "") and "3 denial(s)" in out
        assert node.crypto.credentials.wait_until(
            lambda c: all(c.trust.is_denied(k.public_key) for k in gone), 30)
    hints = [r for r in caplog.records if "--republish" in r.getMessage()]
    assert len(hints) == 1, "one line for the v1 entries, naming the command that re-publishes them"
