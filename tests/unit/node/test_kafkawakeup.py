"""The private kafka-python API the exchange loop relies on (kafkaratchet/node/kafkawakeup.py), checked
against the installed kafka-python: this fails when an upgrade changes what the hooks reach into."""

from __future__ import annotations

import collections
import inspect
import socket
import time
from collections.abc import Iterator

import kafka
import pytest
from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.future import Future

from kafkaratchet.node.kafkawakeup import TESTED_VERSIONS, fetch_hooks
from tests.unit._fuzzkit import StubConsumer


@pytest.fixture
def consumer() -> Iterator[KafkaConsumer]:
    """A real kafka-python consumer that never reaches a broker (a port nobody listens on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    built = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 8), enable_auto_commit=False,
                          fetch_max_wait_ms=123, request_timeout_ms=20_000, reconnect_backoff_ms=5_000)
    try:
        yield built
    finally:
        built.close()


def test_the_installed_kafka_python_is_one_the_hooks_were_checked_against() -> None:
    assert kafka.__version__ in TESTED_VERSIONS, (
        f"kafka-python {kafka.__version__}: check kafkaratchet/node/kafkawakeup.py against its consumer "
        f"(fetcher, fetch futures, fetch_max_wait_ms, cluster listeners), then add it to TESTED_VERSIONS")


def test_the_fetcher_still_works_the_way_the_hooks_assume(consumer: KafkaConsumer) -> None:
    fetcher = consumer._fetcher
    assert isinstance(fetcher, Fetcher)
    assert isinstance(fetcher._fetch_futures, collections.deque)
    # every fetch request built reads the wait from the fetcher's config dict, so setting it takes effect
    assert "self.config['fetch_max_wait_ms']" in inspect.getsource(Fetcher._create_fetch_requests)
    # the futures fetch_records waits on are _fetch_futures, which send_fetches fills and cleans
    assert "self._fetch_futures" in inspect.getsource(Fetcher.fetch_records)
    assert "self._fetch_futures.extend(futures)" in inspect.getsource(Fetcher._send_fetches_async)
    # poll(0) sends the fetches and returns at once; a poll with a timeout only returns early with records
    started = time.monotonic()
    assert consumer.poll(timeout_ms=0) == {}
    assert time.monotonic() - started < 1.0
    assert callable(consumer._cluster.add_listener) and callable(consumer._cluster.remove_listener)


def test_the_hooks_on_a_real_consumer(consumer: KafkaConsumer) -> None:
    hooks = fetch_hooks(consumer)
    assert hooks is not None
    assert hooks.configured_wait_ms == hooks.wait_ms == 123
    hooks.set_wait(2_000)
    assert consumer._fetcher.config["fetch_max_wait_ms"] == 2_000
    hooks.set_wait(60_000)
    assert hooks.wait_ms == 15_000, "kept below the request timeout (20 s) by a margin"

    woken: list[int] = []
    assert hooks.arm(lambda: woken.append(1)) is None, "no fetch in flight: nothing would wake the loop"
    in_flight = Future()
    consumer._fetcher._fetch_futures.append(in_flight)
    assert hooks.arm(lambda: woken.append(1)) is False
    assert hooks.arm(lambda: woken.append(1)) is False and not woken, "one callback per future"
    in_flight.success(None)
    assert woken == [1]
    assert hooks.arm(lambda: woken.append(2)) is True and woken == [1, 2], "completed already: woken at once"
    failed = Future()
    consumer._fetcher._fetch_futures.clear()
    consumer._fetcher._fetch_futures.append(failed)
    hooks.arm(lambda: woken.append(3))
    failed.failure(ConnectionError("broker went away"))
    assert woken == [1, 2, 3], "a failed fetch wakes the loop too"

    listeners = consumer._cluster._listeners
    before = len(listeners)
    hooks.listen(lambda: woken.append(4))
    assert len(listeners) == before + 1
    for listener in list(listeners):
        listener(consumer._cluster)
    assert woken[-1] == 4
    hooks.close()
    assert len(listeners) == before, "the caller's consumer outlives the node: the listener goes"


def test_no_hooks_on_anything_else() -> None:
    assert fetch_hooks(StubConsumer()) is None
    assert fetch_hooks(object()) is None

    class Odd:
        class _fetcher:  # noqa: N801 - mimics the attribute name
            config = {"fetch_max_wait_ms": "soon"}
            _fetch_futures: list[Future] = []

    assert fetch_hooks(Odd()) is None
