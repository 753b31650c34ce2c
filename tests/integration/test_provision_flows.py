"""Nodes made by ``kafkaratchet-provision`` do (or, without shared trust, do not) trade keys on the real broker.

Each flow is driven the way its users drive it: the quick start from flags and
the environment, the same at a terminal (prompts answered on standard input,
passwords typed into a pseudo-terminal because getpass reads no-echo from the
controlling terminal), and the offline PKI through its four commands. The
nodes are then started from the written files alone.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.identity import decode_identity_file
from kafkaratchet.protocol.ratchet import decode_seed
from provision import inputs, rootkey

from ..unit._provisionkit import (  # noqa: F401 - the two autouse fixtures
    OTHER_PW,
    PROV_PW,
    ROOT_PW,
    argon2_once_per_password,
    no_password_env,
    run,
    secret_file,
)
from .nodes import Cluster, drain

pytestmark = pytest.mark.integration


def quickstart(directory: Path, node_id: str, role: str, topic: str, bootstrap: str, *extra: str) -> Path:
    code, out, err = run(["password", "--dir", str(directory), "--node-id", node_id, "--role", role,
                          "--topics", topic, "--pathlen", "0", "--lifetime", "3600",
                          "--bootstrap-servers", bootstrap, *extra])
    assert code == 0, err
    assert f"provisioned node {node_id}" in out
    return directory / f"{node_id}.config"


def exchange(cluster: Cluster, producer_config: Path, consumer_configs: list[Path], topic: str,
             wait: float = 10.0) -> tuple[list[bytes], list[list[object]]]:
    """Start the nodes from their files, send five records, and read them back on every consumer."""
    producer_node = cluster.start(KafkaCryptoStore(producer_config))
    consumers = [cluster.start(KafkaCryptoStore(config)) for config in consumer_configs]
    cluster.topic(topic)
    producer = producer_node.producer()
    values = [os.urandom(24) for _ in range(5)]
    for value in values:
        producer.send(topic, value=value)
    producer.flush()
    return values, [drain(node.consumer(topic, wait=wait), len(values)) for node in consumers]


def assert_decrypted(values: list[bytes], records: list[object]) -> None:
    assert len(records) == len(values)
    assert all(r.value.isCleartext() for r in records)  # type: ignore[attr-defined]
    assert sorted(r.value.getMessage() for r in records) == sorted(values)  # type: ignore[attr-defined]


def test_quickstart_from_flags_and_environment_round_trip(cluster: Cluster, unique_root: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    producer = quickstart(tmp_path / "p", "prod", "producer", unique_root, cluster.bootstrap)
    monkeypatch.delenv(inputs.ROOT_PASSWORD_ENV)
    consumer = quickstart(tmp_path / "c", "cons", "consumer", unique_root, cluster.bootstrap,
                          "--root-password-file", str(secret_file(tmp_path / "root.pw", ROOT_PW)))
    values, [records] = exchange(cluster, producer, [consumer], f"{unique_root}.events")
    assert_decrypted(values, records)


def test_scripted_quickstart_with_no_terminal_takes_the_defaults(cluster: Cluster, unique_root: str,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 as a new user tried it: the console script from a script, stdin closed, no --pathlen or
    --lifetime; the node it writes passes ``kafkaratchet keyinfo`` and decrypts on the broker."""
    bindir = Path(sys.executable).parent
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KAFKARATCHET_")},
           inputs.ROOT_PASSWORD_ENV: ROOT_PW, inputs.PROVISIONING_PASSWORD_ENV: PROV_PW}
    node = tmp_path / "x"
    script = bindir / "kafkaratchet-provision"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "provision"]
    proc = subprocess.run([*command, "password", "--node-id", "n1", "--role", "consumer", "--topics", unique_root,
                           "--bootstrap-servers", cluster.bootstrap, "--dir", str(node)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                          start_new_session=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "standard input ended" not in proc.stderr
    assert sorted(p.name for p in node.iterdir()) == ["n1.config", "n1.crypto", "n1.seed"]
    keyinfo = bindir / "kafkaratchet"
    command = [str(keyinfo)] if keyinfo.exists() else [sys.executable, "-m", "kafkaratchet.tools.cli"]
    info = subprocess.run([*command, "keyinfo", str(node / "n1.config")], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=env, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "chain0  valid" in info.stdout and "pathlen  0" in info.stdout
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    producer = quickstart(tmp_path / "p", "prod", "producer", unique_root, cluster.bootstrap)
    values, [records] = exchange(cluster, producer, [node / "n1.config"], f"{unique_root}.scripted")
    assert_decrypted(values, records)


# ------------------------------------------------------------------------------- at a terminal


class Terminal:
    """The tool in a child whose controlling terminal is a pty (for getpass) and whose stdin is a pipe."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKARATCHET_")}
        self.master, slave = os.openpty()

        def take_terminal() -> None:  # in the child, after setsid(): the pty becomes /dev/tty
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([sys.executable, "-m", "provision", *argv], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True, pass_fds=(slave,), preexec_fn=take_terminal)
        os.close(slave)
        self.stderr = b""
        self._seen = 0

    def expect(self, prompt: str, timeout: float = 20.0) -> None:
        """Wait for ``prompt`` on stderr, after the previous one: a prompt out of order never arrives."""
        wanted = prompt.encode()
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while wanted not in self.stderr[self._seen:]:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stderr], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no prompt {prompt!r}; stderr so far: {self.stderr!r}")
            chunk = os.read(self.proc.stderr.fileno(), 4096)
            if not chunk:
                raise AssertionError(f"exited before prompt {prompt!r}; stderr: {self.stderr!r}")
            self.stderr += chunk
        self._seen = self.stderr.index(wanted, self._seen) + len(wanted)

    def type_secret(self, text: str) -> None:
        os.write(self.master, text.encode() + b"\n")

    def answer(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, str, str, bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read().decode()
        self.stderr += self.proc.stderr.read()
        code = self.proc.wait(timeout=30)
        echoed = b""
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            echoed += chunk
        os.close(self.master)
        return code, out, self.stderr.decode(), echoed


def provision_at_terminal(directory: Path, node_id: str, role: str, topic: str, bootstrap: str) -> Path:
    term = Terminal(["password", "--dir", str(directory), "--bootstrap-servers", bootstrap], directory.parent)
    try:
        return _answer_prompts(term, directory, node_id, role, topic)
    finally:
        if term.proc.poll() is None:  # a failed expectation: do not leave the child waiting on its prompt
            term.proc.kill()
            term.proc.wait()


def _answer_prompts(term: Terminal, directory: Path, node_id: str, role: str, topic: str) -> Path:
    term.expect("Root password: ")
    term.type_secret(ROOT_PW)
    term.expect("Provisioning password: ")
    term.type_secret(PROV_PW)
    term.expect("Node id: ")
    term.answer(node_id)
    term.expect("Role (producer, consumer, prodcon, ")
    term.answer(role)
    term.expect("Root topics, space-separated (empty: all topics): ")
    term.answer(topic)
    term.expect("Maximum path length [0]: ")
    term.answer("")
    term.expect("Lifetime in seconds (0: never expires) [31536000]: ")
    term.answer("3600")
    code, out, err, echoed = term.finish()
    assert code == 0, err
    assert f"provisioned node {node_id}" in out
    for secret in (ROOT_PW, PROV_PW):
        assert secret not in out and secret not in err and secret.encode() not in echoed
    return directory / f"{node_id}.config"


def test_quickstart_at_a_terminal_round_trip(cluster: Cluster, unique_root: str, tmp_path: Path) -> None:
    producer = provision_at_terminal(tmp_path / "p", "prod", "producer", unique_root, cluster.bootstrap)
    consumer = provision_at_terminal(tmp_path / "c", "cons", "consumer", unique_root, cluster.bootstrap)
    values, [records] = exchange(cluster, producer, [consumer], unique_root)
    assert_decrypted(values, records)


# ------------------------------------------------------------------------------------ offline PKI


def test_offline_pki_end_to_end_and_no_secret_travels(cluster: Cluster, unique_root: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    vault = tmp_path / "vault"
    vault.mkdir()
    code, out, err = run(["init-root", "--out", str(vault / "root.key")])
    assert code == 0, err
    match = re.search(r"fingerprint\s+([a-z2-7]{4}(?:-[a-z2-7]{4}){3})", out)
    assert match is not None, out
    root_fp = match.group(1)

    configs = []
    for node_id, role in (("prod", "producer"), ("cons", "consumer")):
        node_dir = tmp_path / node_id
        code, _, err = run(["request", "--dir", str(node_dir), "--node-id", node_id, "--role", role, "--topics",
                            unique_root, "--pathlen", "0", "--lifetime", "3600", "--bootstrap-servers",
                            cluster.bootstrap])
        assert code == 0, err
        carried = vault / f"{node_id}.request"  # the only thing that goes to the root's machine
        carried.write_bytes((node_dir / f"{node_id}.request").read_bytes())
        code, out, err = run(["sign", "--root", str(vault / "root.key"), "--request", str(carried)])
        assert code == 0, err
        assert f"fingerprint  {decode_identity_file((node_dir / f'{node_id}.crypto').read_bytes()).fingerprint}" in out
        code, out, err = run(["install", "--chain", str(vault / f"{node_id}.chain"), "--dir", str(node_dir),
                              "--root-fingerprint", root_fp])
        assert code == 0, err
        assert root_fp in out
        configs.append(node_dir / f"{node_id}.config")

    root_seed = rootkey.open_root_key((vault / "root.key").read_bytes(), ROOT_PW.encode()).identity.seed_bytes()
    for node_id in ("prod", "cons"):
        node_dir = tmp_path / node_id
        secrets = [decode_identity_file((node_dir / f"{node_id}.crypto").read_bytes()).seed_bytes(),
                   decode_seed((node_dir / f"{node_id}.seed").read_bytes())[1], root_seed,
                   (node_dir / f"{node_id}.crypto").read_bytes(), (node_dir / f"{node_id}.seed").read_bytes()]
        for public in (vault / f"{node_id}.request", vault / f"{node_id}.chain"):
            blob = public.read_bytes()
            for secret in secrets:
                assert not any(secret[i:i + 8] in blob for i in range(len(secret) - 7)), public
                assert secret.hex().encode() not in blob and base64.b64encode(secret) not in blob

    values, [records] = exchange(cluster, configs[0], [configs[1]], f"{unique_root}.x")
    assert_decrypted(values, records)


# --------------------------------------------------------------------------- no trust, no keys


def test_other_root_and_limited_consumer_get_no_keys(cluster: Cluster, unique_root: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer under another root password, and a consumer-limited one with no controller, read ciphertext."""
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, ROOT_PW)
    monkeypatch.setenv(inputs.PROVISIONING_PASSWORD_ENV, PROV_PW)
    producer = quickstart(tmp_path / "p", "prod", "producer", unique_root, cluster.bootstrap)
    limited = quickstart(tmp_path / "l", "limited", "consumer-limited", unique_root, cluster.bootstrap)
    monkeypatch.setenv(inputs.ROOT_PASSWORD_ENV, OTHER_PW)
    foreign = quickstart(tmp_path / "f", "foreign", "consumer", unique_root, cluster.bootstrap)
    values, results = exchange(cluster, producer, [foreign, limited], unique_root, wait=1.5)
    for records in results:
        assert len(records) == len(values)
        assert not any(r.value.isCleartext() for r in records)  # type: ignore[attr-defined]
        assert all(r.value.isPossiblyDecryptable() for r in records)  # type: ignore[attr-defined]
