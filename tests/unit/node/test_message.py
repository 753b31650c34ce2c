"""KafkaCryptoMessage semantics kafkacrypto users rely on."""

from __future__ import annotations

import pytest

from kafkaratchet.errors import KafkaCryptoMessageError
from kafkaratchet.node.message import KafkaCryptoMessage


class _LaterKey:
    def __init__(self) -> None:
        self.available = False
        self.calls = 0

    def retry(self, message: KafkaCryptoMessage) -> bytes | None:
        self.calls += 1
        return b"plain" if self.available else None


def test_cleartext_message() -> None:
    msg = KafkaCryptoMessage.of_cleartext(b"hi", topic="t")
    assert msg.isCleartext() and msg.getMessage() == b"hi" and bytes(msg) == b"hi"
    assert not msg.isPossiblyDecryptable()


def test_pending_message_retries_lazily_through_its_deserializer() -> None:
    retrier = _LaterKey()
    msg = KafkaCryptoMessage(b"\xc1\x01cipher", topic="t", retrier=retrier, decryptable=True)
    assert not msg.isCleartext(retry=False) and retrier.calls == 0
    assert not msg.isCleartext() and retrier.calls == 1
    assert bytes(msg) == b"\xc1\x01cipher" and msg.isPossiblyDecryptable()
    with pytest.raises(KafkaCryptoMessageError, match="not available yet"):
        msg.getMessage()
    retrier.available = True
    assert msg.getMessage() == b"plain" and bytes(msg) == b"plain" and msg.toWire() == b"\xc1\x01cipher"
    assert not msg.isPossiblyDecryptable()
    calls = retrier.calls
    assert msg.isCleartext() and retrier.calls == calls


def test_undecryptable_message_never_retries() -> None:
    retrier = _LaterKey()
    retrier.available = True
    msg = KafkaCryptoMessage(b"not ours", topic="t", retrier=retrier, decryptable=False)
    assert not msg.isCleartext() and retrier.calls == 0
    with pytest.raises(KafkaCryptoMessageError, match="not decryptable"):
        msg.getMessage()


def test_repr_shows_no_content() -> None:
    msg = KafkaCryptoMessage.of_cleartext(b"top-secret-payload")
    assert "top-secret" not in repr(msg)
