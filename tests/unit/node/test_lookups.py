"""AdminLookups: the loop's partition and offset lookups on an admin client, answered as the consumer would."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import KafkaConnectionError, NodeNotReadyError, TopicAuthorizationFailedError
from kafka.structs import OffsetAndTimestamp

from kafkaratchet.node import lookups
from kafkaratchet.node.lookups import AdminLookups, TopicLookups

A0, A1 = TopicPartition("fz.keys", 0), TopicPartition("fz.keys", 1)


class FakeAdmin:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.described: list[list[str]] = []
        self.specs: list[dict[Any, Any]] = []
        self.failures = list(failures or ())
        self.closed = False

    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.described.append(list(topics))
        known = {"fz.keys": [{"partition_index": 1}, {"partition_index": 0}], "fz.empty": []}
        return [{"name": t, "error_code": 0 if t in known else 3, "partitions": known.get(t, [])} for t in topics]

    def list_partition_offsets(self, specs: dict[Any, Any]) -> dict[Any, OffsetAndTimestamp]:
        self.specs.append(dict(specs))
        if self.failures:
            raise self.failures.pop(0)
        out = {}
        for tp, spec in specs.items():
            offset = {OffsetSpec.EARLIEST: 3, OffsetSpec.LATEST: 70}.get(spec, -1 if tp.partition else 42)
            out[tp] = OffsetAndTimestamp(offset, -1, None)
        return out

    def close(self) -> None:
        self.closed = True


def test_partitions_of_one_topic_and_none_for_a_missing_one() -> None:
    admin = FakeAdmin()
    found = AdminLookups(admin)
    assert found.partitions_for_topic("fz.keys") == {0, 1}
    assert found.partitions_for_topic("fz.reqs") is None
    assert found.partitions_for_topic("fz.empty") is None
    assert admin.described == [["fz.keys"], ["fz.reqs"], ["fz.empty"]], "one topic per request, never all"


def test_offsets_as_the_consumer_gives_them() -> None:
    admin = FakeAdmin()
    found = AdminLookups(admin)
    assert found.beginning_offsets([A0, A1]) == {A0: 3, A1: 3}
    assert found.end_offsets([A0]) == {A0: 70}
    at = found.offsets_for_times({A0: 1_700_000_000_000, A1: 1_700_000_000_000})
    assert at[A0] is not None and at[A0].offset == 42
    assert at[A1] is None, "no record that recent: None, as KafkaConsumer.offsets_for_times says"
    assert admin.specs[0] == {A0: OffsetSpec.EARLIEST, A1: OffsetSpec.EARLIEST}


def test_a_partition_without_a_leader_yet_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookups, "_LEADER_RETRY_S", 0.0)
    admin = FakeAdmin([NodeNotReadyError("leader -1"), KafkaConnectionError("reconnecting")])
    assert AdminLookups(admin).end_offsets([A0]) == {A0: 70} and len(admin.specs) == 3
    refused = FakeAdmin([TopicAuthorizationFailedError("no Describe")])
    with pytest.raises(TopicAuthorizationFailedError):
        AdminLookups(refused).end_offsets([A0])
    assert len(refused.specs) == 1, "not retriable: raised at once"


def test_the_admin_client_offers_what_the_lookups_call() -> None:
    lookup: TopicLookups = AdminLookups(FakeAdmin())  # the type checker's conformance check
    assert lookup is not None
    assert "topics" in inspect.signature(KafkaAdminClient.describe_topics).parameters
    assert "topic_partition_specs" in inspect.signature(KafkaAdminClient.list_partition_offsets).parameters
    assert {"EARLIEST", "LATEST"} <= set(OffsetSpec.__members__)
