"""KafkaCryptoStore: kafkacrypto's config semantics, typed values, atomic persistence."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kafkaratchet.errors import ConfigError
from kafkaratchet.files.settings import NodeSettings, root_topic
from kafkaratchet.files.store import KafkaCryptoStore


def _store(tmp_path: Path) -> KafkaCryptoStore:
    return KafkaCryptoStore.create(tmp_path / "n1.config", "n1", {
        "kafka": {"bootstrap_servers": "127.0.0.1:9092", "request_timeout_ms": 30000},
        "kafka-consumer": {"auto_offset_reset": "earliest"},
        "kafka-crypto": {"client_id": "crypto"},
        "kafka-crypto-consumer": {"max_poll_records": 50},
        "crypto": {"key_wait_interval": 0.25, "allow_plaintext": "true"},
    })


def test_get_kafka_config_merges_in_order_with_defaults(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.get_kafka_config("consumer") == {
        "bootstrap_servers": "127.0.0.1:9092", "request_timeout_ms": 30000,
        "auto_offset_reset": "earliest", "group_id": "n1"}
    crypto = store.get_kafka_config("consumer", extra="crypto")
    assert crypto["client_id"] == "crypto" and crypto["max_poll_records"] == 50
    assert "group_id" not in crypto and crypto["enable_auto_commit"] is False
    assert store.get_kafka_config("producer") == {"bootstrap_servers": "127.0.0.1:9092",
                                                  "request_timeout_ms": 30000}
    with pytest.raises(ConfigError):
        store.get_kafka_config("admin")


def test_values_are_typed_and_persist(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.store_value("value1", "some text")
    store.store_value("count", 3, section="app")
    again = KafkaCryptoStore(tmp_path / "n1.config")
    assert again.node_id == "n1"
    assert again.load_value("value1") == "some text" and again.load_value("count", "app") == 3
    assert again.load_value("missing", default="d") == "d"
    assert again.load_section("crypto") == {"key_wait_interval": 0.25, "allow_plaintext": True}
    store.store_value("count", None, section="app")
    assert KafkaCryptoStore(tmp_path / "n1.config").load_value("count", "app") is None
    assert [p.name for p in tmp_path.iterdir()] == ["n1.config"], "no temp file left behind"


def test_shared_across_threads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    threads = [threading.Thread(target=lambda i=i: [store.store_value(f"k{i}_{j}", j, "app") for j in range(20)])
               for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(KafkaCryptoStore(tmp_path / "n1.config").load_section("app")) == 100


@pytest.mark.parametrize("text", ["[DEFAULT\nnode_id=x\n", "no section here\n", "[kafka]\na=1\n"])
def test_bad_config_files_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(ConfigError):
        KafkaCryptoStore(path)
    with pytest.raises(ConfigError, match="does not exist"):
        KafkaCryptoStore(tmp_path / "absent.config")


def test_node_id_mismatch_is_refused(tmp_path: Path) -> None:
    _store(tmp_path)
    with pytest.raises(ConfigError, match="is for node"):
        KafkaCryptoStore(tmp_path / "n1.config", "someone-else")


_GOOD_IDS = ["n1", "a", "Node-1.eu_west", "x" * 128, "1node"]
_BAD_IDS = ["", "my node", "../etc", ".hidden", "-x", "a/b", "a\\b", "a\0b", "x" * 129, "n.", "n.config",
            "n.crypto", "n.seed", "é"]


def test_one_node_id_rule_for_the_store_write_node_and_the_tool(tmp_path: Path) -> None:
    from kafkaratchet.errors import ProvisioningError
    from kafkaratchet.files.provisioning import write_node
    from kafkaratchet.files.store import check_node_id
    from kafkaratchet.protocol.identity import SigningIdentity
    from provision.inputs import parse_node_id

    for good in _GOOD_IDS:
        assert check_node_id(good) == good and parse_node_id(f" {good} ") == good
        assert KafkaCryptoStore.create(tmp_path / f"{good}.config", good).node_id == good
    for bad in _BAD_IDS:
        with pytest.raises(ConfigError, match="invalid node id"):
            check_node_id(bad)
        with pytest.raises(ProvisioningError, match="invalid node id"):
            parse_node_id(bad)
        if bad and "\0" not in bad and "/" not in bad:
            with pytest.raises(ConfigError, match="invalid node id"):
                KafkaCryptoStore.create(tmp_path / "bad.config", bad)
            (tmp_path / "bad.config").unlink()
    identity = SigningIdentity.generate()
    for bad in _BAD_IDS:
        directory = tmp_path / "nodes"
        with pytest.raises(ProvisioningError, match="invalid node id"):
            write_node(directory, bad, identity)
        assert not directory.exists()  # refused before anything is written


def test_write_node_with_a_bad_id_leaves_no_file(tmp_path: Path) -> None:
    from kafkaratchet.errors import ProvisioningError
    from kafkaratchet.files.provisioning import write_node
    from kafkaratchet.protocol.identity import SigningIdentity

    with pytest.raises(ProvisioningError, match="invalid node id 'my node'"):
        write_node(tmp_path, "my node", SigningIdentity.generate())
    assert list(tmp_path.iterdir()) == []


def test_settings_parse_and_reject() -> None:
    settings = NodeSettings.from_section({"key_wait_interval": 0.25, "allow_plaintext": True, "kems": "x25519"})
    assert settings.key_wait_interval == 0.25 and settings.allow_plaintext and len(settings.kem_types()) == 1
    for bad in ({"key_wait_interval": "soon"}, {"kems": "rsa"}, {"allow_plaintext": "maybe"},
                {"max_key_wait_intervals": -1}):
        with pytest.raises(ConfigError):
            NodeSettings.from_section(bad)
    assert root_topic("orders.eu.v1") == "orders" and root_topic("orders_eu", "_") == "orders"
