"""Apache Kafka itself on loopback: the reference engine for tests and benchmarks.

Tansu (``tools.broker``) needs nothing but Python; this module runs the real
thing, so that replication, ``acks=all`` with ``min.insync.replicas``, leader
changes, compaction, a cluster without automatic topic creation, SASL and ACLs
are what the tests meet. It needs Java 17+ and Maven on ``PATH``:

* the broker's jars of a pinned version (:data:`KAFKA_VERSION`) are resolved
  from Maven Central into Maven's own repository, and the class path is cached
  under :func:`cache_dir`;
* ``N`` combined (broker + controller) KRaft nodes are formatted and started,
  each with a plaintext listener, a SCRAM listener and a controller listener,
  all on ``127.0.0.1``;
* the standard authorizer is on and denies what no ACL allows, except to
  ``User:ANONYMOUS`` (the plaintext listener, which the brokers and most tests
  use) and to the users named as super users: the SASL listener is where ACLs
  are enforced;
* every process is recorded by PID in ``state.json`` under the cluster's
  directory and stopped by that PID only, after checking that its command line
  still names this directory; a cluster whose owner died (a crashed test run)
  is reaped the next time one starts.

``python -m kafkaratchet.tools.apachekafka up`` / ``down`` / ``status`` (also
``python3 dev.py kafka ...``) keep one cluster running for development.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kafkaratchet.errors import BrokerError
from kafkaratchet.tools.broker import free_port

__all__ = [
    "KAFKA_VERSION",
    "SCRAM_MECHANISM",
    "ApacheKafkaCluster",
    "cache_dir",
    "kafka_classpath",
    "reap_orphans",
]

log = logging.getLogger(__name__)

#: The Apache Kafka release the tests and benchmarks run (``org.apache.kafka:kafka_2.13``).
KAFKA_VERSION = "4.4.0"
#: The log4j 2 binding for Kafka's SLF4J 1.7 logging (without it the broker logs nothing).
_LOG4J_VERSION = "2.25.5"
#: The SASL mechanism of the authenticated listener.
SCRAM_MECHANISM = "SCRAM-SHA-512"
_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"


def cache_dir() -> Path:
    """Where class paths and development clusters live (``KAFKARATCHET_CACHE`` overrides)."""
    configured = os.environ.get("KAFKARATCHET_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kafkaratchet"


def _require(program: str, why: str) -> str:
    found = shutil.which(program)
    if not found:
        raise BrokerError(f"Apache Kafka needs {why}: '{program}' is not on PATH "
                          "(or use the embedded broker: --broker tansu)")
    return found


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.kafkaratchet</groupId>
  <artifactId>apache-kafka-runtime</artifactId>
  <version>{version}</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def kafka_classpath(version: str = KAFKA_VERSION) -> str:
    """The broker's class path, resolved with Maven once and cached while every jar is still there."""
    folder = cache_dir() / f"apache-kafka-{version}"
    cached = folder / "classpath.txt"
    if cached.exists():
        classpath = cached.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    _require("java", "Java 17 or newer")
    mvn = _require("mvn", "Maven to fetch its jars")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pom.xml").write_text(_POM.format(version=version, log4j=_LOG4J_VERSION))
    log.info("resolving Apache Kafka %s with Maven (first use only)", version)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(folder / "pom.xml"), "dependency:build-classpath",
         "-Dmdep.includeScope=runtime", f"-Dmdep.outputFile={cached}"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if result.returncode or not cached.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
                          f"(exit status {result.returncode}):\n{tail}")
    return cached.read_text().strip()


@dataclass(frozen=True)
class NodePorts:
    plaintext: int
    sasl: int
    controller: int


_LOG4J2 = """status = warn
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
"""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:
        out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True,
                             check=False)
    except OSError:
        return ""
    return out.stdout.strip()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int, workdir: Path) -> bool:
    """Is ``pid`` still a broker of the cluster in ``workdir`` (and not a recycled PID)?"""
    command = _cmdline(pid)
    return _alive(pid) and (str(workdir) + os.sep) in command and _MAIN in command


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the broker gets SIGKILL when the process that started it dies (a killed test run)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ApacheKafkaCluster:
    """``nodes`` combined KRaft nodes of Apache Kafka on loopback; use as a context manager.

    ``users`` (name -> password) become SCRAM users at format time; ``super_users`` among them
    bypass ACLs on the SASL listener, as ``User:ANONYMOUS`` does on the plaintext one.
    """

    def __init__(self, nodes: int = 3, *, workdir: Path | None = None, users: Mapping[str, str] | None = None,
                 super_users: Sequence[str] = (), version: str = KAFKA_VERSION, heap: str = "768m",
                 die_with_parent: bool = False, startup_timeout: float = 180.0) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.node_ids = list(range(1, nodes + 1))
        self.workdir = (workdir or Path(tempfile.mkdtemp(prefix="kafka-", dir=_clusters_dir()))).resolve()
        self.users = dict(users or {})
        self.super_users = list(super_users)
        self.version = version
        self.heap = heap
        self.die_with_parent = die_with_parent
        self.startup_timeout = startup_timeout
        self.ports = {n: NodePorts(free_port(), free_port(), free_port()) for n in self.node_ids}
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._expected_exit: set[int] = set()
        self._classpath = ""

    # ------------------------------------------------------------------ addresses
    @property
    def replication_factor(self) -> int:
        return min(3, len(self.node_ids))

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n].plaintext}" for n in self.node_ids)

    @property
    def sasl_bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[n].sasl}" for n in self.node_ids)

    def pid(self, node: int) -> int | None:
        process = self._processes.get(node)
        return process.pid if process is not None and process.poll() is None else None

    def log_path(self, node: int) -> Path:
        return self.workdir / f"node-{node}" / "broker.log"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ApacheKafkaCluster:
        reap_orphans()
        self._classpath = kafka_classpath(self.version)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "log4j2.properties").write_text(_LOG4J2)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formats = []
        for node in self.node_ids:
            folder = self.workdir / f"node-{node}"
            (folder / "data").mkdir(parents=True, exist_ok=True)
            (folder / "server.properties").write_text(self._properties(node))
            formats.append((node, subprocess.Popen(
                self._java(_STORAGE_TOOL, heap="256m") + ["format", "--ignore-formatted", "-t", cluster_id,
                                                           "-c", str(folder / "server.properties"),
                                                           *self._scram_args()],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        for node, process in formats:
            out, _ = process.communicate(timeout=120)
            if process.returncode:
                tail = "\n".join(out.decode(errors="replace").splitlines()[-10:])
                raise BrokerError(f"formatting Kafka node {node} failed (status {process.returncode}):\n{tail}")
        try:
            for node in self.node_ids:
                self.start_node(node, wait=False)
            self.wait_ready()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        log.info("Apache Kafka %s: %d nodes on %s (logs in %s)", self.version, len(self.node_ids),
                 self.bootstrap_servers, self.workdir)
        return self

    def start_node(self, node: int, *, wait: bool = True) -> None:
        """(Re)start one node with its data and ports; ``wait`` for the cluster to list it again."""
        if self.pid(node) is not None:
            raise BrokerError(f"Kafka node {node} is already running")
        folder = self.workdir / f"node-{node}"
        with open(folder / "broker.log", "ab") as out:
            self._processes[node] = subprocess.Popen(
                self._java(_MAIN, heap=self.heap) + [str(folder / "server.properties")],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if self.die_with_parent and sys.platform == "linux" else None,
                start_new_session=not self.die_with_parent)
        self._expected_exit.discard(node)
        self._write_state()
        if wait:
            self.wait_ready()

    def kill(self, node: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node (SIGKILL by default, as a crash would) and wait for it to exit."""
        process = self._processes.get(node)
        if process is None or process.poll() is not None:
            raise BrokerError(f"Kafka node {node} is not running")
        self._expected_exit.add(node)
        process.send_signal(sig)
        process.wait(timeout=60)
        self._write_state()

    def stop(self, *, keep_logs: bool = False, grace: float = 10.0) -> None:
        """Stop every node this object started; remove the cluster's directory unless logs are to be kept.

        Logs are kept too when a node exited on its own (a crash) or would not stop.
        """
        crashed = [n for n, p in self._processes.items() if p.poll() is not None and n not in self._expected_exit]
        running = [p for p in self._processes.values() if p.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace
        stubborn = False
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stubborn = True
                process.kill()
                process.wait(timeout=30)
        self._processes.clear()
        if keep_logs or crashed:
            if crashed:
                log.warning("Kafka node(s) %s exited on their own", crashed)
            for node in self.node_ids:
                shutil.rmtree(self.workdir / f"node-{node}" / "data", ignore_errors=True)
            with contextlib.suppress(OSError):
                (self.workdir / "state.json").unlink()
            log.warning("Apache Kafka logs kept in %s", self.workdir)
        else:
            if stubborn:
                log.info("some Kafka nodes needed SIGKILL after %.0f s", grace)
            shutil.rmtree(self.workdir, ignore_errors=True)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until every running node listens and the cluster lists all running nodes as brokers."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        running = [n for n in self.node_ids if self.pid(n) is not None]
        for node in running:
            _wait_listening(self.ports[node].plaintext, deadline, self, node)
        from kafka.admin import KafkaAdminClient
        servers = [f"127.0.0.1:{self.ports[n].plaintext}" for n in running]
        while True:
            self._check_alive(running)
            try:
                admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=5000)
                try:
                    brokers = {b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")}
                finally:
                    admin.close()
                if brokers >= set(running):
                    return
            except Exception as exc:  # noqa: BLE001 - anything the client raises while the quorum forms
                log.debug("cluster not ready yet: %s", exc)
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka nodes {running} did not all register within the start timeout; "
                                  f"logs in {self.workdir}")
            time.sleep(0.2)

    def _check_alive(self, nodes: Sequence[int]) -> None:
        for node in nodes:
            process = self._processes[node]
            if process.poll() is not None:
                tail = "\n".join(self.log_path(node).read_text(errors="replace").splitlines()[-20:])
                raise BrokerError(f"Kafka node {node} exited with status {process.returncode} while starting; "
                                  f"log {self.log_path(node)}:\n{tail}")

    def __enter__(self) -> ApacheKafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(keep_logs=exc_type is not None)

    # ------------------------------------------------------------------ files
    def _java(self, main: str, *, heap: str) -> list[str]:
        return [_require("java", "Java 17 or newer"), f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
                f"-Dkafkaratchet.cluster={self.workdir}", "-cp", self._classpath, main]

    def _scram_args(self) -> list[str]:
        args = []
        for name, password in sorted(self.users.items()):
            args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return args

    def _properties(self, node: int) -> str:
        ports = self.ports[node]
        voters = ",".join(f"{n}@127.0.0.1:{self.ports[n].controller}" for n in self.node_ids)
        rf = self.replication_factor
        supers = ";".join(["User:ANONYMOUS", *(f"User:{u}" for u in self.super_users)])
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": (f"PLAINTEXT://127.0.0.1:{ports.plaintext},SASL_PLAINTEXT://127.0.0.1:{ports.sasl},"
                          f"CONTROLLER://127.0.0.1:{ports.controller}"),
            "advertised.listeners": (f"PLAINTEXT://127.0.0.1:{ports.plaintext},"
                                     f"SASL_PLAINTEXT://127.0.0.1:{ports.sasl}"),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": supers,
            "log.dirs": str(self.workdir / f"node-{node}" / "data"),
            "auto.create.topics.enable": "false",
            "num.partitions": "4",
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min(2, rf)),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min(2, rf)),
            "group.initial.rebalance.delay.ms": "0",
            "unclean.leader.election.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.cleaner.threads": "1",
            "log.cleaner.backoff.ms": "1000",
            "controlled.shutdown.enable": "true",
        }
        return "".join(f"{k}={v}\n" for k, v in settings.items())

    def _write_state(self) -> None:
        state = {
            "owner_pid": os.getpid(),
            "die_with_parent": self.die_with_parent,
            "version": self.version,
            "bootstrap_servers": self.bootstrap_servers,
            "sasl_bootstrap_servers": self.sasl_bootstrap_servers,
            "ports": {str(n): vars(p) for n, p in self.ports.items()},
            "pids": {str(n): p.pid for n, p in self._processes.items() if p.poll() is None},
        }
        tmp = self.workdir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.workdir / "state.json")


def _wait_listening(port: int, deadline: float, cluster: ApacheKafkaCluster, node: int) -> None:
    while True:
        cluster._check_alive([node])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka node {node} did not listen on port {port} in time; "
                                  f"log {cluster.log_path(node)}") from None
            time.sleep(0.1)


def _clusters_dir() -> Path:
    folder = cache_dir() / "clusters"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _states() -> Iterator[tuple[Path, dict[str, object]]]:
    for path in sorted(_clusters_dir().glob("*/state.json")):
        try:
            yield path.parent, json.loads(path.read_text())
        except (OSError, ValueError):
            continue


def _stop_pids(workdir: Path, pids: Mapping[str, int], grace: float = 10.0) -> list[int]:
    """SIGTERM then SIGKILL the PIDs that are still this cluster's brokers; returns those it signalled."""
    ours = [int(pid) for pid in pids.values() if _ours(int(pid), workdir)]
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in ours):
        time.sleep(0.1)
    for pid in ours:
        if _ours(pid, workdir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return ours


def reap_orphans() -> list[Path]:
    """Stop the brokers of clusters whose owning process is gone and that were not meant to outlive it."""
    reaped = []
    for workdir, state in _states():
        owner = state.get("owner_pid")
        if state.get("die_with_parent") and isinstance(owner, int) and not _alive(owner):
            pids = state.get("pids")
            if isinstance(pids, dict) and _stop_pids(workdir, pids, grace=2.0):
                log.warning("stopped the brokers of a cluster whose test run died (%s)", workdir)
            for data in workdir.glob("node-*/data"):
                shutil.rmtree(data, ignore_errors=True)
            reaped.append(workdir)
            with contextlib.suppress(OSError):
                (workdir / "state.json").unlink()
    _prune_kept_logs()
    return reaped


_KEPT_LOGS = 5


def _prune_kept_logs() -> None:
    """Kept logs of failed runs: the newest few stay, older ones go (they would pile up in CI caches)."""
    kept = [d for d in _clusters_dir().iterdir()
            if d.is_dir() and d.name != _DEV and not (d / "state.json").exists()]
    kept.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in kept[_KEPT_LOGS:]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------- the command
_DEV = "dev"


def _dev_state() -> tuple[Path, dict[str, object] | None]:
    workdir = _clusters_dir() / _DEV
    try:
        return workdir, json.loads((workdir / "state.json").read_text())
    except (OSError, ValueError):
        return workdir, None


def _running(workdir: Path, state: Mapping[str, object] | None) -> bool:
    pids = state.get("pids") if state else None
    return isinstance(pids, dict) and bool(pids) and all(_ours(int(p), workdir) for p in pids.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 dev.py kafka",
        description=f"Run Apache Kafka {KAFKA_VERSION} (3 KRaft nodes, replication factor 3, "
                    "min.insync.replicas 2, no automatic topic creation) on loopback for development. "
                    "Needs Java 17+ and Maven; the jars come from Maven Central on first use.")
    parser.add_argument("action", choices=["up", "down", "status"],
                        help="up: start (or show the running cluster); down: stop it; status: show it")
    parser.add_argument("--nodes", type=int, default=3, help="number of KRaft nodes (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.verbose:
        logging.getLogger("kafkaratchet").setLevel(logging.INFO)
    workdir, state = _dev_state()
    if args.action == "status" or (args.action == "up" and _running(workdir, state)):
        if not _running(workdir, state) or state is None:
            print("no development cluster is running (python3 dev.py kafka up)")
            return 1 if args.action == "status" else 0
        print(f"Apache Kafka running in {workdir}")
        print(f"export KAFKA_BOOTSTRAP_SERVERS={state['bootstrap_servers']}")
        return 0
    if args.action == "down":
        if state is None:
            print("no development cluster is recorded; nothing to stop")
            return 0
        pids = state.get("pids")
        stopped = _stop_pids(workdir, pids if isinstance(pids, dict) else {})
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"stopped {len(stopped)} Kafka process(es)")
        return 0
    if workdir.exists():
        shutil.rmtree(workdir)
    print(f"starting Apache Kafka {KAFKA_VERSION} ({args.nodes} nodes)...", flush=True)
    cluster = ApacheKafkaCluster(args.nodes, workdir=workdir)
    try:
        cluster.start()
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cluster._processes.clear()  # detached: `down` stops them by the PIDs in state.json
    print(f"Apache Kafka running in {workdir} (broker logs in node-*/broker.log)")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
