"""The typed config schema (issue 12, point 3): ``[crypto]`` keys declared once, Kafka options typed
only through an explicit table, unknown keys warned about, bad text named by key and file."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from kafkaratchet.errors import ConfigError
from kafkaratchet.files.configschema import KAFKA_OPTION_TYPES, coerce, coerce_kafka, is_kafka_section
from kafkaratchet.files.settings import (
    CRYPTO_SCHEMA,
    ChainServerSettings,
    KeyinfoSettings,
    NodeSettings,
    SecretFiles,
    crypto_defaults,
    crypto_types,
)
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.services.chainserver import KafkaCryptoChainServer
from kafkaratchet.tools.keyinfo import DEFAULT_WARN_WITHIN

README = Path(__file__).resolve().parents[3] / "README.md"


def _config(tmp_path: Path, text: str, name: str = "n1") -> Path:
    path = tmp_path / f"{name}.config"
    path.write_text(f"[DEFAULT]\nnode_id = {name}\n\n{text}")
    return path


# -- Kafka options ------------------------------------------------------------------------------------

def test_the_three_kafka_examples_reach_the_client_as_written(tmp_path: Path) -> None:
    path = _config(tmp_path, "[kafka]\nsasl_plain_password = 000123\nacks = all\nlinger_ms = 5\n")
    config = KafkaCryptoStore(path).get_kafka_config("producer")
    assert config["sasl_plain_password"] == "000123" and type(config["sasl_plain_password"]) is str
    assert config["acks"] == "all"
    assert config["linger_ms"] == 5 and type(config["linger_ms"]) is int


def test_typed_kafka_options_follow_the_table_and_the_rest_stays_text(tmp_path: Path) -> None:
    path = _config(tmp_path, "[kafka]\nbootstrap_servers = 127.0.0.1:9092\nclient_id = 007\n"
                             "security_protocol = SASL_SSL\nsasl_plain_username = true\n"
                             "[kafka-producer]\nacks = -1\napi_version = (3, 7)\nenable_idempotence = no\n"
                             "[kafka-consumer]\nenable_auto_commit = false\nmax_poll_records = 50\n"
                             "consumer_timeout_ms = 1.5\nclient_rack = 1\n")
    store = KafkaCryptoStore(path)
    producer = store.get_kafka_config("producer")
    assert producer == {"bootstrap_servers": "127.0.0.1:9092", "client_id": "007", "security_protocol": "SASL_SSL",
                        "sasl_plain_username": "true", "acks": -1, "api_version": (3, 7),
                        "enable_idempotence": False}
    consumer = store.get_kafka_config("consumer")
    assert consumer["enable_auto_commit"] is False and consumer["max_poll_records"] == 50
    assert consumer["consumer_timeout_ms"] == 1.5 and consumer["client_rack"] == "1"
    assert store.load_section("kafka")["client_id"] == "007", "load_section types Kafka options the same way"
    assert store.load_value("sasl_plain_username", "kafka") == "true"


@pytest.mark.parametrize(("text", "value"), [("all", "all"), ("ALL", "all"), ("0", 0), ("1", 1), ("-1", -1)])
def test_acks(text: str, value: Any) -> None:
    assert coerce_kafka("acks", text) == value


@pytest.mark.parametrize("text", ["(3, 7)", "3.7", "3,7", "(3,7)", " 3.7 "])
def test_api_version_is_a_tuple(text: str) -> None:
    assert coerce_kafka("api_version", text) == (3, 7)
    assert coerce_kafka("api_version", "2.8.1") == (2, 8, 1)


@pytest.mark.parametrize(("key", "text"), [("linger_ms", "soon"), ("linger_ms", "5.5"), ("acks", "2"),
                                           ("api_version", "latest"), ("enable_auto_commit", "maybe"),
                                           ("api_version", "9" * 50)])
def test_a_bad_kafka_value_is_a_config_error_naming_key_and_file(tmp_path: Path, key: str, text: str) -> None:
    path = _config(tmp_path, f"[kafka-crypto]\n{key} = {text}\n")
    store = KafkaCryptoStore(path)
    assert store.load_section("kafka-crypto")[key] == text, "the lenient kafkacrypto reader keeps the text"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: \[kafka-crypto\] {key} "):
        store.get_kafka_config("consumer", extra="crypto")


def _kafka_python_kinds() -> dict[str, str]:
    kinds: dict[str, str] = {}
    for client in (KafkaProducer, KafkaConsumer):
        for name, default in client.DEFAULT_CONFIG.items():
            if isinstance(default, bool):
                kinds[name] = "bool"
            elif isinstance(default, int):
                kinds[name] = "int"
            elif isinstance(default, float):
                kinds[name] = "float"
    return kinds


def test_the_kafka_table_matches_the_installed_kafka_python() -> None:
    """Every option kafka-python defaults to a number or a boolean is in the table with that kind (``acks``
    and ``retries``, whose float default is the "forever" sentinel, are the declared exceptions); every
    entry is an option kafka-python knows; every default, written as text, reads back as itself."""
    defaults = {**KafkaProducer.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG}
    exceptions = {"acks": "acks", "retries": "int"}
    for name, kind in _kafka_python_kinds().items():
        assert KAFKA_OPTION_TYPES.get(name) == exceptions.get(name, kind), name
    for name in KAFKA_OPTION_TYPES:
        assert name in defaults, f"{name} is not a kafka-python option"
        default = defaults[name]
        if default is None or name == "retries":
            continue
        text = str(default).lower() if isinstance(default, bool) else str(default)
        assert coerce_kafka(name, text) == default, name
    typed_without_default = {"api_version", "receive_buffer_bytes", "send_buffer_bytes"}
    for name, default in defaults.items():
        if isinstance(default, str) or (default is None and name not in typed_without_default):
            assert name not in KAFKA_OPTION_TYPES, f"{name} is text in kafka-python"
    with pytest.raises(TypeError):
        KAFKA_OPTION_TYPES["linger_ms"] = "float"  # type: ignore[index]  # the table is frozen


def test_kafka_sections() -> None:
    assert all(is_kafka_section(s) for s in ("kafka", "kafka-producer", "kafka-crypto-consumer"))
    assert not any(is_kafka_section(s) for s in ("crypto", "kafkaesque", "chains", None))


# -- [crypto] ------------------------------------------------------------------------------------------

def test_an_unknown_crypto_key_logs_one_warning_naming_it_and_the_nearest_key(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _config(tmp_path, "[crypto]\nratchet_intreval = 60\nclock_skew = 30\nmgmt_long_keyindex = true\n")
    with caplog.at_level(logging.WARNING):
        store = KafkaCryptoStore(path)
        settings = NodeSettings.from_store(store)
        store.load_section("crypto")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    typo = [w for w in warnings if "ratchet_intreval" in w]
    assert len(typo) == 1 and "did you mean ratchet_interval?" in typo[0] and str(path) in typo[0], warnings
    foreign = [w for w in warnings if "mgmt_long_keyindex" in w]
    assert len(foreign) == 1 and "did you mean" not in foreign[0], "a foreign key is warned about, not refused"
    assert len(warnings) == 2
    assert settings.clock_skew == 30 and settings.ratchet_interval == NodeSettings.ratchet_interval


def test_known_keys_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = "".join(f"{name} = {value}\n" for name, value in crypto_defaults().items() if value != "")
    with caplog.at_level(logging.WARNING):
        KafkaCryptoStore(_config(tmp_path, f"[crypto]\n{lines}cryptokey = n1.crypto\n"))
    assert not caplog.records


@pytest.mark.parametrize(("key", "text"), [("key_wait_interval", "soon"), ("clock_skew", "1.5"),
                                           ("max_key_wait_intervals", "ten"), ("allow_plaintext", "maybe"),
                                           ("request_max_age", "-5"), ("log_interval", "inf")])
def test_a_bad_node_setting_is_a_config_error_naming_key_and_file(tmp_path: Path, key: str, text: str) -> None:
    path = _config(tmp_path, f"[crypto]\n{key} = {text}\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: \[crypto\] {key} = "):
        NodeSettings.from_store(KafkaCryptoStore(path))


@pytest.mark.parametrize(("key", "text"), [("chain_lifetime", "an hour"), ("chain_lifetime", "3600.5"),
                                           ("chain_refresh_fraction", "half")])
def test_a_bad_chain_server_number_is_a_config_error_naming_key_and_file(tmp_path: Path, key: str,
                                                                          text: str) -> None:
    """Today's chain server raised a bare ValueError from ``int("an hour")``."""
    path = _config(tmp_path, f"[crypto]\n{key} = {text}\n", name="cs")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: \[crypto\] {key} = "):
        KafkaCryptoChainServer(None, config=str(path))
    with pytest.raises(ConfigError, match=key):
        ChainServerSettings.from_store(KafkaCryptoStore(path))


def test_chain_server_settings_typed_and_checked(tmp_path: Path) -> None:
    store = KafkaCryptoStore(_config(tmp_path, "[crypto]\nchain_lifetime = 60\nchain_refresh_fraction = 0.25\n"))
    assert ChainServerSettings.from_store(store) == ChainServerSettings(60, 0.25)
    assert ChainServerSettings.from_section({}) == ChainServerSettings(3600, 0.5)
    with pytest.raises(ConfigError, match="chain_lifetime must be >= 5"):
        ChainServerSettings.from_section({"chain_lifetime": "4"})
    assert KeyinfoSettings().chain_refresh_window == DEFAULT_WARN_WITHIN


@pytest.mark.parametrize(("text", "value"), [("true", True), ("Yes", True), ("on", True), ("1", True),
                                             ("false", False), ("no", False), ("OFF", False), ("0", False)])
def test_booleans_follow_configparser(text: str, value: bool) -> None:
    assert NodeSettings.from_section({"allow_plaintext": text}).allow_plaintext is value


def test_coercion_rules() -> None:
    assert coerce(" 5 ", int, key="k") == 5 and coerce("0.25", float, key="k") == 0.25
    assert coerce(3, float, key="k") == 3 and coerce(4.0, int, key="k") == 4
    assert coerce("a, b,,c ", tuple[str, ...], key="k") == ("a", "b", "c")
    assert coerce(123, str, key="k") == "123"
    for bad, kind in (("1e400", float), (True, int), (2.5, int), ("9" * 5000, int), ("nan", float)):
        with pytest.raises(ConfigError, match=r"\[crypto\] k = "):
            coerce(bad, kind, key="k")


def test_each_crypto_key_is_declared_once_with_a_type() -> None:
    names = [name for part in CRYPTO_SCHEMA for name in part.field_types()]
    assert len(names) == len(set(names)) == len(crypto_types())
    assert {"chain_lifetime", "chain_refresh_fraction", "chain_refresh_window", "role", "cryptokey", "ratchet",
            "keyarchive", "trustentries", "ratchet_interval", "kems"} <= set(names)
    assert set(SecretFiles.SUFFIXES) == set(SecretFiles.field_types())
    assert all(kind in (int, float, bool, str) for kind in crypto_types().values())


def test_secret_paths_and_crypto_values_are_not_type_guessed(tmp_path: Path) -> None:
    store = KafkaCryptoStore(_config(tmp_path, "[crypto]\ncryptokey = 0001\nratchet = 1e3\nrole = 12\n"
                                               "topic_separator = 0\n"))
    assert store.secret_path("cryptokey").name == "0001" and store.secret_path("ratchet", ".seed").name == "1e3"
    assert store.secret_path("keyarchive") == tmp_path / "n1.keys"
    assert store.load_value("role", "crypto") == "12" and store.load_section("crypto")["topic_separator"] == "0"
    assert NodeSettings.from_store(store).topic_separator == "0"


def _readme_settings() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("### Settings (`[crypto]` section)", 1)[1]
    rows: dict[str, str] = {}
    for line in table.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        values = [value.strip() for value in cells[1].split(",")] if len(names) > 1 else [cells[1]]
        assert len(names) == len(values), line
        rows.update(zip(names, values, strict=True))
    return rows


def test_every_documented_crypto_default_is_the_schema_default() -> None:
    documented = _readme_settings()
    assert len(documented) >= 8
    defaults = crypto_defaults()
    for name, text in documented.items():
        assert name in defaults, f"README documents an undeclared [crypto] key {name}"
        default = defaults[name]
        written = text.strip("`")
        if isinstance(default, bool):
            assert coerce(written, bool, key=name) is default, name
        elif isinstance(default, (int, float)):
            assert float(written) == default, name
        else:
            assert written == default, name
