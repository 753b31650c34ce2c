"""TopicCreator: the backoff between lookups of a missing topic, and how a missing topic is reported."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from kafkaratchet.files.settings import NodeSettings
from kafkaratchet.node import topiccreator
from kafkaratchet.node.topiccreator import TopicCreator
from kafkaratchet.node.topicsetup import EXCHANGE_TOPIC_CONFIGS, Ensured, TopicSpec
from kafkaratchet.node.trusttopics import TRUST_TOPIC_CONFIGS
from tests.unit._fuzzkit import make_world, start_stub_node

WORLD = make_world()

CONFIG = {"bootstrap_servers": "broker:9092"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _creator(clock: Clock, *, enabled: bool = True) -> TopicCreator:
    return TopicCreator(CONFIG, NodeSettings(), enabled=enabled, clock=clock)


def test_a_missing_topic_is_looked_up_after_a_backoff_doubling_to_a_minute() -> None:
    clock = Clock()
    creator = _creator(clock)
    tries = []
    start = clock.now
    while clock.now - start < 400:
        if creator.due("fz.keys"):
            tries.append(clock.now - start)
        clock.now += 0.25
    gaps = [b - a for a, b in zip(tries, tries[1:], strict=False)]
    assert gaps[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert set(gaps[6:]) == {60}, "the backoff stops doubling at a minute"
    assert not creator.due("fz.keys"), "asked again at once: still backing off"
    assert creator.due("fz.reqs"), "each topic has its own backoff"


def test_found_forgets_the_backoff_and_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    creator = _creator(clock, enabled=False)
    for _ in range(3):
        assert creator.due("fz.keys")
        assert creator.ensure(["fz.keys"]) == []
        clock.now += 10
    assert "fz.keys" in creator.missing and "create_topics" in creator.missing["fz.keys"]
    creator.found("fz.keys")
    assert creator.missing == {}
    assert creator.due("fz.keys") and not creator.due("fz.keys"), "a new backoff starts at 1 s"
    clock.now += 1
    assert creator.due("fz.keys")


def test_a_forbidden_topic_is_reported_once_with_the_command_that_creates_it(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[str]] = []

    def refuse(config: Mapping[str, Any], specs: Sequence[TopicSpec], **_: Any) -> Ensured:
        calls.append([s.name for s in specs])
        return Ensured(existing=["fz.reqs"] if "fz.reqs" in calls[-1] else [], forbidden=["fz.keys"])

    monkeypatch.setattr(topiccreator, "ensure_topics", refuse)
    caplog.set_level(logging.INFO, logger="kafkaratchet")
    creator = _creator(Clock())
    assert creator.ensure(["fz.keys", "fz.reqs"]) == ["fz.reqs"]
    assert creator.ensure(["fz.keys"]) == []
    assert calls == [["fz.keys", "fz.reqs"], ["fz.keys"]]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "one ERROR per missing topic, not one per attempt"
    line = errors[0].getMessage()
    assert "fz.keys" in line and "may not create it" in line
    assert "kafkaratchet topics create --config NODE.config --root fz" in line
    assert creator.missing == {"fz.keys": "it does not exist and this node's principal may not create it"}
    creator.found("fz.keys")
    assert creator.missing == {}


def test_a_failed_creation_names_the_reason_and_a_client_error_is_weather(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(topiccreator, "ensure_topics",
                        lambda config, specs, **_: Ensured(failed={"chains": "PolicyViolationError: no"}))
    creator = _creator(Clock())
    assert creator.ensure(["chains"]) == []
    assert creator.missing == {"chains": "it does not exist and creating it failed (PolicyViolationError: no)"}
    assert "--trust" in caplog.text

    def unreachable(config: Mapping[str, Any], specs: Sequence[TopicSpec], **_: Any) -> Ensured:
        raise OSError("no route to broker")

    monkeypatch.setattr(topiccreator, "ensure_topics", unreachable)
    other = _creator(Clock())
    assert other.ensure(["fz.keys"]) == [] and other.missing == {}, "tried again after the backoff, not reported"


def test_no_cluster_named_means_no_creation() -> None:
    creator = TopicCreator({}, NodeSettings())
    assert not creator.enabled
    assert creator.ensure(["fz.keys"]) == [] and "fz.keys" in creator.missing


def test_specs_follow_the_topic_kind() -> None:
    creator = _creator(Clock())
    trust = creator.spec("denylist")
    assert dict(trust.configs) == dict(TRUST_TOPIC_CONFIGS) and trust.partitions == 1
    for topic in ("fz.reqs", "fz.keys", "fz.subs"):
        assert dict(creator.spec(topic).configs) == dict(EXCHANGE_TOPIC_CONFIGS)
    assert creator.spec("fz.data") == TopicSpec("fz.data")


def test_the_node_says_which_topics_are_missing_and_why(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)  # stand-in clients: no topic exists, none is created
    assert crypto.missing_topics() == {}
    crypto.exchange.follow_management_topics()
    assert not crypto.wait_ready(0)
    missing = crypto.missing_topics()
    assert set(missing) == {"chains", "allowlist", "denylist"}
    assert all("does not exist" in why for why in missing.values())
    missing.clear()
    assert crypto.missing_topics(), "a copy: the caller cannot change the node's view"
    crypto.exchange.subscriptions.creator.found("chains")  # type: ignore[union-attr]
    assert set(crypto.missing_topics()) == {"allowlist", "denylist"}
