"""Fuzzing the store's loaders: the config file, the seed file, the identity file, the key archive.

A node reads these at start; whatever is in them (a torn write, a hand edit, a hostile file), the
outcome is a loaded value or a KafkaRatchetError (ConfigError, RatchetError, FormatError) that
names the problem, never a traceback from deep inside the standard library.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaratchet.errors import ConfigError, FormatError, KafkaRatchetError, RatchetError
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.provisioning import write_node
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.files.settings import CRYPTO_SCHEMA, NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.node import KafkaCrypto
from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import Certificate, Chain
from kafkaratchet.protocol.identity import decode_identity_file, derive_subkey, encode_identity_file
from kafkaratchet.protocol.ratchet import decode_seed, encode_seed
from tests.unit._fuzzkit import (
    StubConsumer,
    StubProducer,
    budget,
    make_world,
    mutate,
    mutated,
    outcome,
    random_value,
    scratch,
    seeds,
)

__all__ = ["scratch"]

WORLD = make_world()

_VALUES = ["inf", "-inf", "nan", "1e400", "-5", "0", "-0.5", "1_000", "9" * 5000, "None", "true", "off", "",
           "x25519", "x25519,nope", "\x00", "a\x00b", "/", "..", "%(node_id)s", "AAAA", "!!notbase64!!", "é",
           "kafka:9092", "-1", "2", "0.001", "1e-9", "\t", "x" * 300]
_OPTIONS = ["node_id", "bootstrap_servers", "clock_skew", "request_max_age", "key_wait_interval",
            "max_key_wait_intervals", "ratchet_interval", "key_max_age", "kems", "allow_plaintext", "cryptokey",
            "ratchet", "keyarchive", "topic_separator", "reqs_suffix", "chains_topic", "log_interval",
            "request_retry", "chain0", WORLD.root.public_key.hex(), "group_id", "enable_auto_commit",
            "linger_ms", "acks", "api_version", "sasl_plain_password", "chain_lifetime", "chain_refresh_fraction",
            "chain_refresh_window", "trustentries", "role", "ratchet_intreval"]
_SECTIONS = ["DEFAULT", "kafka", "kafka-crypto", "kafka-producer", "kafka-consumer", "crypto", "chains",
             "allowlist", "denylist", "kafka-crypto-consumer"]


def _mutate_config(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(lines))
        if op == 0 and lines:  # a value changed to something awkward
            i = rng.randrange(len(lines))
            if "=" in lines[i]:
                lines[i] = lines[i].split("=", 1)[0] + "= " + rng.choice(_VALUES)
        elif op == 1:  # a new option, maybe in a new section
            if rng.random() < 0.3:
                lines.insert(pos, f"[{rng.choice(_SECTIONS)}]")
                pos += 1
            lines.insert(pos, f"{rng.choice(_OPTIONS)} {rng.choice('=:')} {rng.choice(_VALUES)}")
        elif op == 2 and lines:
            del lines[rng.randrange(len(lines))]
        elif op == 3 and lines:  # a duplicate line (duplicate option or section)
            lines.insert(pos, rng.choice(lines))
        elif op == 4:  # continuation lines and junk
            lines.insert(pos, rng.choice(["  continued", "[", "]", "=x", "[unterminated", "; comment", "\ufeff"]))
        else:
            return mutate("\n".join(lines).encode("utf-8", "surrogatepass"), rng)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _load_everything(store: KafkaCryptoStore) -> None:
    """Everything a node and the tools read from a config file, in the order KafkaCrypto reads it."""
    for section in _SECTIONS + ["nosuchsection"]:
        store.load_section(section)
        store.load_section(section, defaults=True)
    for use in ("producer", "consumer"):
        for extra in (None, "crypto"):
            store.get_kafka_config(use, extra=extra)
    settings = NodeSettings.from_section(store.load_section("crypto"))
    settings.kem_types()
    settings.root("fz.a")
    for part in CRYPTO_SCHEMA:
        part.from_store(store)
    for option, suffix in (("cryptokey", ".crypto"), ("ratchet", ".seed"), ("keyarchive", ".keys"),
                           ("trustentries", ".trust")):
        store.secret_path(option, suffix)
    for section in ("chains", "allowlist", "denylist"):
        for name in store.load_section(section):
            blob = store.load_bytes(name, section)
            if blob is None:
                continue
            if section == "chains":
                Chain.decode(blob)
            elif section == "allowlist":
                Certificate.decode(blob)


@pytest.fixture(scope="module")
def base_config(scratch: Path) -> str:
    directory = scratch / "store-base"
    write_node(directory, "fz", WORLD.node, chains=[WORLD.node_chain], roots=[WORLD.root_cert],
               denied=[b"\x09" * 32], bootstrap_servers="127.0.0.1:1",
               crypto={"clock_skew": 60, "request_max_age": 30, "kems": "x25519", "allow_plaintext": False})
    return (directory / "fz.config").read_text()


@budget(2000)
@given(seeds)
def test_fuzz_config_file(scratch: Path, base_config: str, seed: int) -> None:
    rng = random.Random(seed)
    data = _mutate_config(base_config, rng)
    path = scratch / "fuzz.config"
    path.write_bytes(data)
    store = outcome(KafkaCryptoStore, path)
    if isinstance(store, KafkaRatchetError):
        assert isinstance(store, ConfigError)
        return
    result = outcome(_load_everything, store)
    assert result is None or isinstance(result, (ConfigError, FormatError))


@pytest.fixture(scope="module")
def node_dir(scratch: Path) -> Path:
    directory = scratch / "store-node"
    write_node(directory, "fz", WORLD.node, chains=[WORLD.node_chain], roots=[WORLD.root_cert],
               bootstrap_servers="127.0.0.1:1")
    return directory


@budget(150)
@given(seeds)
def test_fuzz_config_file_at_node_start(node_dir: Path, base_config: str, seed: int) -> None:
    """The whole start of a node (KafkaCrypto.__init__) on a hostile config: it starts, or says why not."""
    data = _mutate_config(base_config, random.Random(seed))
    path = node_dir / "fuzz.config"
    path.write_bytes(data)
    node = outcome(KafkaCrypto, None, StubProducer(), StubConsumer(), config=str(path))
    if isinstance(node, KafkaRatchetError):
        assert isinstance(node, (ConfigError, FormatError, RatchetError))
    else:
        node.close()


# --------------------------------------------------------------------------- secret files

_SEED = encode_seed(7, b"\x42" * 32)
_IDENTITY = encode_identity_file(WORLD.node)


@budget(1500)
@given(mutated(_SEED, _IDENTITY))
def test_fuzz_seed_file(scratch: Path, data: bytes) -> None:
    result = outcome(decode_seed, data)
    assert isinstance(result, (tuple, RatchetError))
    if isinstance(result, tuple):
        assert data == _SEED and result == (7, b"\x42" * 32), "the checksum lets only the real file through"
    path = scratch / "fuzz.seed"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    ratchet = outcome(Ratchet, path)
    assert isinstance(ratchet, (Ratchet, RatchetError))


@budget(1500)
@given(mutated(_IDENTITY, _SEED))
def test_fuzz_identity_file(data: bytes) -> None:
    result = outcome(decode_identity_file, data)
    if isinstance(result, KafkaRatchetError):
        assert isinstance(result, FormatError)
    else:
        assert data == _IDENTITY and result.public_key == WORLD.node.public_key


_ARCHIVE_KEY = derive_subkey(WORLD.node, b"kr-key-archive")
_ENTRIES = [["fz", b"\x01" * 8, b"\x02" * 32, 1_700_000_000], ["other", b"\x03" * 8, b"\x04" * 32, 5]]


def _seal_archive(plain: bytes) -> bytes:
    nonce = b"\x00" * 24
    return b"KRKA\x01" + nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, b"KRKA\x01", nonce,
                                                                                  _ARCHIVE_KEY)


def _hostile_archive_plaintext(rng: random.Random) -> Any:
    entries: list[Any] = [list(e) for e in _ENTRIES]
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(entries) if entries and rng.random() < 0.8 else entries
        if target is entries or not isinstance(target, list) or not target:
            entries.append(random_value(rng))
        else:
            target[rng.randrange(len(target))] = random_value(rng)
    return entries if rng.random() < 0.9 else random_value(rng)


@budget(1500)
@given(seeds)
def test_fuzz_key_archive(scratch: Path, seed: int) -> None:
    rng = random.Random(seed)
    if rng.random() < 0.5:
        data = mutate(_seal_archive(wire.pack(_ENTRIES)), rng)  # a torn or tampered file
    else:
        data = _seal_archive(wire.pack(_hostile_archive_plaintext(rng)))  # authentic but malformed contents
    path = scratch / "fuzz.keys"
    path.write_bytes(data)
    os.chmod(path, 0o600)
    ring = outcome(KeyRing, path, _ARCHIVE_KEY)
    if isinstance(ring, KafkaRatchetError):
        assert isinstance(ring, ConfigError)
        return
    for key in ring.own_keys():
        assert isinstance(key.root, str) and len(key.key_id) == 8 and len(key.key) == 32


def test_the_valid_archive_loads(scratch: Path) -> None:
    path = scratch / "valid.keys"
    path.write_bytes(_seal_archive(wire.pack(_ENTRIES)))
    os.chmod(path, 0o600)
    assert {(k.root, k.key_id) for k in KeyRing(path, _ARCHIVE_KEY).own_keys()} == {
        ("fz", b"\x01" * 8), ("other", b"\x03" * 8)}


# ------------------------------------------------------------------ regressions (found by the fuzz tests above)

def _node_with(node_dir: Path, base_config: str, name: str, section: str, option: str, value: str) -> Any:
    lines = [line for line in base_config.splitlines() if not line.startswith(f"{option} =")]
    text = "\n".join(lines).replace(f"[{section}]", f"[{section}]\n{option} = {value}", 1)
    path = node_dir / name
    path.write_text(text)
    return outcome(KafkaCrypto, None, StubProducer(), StubConsumer(), config=str(path))


@pytest.mark.parametrize("value", ["inf", "1e400", "9" * 5000, "nan", "-5"])
def test_a_numeric_setting_that_is_not_a_finite_non_negative_number_is_a_config_error(
        node_dir: Path, base_config: str, value: str) -> None:
    """Found by test_fuzz_config_file: ``inf`` (and 5,000 nines, which parse as inf) made
    ``int(inf)`` raise OverflowError, and a negative ``clock_skew`` reached TrustStore as a ValueError.
    Guards settings.py ``NodeSettings.from_section`` (OverflowError caught; finite and >= 0 enforced)."""
    for option in ("clock_skew", "max_key_wait_intervals", "request_max_age"):
        result = _node_with(node_dir, base_config, "numbers.config", "crypto", option, value)
        assert isinstance(result, ConfigError), (option, value, result)


@pytest.mark.parametrize("value", ["fz\x00.crypto", "x" * 300, "dir/" + "y" * 256 + "/fz.crypto"])
@pytest.mark.parametrize("option", ["cryptokey", "ratchet", "keyarchive"])
def test_an_unusable_secret_path_is_a_config_error(node_dir: Path, base_config: str, option: str, value: str) -> None:
    """Found by test_fuzz_config_file_at_node_start: a NUL byte (ValueError from os.stat) or a name
    longer than the file system allows (OSError ENAMETOOLONG from Path.exists) in a secret file's
    path. Guards store.py ``KafkaCryptoStore.secret_path`` (usable file names only)."""
    result = _node_with(node_dir, base_config, "paths.config", "crypto", option, value)
    assert isinstance(result, ConfigError), result


_UNTYPED_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=40)


@budget(300)
@given(st.sampled_from(["sasl_plain_password", "client_id", "bootstrap_servers", "ssl_password", "group_id"]),
       _UNTYPED_TEXT)
def test_fuzz_untyped_kafka_options_reach_the_client_as_written(scratch: Path, option: str, text: str) -> None:
    """Issue 12: a Kafka option outside KAFKA_OPTION_TYPES is never type-guessed (``000123`` stayed the int 123).
    Guards store.py ``KafkaCryptoStore.get_kafka_config`` (coerce_kafka, not parse_value)."""
    path = scratch / "untyped.config"
    path.write_text(f"[DEFAULT]\nnode_id = fz\n\n[kafka-crypto-producer]\n{option} = {text}\n", encoding="utf-8")
    value = KafkaCryptoStore(path).get_kafka_config("producer", extra="crypto")[option]
    assert value == text and type(value) is str
