"""The exception hierarchy: every failure kafkaratchet raises on purpose is a
:class:`KafkaRatchetError`, with one subclass per kind a caller may want to catch.

Messages never carry secret material: they name what failed, not the bytes.
"""

from __future__ import annotations

__all__ = [
    "KafkaRatchetError",
    "KafkaCryptoError",
    "ConfigError",
    "FormatError",
    "NotARecordError",
    "UnsupportedVersionError",
    "CryptoError",
    "DecryptionError",
    "SignatureError",
    "ChainError",
    "RatchetError",
    "KeyExchangeError",
    "KafkaCryptoMessageError",
    "ProvisioningError",
    "BrokerError",
]


class KafkaRatchetError(Exception):
    """Root of every error kafkaratchet raises deliberately."""


#: kafkacrypto's name for the root error, so ``except KafkaCryptoError`` keeps working.
KafkaCryptoError = KafkaRatchetError


class ConfigError(KafkaRatchetError):
    """A configuration file, option or secret file is missing, unreadable or invalid."""


class FormatError(KafkaRatchetError):
    """Bytes from outside (broker, file, command line) do not parse as the expected format."""


class NotARecordError(FormatError):
    """The bytes are not a kafkaratchet sealed record (no magic byte, or too short)."""


class UnsupportedVersionError(FormatError):
    """A well-framed structure carries a format version this code does not know."""


class CryptoError(KafkaRatchetError):
    """A cryptographic check failed."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed: wrong key, wrong topic or role, or tampered bytes."""


class SignatureError(CryptoError):
    """A signature does not verify under the claimed public key."""


class ChainError(CryptoError):
    """A chain of certificates does not validate; ``reason`` says which rule failed."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class RatchetError(KafkaRatchetError):
    """The ratchet seed file is missing, corrupt, or could not be replaced durably."""


class KeyExchangeError(KafkaRatchetError):
    """A key request or answer is invalid, stale, replayed, or not for us."""


class KafkaCryptoMessageError(KafkaRatchetError):
    """A message was asked for its cleartext but could not be decrypted."""


class ProvisioningError(KafkaRatchetError):
    """The provisioning tool was given input it cannot act on."""


class BrokerError(KafkaRatchetError):
    """The embedded broker could not be found or started."""
