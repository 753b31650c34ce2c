"""What a kafkaratchet deserializer returns: a record half, decrypted or not yet.

A message that could not be opened keeps its raw bytes and a link to the
deserializer that produced it, so ``isCleartext()`` can try again later, once
the key has arrived, without the application re-reading the record.
"""

from __future__ import annotations

from typing import Protocol

from kafkaratchet.errors import KafkaCryptoMessageError

__all__ = ["KafkaCryptoMessage", "Retrier", "opened_message"]


class Retrier(Protocol):
    """What retries a not-yet-decrypted message: the deserializer that returned it."""

    def retry(self, message: KafkaCryptoMessage) -> bytes | None:
        """The cleartext if the key is now known (never waits), else None."""


class KafkaCryptoMessage:
    """kafkacrypto's message type: ``isCleartext()``, ``getMessage()``, ``bytes(msg)``."""

    __slots__ = ("_raw", "_cleartext", "topic", "_retrier", "_decryptable")

    def __init__(
        self,
        raw: bytes,
        *,
        cleartext: bytes | None = None,
        topic: str | None = None,
        retrier: Retrier | None = None,
        decryptable: bool = False,
    ) -> None:
        self._raw = raw
        self._cleartext = cleartext
        self.topic = topic
        self._retrier = retrier
        self._decryptable = decryptable and cleartext is None

    @classmethod
    def of_cleartext(cls, data: bytes, topic: str | None = None) -> KafkaCryptoMessage:
        """A message the application built itself; a serializer seals it."""
        return cls(data, cleartext=data, topic=topic)

    def isCleartext(self, retry: bool = True) -> bool:  # noqa: N802 - kafkacrypto's name
        if self._cleartext is None and retry and self._decryptable and self._retrier is not None:
            opened = self._retrier.retry(self)
            if opened is not None:
                self._cleartext = opened
                self._decryptable = False
        return self._cleartext is not None

    def isPossiblyDecryptable(self) -> bool:  # noqa: N802 - kafkacrypto's name
        """False once decrypted, or when no key could ever open it (not ours, or tampered)."""
        return self._decryptable

    def getMessage(self, retry: bool = True) -> bytes:  # noqa: N802 - kafkacrypto's name
        if not self.isCleartext(retry=retry):
            raise KafkaCryptoMessageError(
                f"message on {self.topic!r} is not decrypted"
                + (" (key not available yet)" if self._decryptable else " (not decryptable)")
            )
        assert self._cleartext is not None
        return self._cleartext

    def toWire(self) -> bytes:  # noqa: N802 - kafkacrypto's name
        """The bytes as they travel: ciphertext for a received message."""
        return self._raw

    def mark_undecryptable(self) -> None:
        self._decryptable = False

    def __bytes__(self) -> bytes:
        return self._cleartext if self._cleartext is not None else self._raw

    def __len__(self) -> int:
        return len(bytes(self))

    def __repr__(self) -> str:
        state = "cleartext" if self._cleartext is not None else (
            "pending" if self._decryptable else "undecryptable")
        return f"KafkaCryptoMessage({state}, topic={self.topic!r}, {len(self._raw)} bytes)"


_new = object.__new__


def opened_message(raw: bytes, cleartext: bytes, topic: str) -> KafkaCryptoMessage:
    """``KafkaCryptoMessage(raw, cleartext=cleartext, topic=topic)`` at a third of the cost.

    The deserializer builds one per record; keyword-argument calls are its largest Python cost.
    """
    message = _new(KafkaCryptoMessage)
    message._raw = raw
    message._cleartext = cleartext
    message.topic = topic
    message._retrier = None
    message._decryptable = False
    return message
