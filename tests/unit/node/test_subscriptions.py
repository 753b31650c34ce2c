"""Subscriptions without a broker: a topic that does not exist yet is looked up only after the creator's
backoff, followed as soon as it is found, and lookups go to the lookup client while the key-exchange
consumer only assigns and seeks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from kafka import TopicPartition

from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node import topiccreator
from kafkaratchet.node.state import ExchangeState
from kafkaratchet.node.subscriptions import Subscriptions
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.node.topicsetup import Ensured, TopicSpec
from kafkaratchet.ratelimit import RateLimiter
from tests.unit._fuzzkit import StubProducer
from tests.unit.node._standins import Cluster, LookupConsumer


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _subscriptions(kc: LookupConsumer, clock: Clock, *, enabled: bool = False,
                   lookups: LookupConsumer | None = None) -> Subscriptions:
    creator = TopicCreator({"bootstrap_servers": "broker:9092"}, NodeSettings(), enabled=enabled, clock=clock)
    return Subscriptions(kc, StubProducer(), RateLimiter(60.0), creator, lookups=lookups)


def test_a_missing_topic_is_looked_up_once_per_backoff_then_followed_when_it_appears() -> None:
    cluster, clock = Cluster(chains=1), Clock()
    kc = LookupConsumer(cluster)
    subs, state = _subscriptions(kc, clock), ExchangeState()
    assert not subs.follow(state, ("chains", "fz.keys"), "beginning")
    assert state.following == {"chains": "beginning"} and state.unresolved == {"fz.keys": "beginning"}
    assert kc.lookups == {"chains": 1, "fz.keys": 1}
    assert "create_topics" in subs.creator.missing["fz.keys"]  # type: ignore[union-attr]
    # maintain() asks every second: the lookups follow the backoff (1, 2, 4 s ...), not the calls
    asked_at = []
    for _ in range(80):
        clock.now += 0.1
        before = kc.lookups["fz.keys"]
        subs.follow(state, "fz.keys", state.unresolved["fz.keys"])
        if kc.lookups["fz.keys"] > before:
            asked_at.append(round(clock.now - 50.0, 1))
    assert asked_at == [1.0, 3.0, 7.0], "one metadata lookup per backoff step, none a second"
    cluster.add("fz.keys", 2)
    clock.now += 8.0
    assert subs.follow(state, "fz.keys", "beginning")
    assert state.following["fz.keys"] == "beginning" and not state.unresolved
    assert subs.creator.missing == {}  # type: ignore[union-attr]
    assert kc.assigned == [TopicPartition("chains", 0), TopicPartition("fz.keys", 0), TopicPartition("fz.keys", 1)]
    assert kc.positions[TopicPartition("fz.keys", 1)] == 0
    assert subs.follow(state, "fz.keys", "beginning") and kc.lookups["fz.keys"] == 5, "followed: no lookup"


def test_a_topic_the_creator_makes_is_followed_in_the_same_call(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, clock = Cluster(), Clock()
    kc = LookupConsumer(cluster)

    def create(config: Mapping[str, Any], specs: Sequence[TopicSpec], **_: Any) -> Ensured:
        for spec in specs:
            cluster.add(spec.name, 3)
        return Ensured(created=[s.name for s in specs])

    monkeypatch.setattr(topiccreator, "ensure_topics", create)
    subs, state = _subscriptions(kc, clock, enabled=True), ExchangeState()
    assert subs.follow(state, "fz.keys", "end")
    assert kc.positions == {TopicPartition("fz.keys", p): 100 + p for p in range(3)}
    assert kc.offset_calls == ["end"] and state.last_activity > 0


def test_lookups_go_to_the_lookup_client_and_the_consumer_only_assigns_and_seeks() -> None:
    cluster, clock = Cluster(**{"fz.reqs": 2}), Clock()
    kc, lookups = LookupConsumer(cluster), LookupConsumer(cluster)
    subs, state = _subscriptions(kc, clock, lookups=lookups), ExchangeState()
    assert subs.partitions("fz.reqs") == [TopicPartition("fz.reqs", 0), TopicPartition("fz.reqs", 1)]
    assert subs.follow(state, "fz.reqs", ("time", 1_700_000_000.0))
    assert lookups.offset_calls == ["end", "times"] and not kc.offset_calls and not kc.lookups
    assert kc.assigned == [TopicPartition("fz.reqs", 0), TopicPartition("fz.reqs", 1)] and not lookups.assigned
    assert kc.positions == {TopicPartition("fz.reqs", 0): 100, TopicPartition("fz.reqs", 1): 101}, \
        "no offset for the time: from the end"
    assert state.following == {"fz.reqs": "time"}


def test_a_failed_offset_lookup_assigns_nothing() -> None:
    class Failing(LookupConsumer):
        def end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
            raise TimeoutError("ListOffsets timed out")

    cluster, clock = Cluster(**{"fz.keys": 1}), Clock()
    kc = Failing(cluster)
    subs, state = _subscriptions(kc, clock), ExchangeState()
    with pytest.raises(TimeoutError):
        subs.follow(state, "fz.keys", "end")
    assert not state.assigned and not kc.assigned and "fz.keys" not in state.following


class _FailingOnce(LookupConsumer):
    """The broker a lookup went to was down (SIGKILLed but still in the metadata): one connection error."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster)
        self.failures = 1

    def beginning_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError(111, "connection refused")
        return super().beginning_offsets(partitions)


def test_a_broker_error_mid_follow_leaves_the_topics_to_be_followed_later() -> None:
    """Without the guard in Subscriptions.follow, a producer whose R.reqs lookup failed once would never
    answer for that root: it counts the root as produced for, and nothing retries the topic."""
    cluster, clock = Cluster(chains=1), Clock()
    cluster.add("fz.reqs", 2)
    kc = _FailingOnce(cluster)
    subs, state = _subscriptions(kc, clock), ExchangeState()
    with pytest.raises(ConnectionRefusedError):
        subs.follow(state, ("chains", "fz.reqs"), "beginning")
    assert state.unresolved == {"chains": "beginning", "fz.reqs": "beginning"}
    clock.now += 2.0
    for topic, start in list(state.unresolved.items()):  # what maintain() does every second
        subs.follow(state, topic, start)
    assert set(state.following) == {"chains", "fz.reqs"} and not state.unresolved
