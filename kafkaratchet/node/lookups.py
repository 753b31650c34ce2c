"""The exchange loop's metadata and offset lookups, on a kafka-python admin client of their own.

On the key-exchange consumer itself a lookup costs twice. It queues at the broker
(one request at a time per connection) behind that consumer's fetches, which an
idle node lets wait for seconds (:mod:`.kafkawakeup`). And a topic the consumer
does not know yet makes it ask for the metadata of *every* topic in the cluster
(``KafkaConsumer.partitions_for_topic``): 0.3 s of parsing at 1,700 topics, more
on a big cluster, on the path of a consumer's first key request. This client
never fetches, asks for the one topic it needs, and tracks none (a missing topic
costs no refresh: :class:`~.topiccreator.TopicCreator` paces the lookups).

:class:`AdminLookups` answers the four lookup calls of
:class:`~.contract.ExchangeConsumer` with public ``KafkaAdminClient`` calls
(``describe_topics``, ``list_partition_offsets``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["AdminLookups", "TopicLookups", "admin_lookups"]

log = logging.getLogger(__name__)

#: a partition whose leader is not known yet (a topic created a moment ago) is asked again for this long
_LEADER_WAIT_S = 5.0
_LEADER_RETRY_S = 0.1


class TopicLookups(Protocol):
    """The lookups the exchange loop makes: the four such calls of the key-exchange consumer."""

    def partitions_for_topic(self, topic: str) -> Any: ...

    def beginning_offsets(self, partitions: list[Any]) -> Mapping[Any, int]: ...

    def end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]: ...

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> Mapping[Any, Any]: ...


class AdminLookups:
    """Partitions and offsets of topics, through ``admin`` (a ``KafkaAdminClient``); for one thread."""

    def __init__(self, admin: Any) -> None:
        self.admin = admin

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The topic's partition ids, or None if it does not exist (or is not visible to this principal)."""
        for described in self.admin.describe_topics([topic]):
            if described.get("name") == topic and not described.get("error_code"):
                return {int(p["partition_index"]) for p in described.get("partitions") or ()} or None
        return None

    def beginning_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        from kafka.admin import OffsetSpec

        return {tp: found.offset for tp, found in self._offsets({tp: OffsetSpec.EARLIEST for tp in partitions}).items()}

    def end_offsets(self, partitions: list[Any]) -> Mapping[Any, int]:
        from kafka.admin import OffsetSpec

        return {tp: found.offset for tp, found in self._offsets({tp: OffsetSpec.LATEST for tp in partitions}).items()}

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> Mapping[Any, Any]:
        """As the consumer's: the first offset at or after each time, None where no record is that recent."""
        return {tp: (found if found.offset >= 0 else None) for tp, found in self._offsets(dict(timestamps)).items()}

    def _offsets(self, specs: dict[Any, Any]) -> dict[Any, Any]:
        from kafka.errors import KafkaError

        deadline = time.monotonic() + _LEADER_WAIT_S
        while True:
            try:
                return dict(self.admin.list_partition_offsets(specs))
            except KafkaError as exc:  # a topic just created: no leader, or not in every broker's metadata yet
                if not getattr(exc, "retriable", False) or time.monotonic() >= deadline:
                    raise
                log.debug("offset lookup retried: %s: %s", type(exc).__name__, exc)
                time.sleep(_LEADER_RETRY_S)

    def close(self) -> None:
        self.admin.close()


def admin_lookups(consumer_config: Mapping[str, Any]) -> AdminLookups:
    """An :class:`AdminLookups` on the key-exchange consumer's own settings (same cluster, same credentials;
    timeouts capped at 10 s). Raises whatever building the client raises (no broker within that time)."""
    from kafka import KafkaAdminClient

    from kafkaratchet.node.trusttopics import _REDACT, _admin_config

    logging.getLogger("kafka.admin.client").addFilter(_REDACT)  # it logs its settings, passwords included
    settings = _admin_config(consumer_config, KafkaAdminClient.DEFAULT_CONFIG)
    settings["client_id"] = f"{consumer_config.get('client_id') or 'kafkaratchet'}-lookups"
    return AdminLookups(KafkaAdminClient(**settings))
