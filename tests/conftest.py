"""Shared fixtures: one real Kafka-protocol broker for the whole session.

When ``KAFKA_BOOTSTRAP_SERVERS`` is set, that cluster is used instead of the
embedded Tansu broker, so the same suite runs against Apache Kafka.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from kafkaratchet import _aead
from kafkaratchet.errors import CryptoError
from kafkaratchet.tools.broker import EmbeddedBroker

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def unique_root() -> str:
    """A root topic no other test uses, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module", params=_aead.ENGINES)
def aead_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's tests once per AEAD engine (``pytestmark = pytest.mark.usefixtures("aead_engine")``).

    Module-scoped so that Hypothesis tests may use it; sealers built meanwhile keep the engine.
    """
    try:
        _aead.engine(request.param)  # built and self-tested once
    except CryptoError as e:  # e.g. no libsodium loadable through ctypes on this platform
        pytest.skip(f"AEAD engine {request.param} unavailable here: {e}")
    with _aead.use_engine(request.param) as engine:
        assert engine.name == request.param
        yield request.param
