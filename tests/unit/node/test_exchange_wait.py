"""The exchange loop's thread on a stand-in consumer with kafka-python's fetcher hooks: it waits for events
(a command, a completed fetch) instead of polling on a timer, still sends request retries on time, asks
the broker to hold fetches long only while idle, and folds the trust records of a batch at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkaratchet.files.provisioning import write_node
from kafkaratchet.node import exchange
from kafkaratchet.node.facade import KafkaCrypto
from tests.unit._fuzzkit import StubProducer, make_world
from tests.unit.node._standins import Cluster, FetchingConsumer

WORLD = make_world()


class TimedProducer(StubProducer):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, **_: Any) -> None:
        self.times.append(time.monotonic())
        super().send(topic, value, key)


def _until(condition: Callable[[], bool], timeout: float = 3.0) -> float:
    """Seconds until ``condition`` held (fails the test after ``timeout``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.002)
    return time.monotonic() - started


@pytest.fixture
def node(tmp_path: Path) -> Iterator[KafkaCrypto]:
    write_node(tmp_path, "fz", WORLD.node, chains=[WORLD.node_chain], roots=[WORLD.root_cert])
    cluster = Cluster(chains=1, allowlist=1, denylist=1, **{"fz.keys": 2, "fz.reqs": 1})
    crypto = KafkaCrypto.unstarted(None, TimedProducer(), FetchingConsumer(cluster), config=str(tmp_path / "fz.config"))
    yield crypto
    crypto.close()


def _start(crypto: KafkaCrypto) -> FetchingConsumer:
    kc = crypto.exchange.kc
    assert isinstance(kc, FetchingConsumer)
    crypto.exchange.start()
    assert crypto.wait_ready(5)
    _until(lambda: kc.in_flight() == 1)
    return kc


def test_an_idle_loop_waits_for_a_fetch_instead_of_polling(node: KafkaCrypto) -> None:
    kc = _start(node)
    time.sleep(0.1)
    polls = kc.polls
    time.sleep(1.0)
    assert kc.polls - polls <= 2, "waiting on the fetch in flight: at most a poll for maintenance"
    polls = kc.polls
    kc.complete()
    assert _until(lambda: kc.polls > polls) < 0.5, "a completed fetch wakes the loop at once"
    _until(lambda: kc.in_flight() == 1)


def test_a_wanted_key_is_asked_for_at_once_and_again_on_time_while_the_loop_waits(node: KafkaCrypto) -> None:
    kc = _start(node)
    kp = node.exchange.kp
    assert isinstance(kp, TimedProducer)
    time.sleep(0.2)
    asked = time.monotonic()
    node.exchange.commands.want("fz", b"\x42" * 8)
    _until(lambda: len(kp.sent) >= 1)
    assert kp.sent[0][0] == "fz.reqs" and kp.times[0] - asked < 0.3, "no fetch completed, yet handled at once"
    _until(lambda: len(kp.sent) >= 3, timeout=6.0)
    first, second = kp.times[1] - kp.times[0], kp.times[2] - kp.times[1]
    retry = node.settings.request_retry  # counted from before the request was built (a KEM key pair or two)
    assert abs(first - retry) < 0.3 and abs(second - 2 * retry) < 0.3, (first, second)
    assert kc.in_flight() == 1, "the fetch was waited on all along"


def test_fetches_wait_long_only_while_the_node_idles(node: KafkaCrypto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "ACTIVE_WINDOW", 0.5)
    kc = _start(node)
    assert kc.waits[-1] == 100, "a node that just started fetches as its consumer is configured"
    time.sleep(0.7)
    kc.complete()
    _until(lambda: len(kc.waits) >= 2 and kc.in_flight() == 1)
    assert kc.waits[-1] == exchange.IDLE_FETCH_WAIT_MS
    node.exchange.commands.produce("fz")  # activity: the next fetch may soon carry new partitions
    _until(lambda: "fz" in node.exchange.state.produce_roots)
    kc.complete()
    _until(lambda: len(kc.waits) >= 3)
    assert kc.waits[-1] == 100


def test_trust_records_of_one_batch_are_folded_at_once(node: KafkaCrypto) -> None:
    folded: list[int] = []
    loop = node.exchange
    original = loop.on_trust_records

    def counting() -> None:
        folded.append(len(loop.state.trust_batch))
        original()

    loop.on_trust_records = counting  # type: ignore[method-assign]
    kc = _start(node)
    kc.complete("allowlist", b"not an entry", b"nor this", b"nor that")
    _until(lambda: bool(folded))
    time.sleep(0.1)
    assert folded == [3]


def test_close_ends_the_wait_at_once(node: KafkaCrypto) -> None:
    _start(node)
    time.sleep(0.1)
    started = time.monotonic()
    node.close()
    assert time.monotonic() - started < 0.5
    assert not node.exchange.thread.is_alive()
