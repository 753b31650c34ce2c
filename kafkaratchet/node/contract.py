"""The contract between the node and the serializers, declared once.

A serializer needs something that seals a record for a topic and role; a
deserializer needs something that opens one (waiting a bounded time for a
missing key) and that can try again later without waiting. These two small
interfaces are all ``serdes`` and ``confluent`` know of the node, so another
client adapter is a new file, not a new branch in the node.
"""

from __future__ import annotations

from typing import Protocol

from ..message import KafkaCryptoMessage, Retrier
from ..sealing import Role

__all__ = ["RecordSealer", "RecordOpener"]


class RecordSealer(Protocol):
    def seal(self, topic: str, role: Role, data: bytes) -> bytes:
        """The sealed record for ``data`` on ``topic`` as ``role`` (never touches the network)."""
        ...


class RecordOpener(Protocol):
    def open(self, topic: str, role: Role, data: bytes, *, wait: float,
             retrier: Retrier | None) -> KafkaCryptoMessage:
        """A cleartext message, or a not-cleartext one that ``retrier`` can retry; waits at most ``wait`` s."""
        ...

    def try_open(self, topic: str, role: Role, data: bytes) -> bytes | None:
        """The cleartext if the key is known now (never waits); DecryptionError if it cannot be."""
        ...
