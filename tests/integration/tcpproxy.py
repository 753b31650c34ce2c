"""A loopback TCP proxy a test can cut and restore, to make the network fail on cue.

    proxy = TcpProxy(("127.0.0.1", broker_port)).start()
    ... clients connect to proxy.port ...
    proxy.cut()       # every open connection is reset, new ones are accepted and reset at once
    proxy.restore()   # connections go through again
    proxy.stop()

A cut resets (RST, not FIN) so clients notice at once, the way they do when a
broker restarts or a firewall drops state; new connections during a cut are
accepted and reset, like a port with nothing behind it. The proxy only ever
listens on loopback and only forwards to the one target it was given.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from dataclasses import dataclass

__all__ = ["TcpProxy", "ProxyStats"]

_CHUNK = 1 << 16


@dataclass
class ProxyStats:
    accepted: int = 0
    reset_by_cut: int = 0
    refused_during_cut: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def _reset(sock: socket.socket) -> None:
    """Close with RST: SO_LINGER on, timeout 0."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pair:
    """One client connection and its upstream, pumped by one thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="tcpproxy-pair", daemon=True)

    def _pump(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.client, selectors.EVENT_READ, self.upstream)
            selector.register(self.upstream, selectors.EVENT_READ, self.client)
            while not self.closed.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    target: socket.socket = key.data
                    data = source.recv(_CHUNK)
                    if not data:
                        return
                    target.sendall(data)
                    with self.proxy._lock:
                        if source is self.client:
                            self.proxy.stats.bytes_up += len(data)
                        else:
                            self.proxy.stats.bytes_down += len(data)
        except (OSError, ValueError):
            return  # reset by a cut, or by either side
        finally:
            selector.close()
            self.close(reset=False)

    def close(self, *, reset: bool) -> None:
        if self.closed.is_set() and not reset:
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if reset:
                _reset(sock)
            else:
                with contextlib.suppress(OSError):
                    sock.close()
        self.proxy._forget(self)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; see the module docstring."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="tcpproxy-accept", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until :meth:`restore`."""
        self._cut.set()
        with self._lock:
            pairs = list(self._pairs)
            self.stats.reset_by_cut += len(pairs)
        for pair in pairs:
            pair.close(reset=True)

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stopped.set()
        self._cut.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close(reset=True)
            pair.thread.join(timeout=5)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                with self._lock:
                    self.stats.refused_during_cut += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(self, client, upstream)
            with self._lock:
                self.stats.accepted += 1
                self._pairs.add(pair)
            pair.thread.start()
            if self._cut.is_set():  # a cut that began while this connection was being set up
                pair.close(reset=True)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
