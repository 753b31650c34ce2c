"""KafkaCryptoController: one place that decides which subscribers may have keys.

Nodes whose chains only allow ``subscribe`` publish their key requests on
``R.subs``. A controller follows every ``R.subs`` (a pattern subscription, so new
roots are picked up while it runs), judges each request against its own trust
lists, re-signs the ones it allows with its ``controller`` chain and forwards them
to ``R.reqs``, where producers answer them as usual, encrypting to the
subscriber's ephemeral keys: the controller never sees a data key.

A request's offset is committed only after the broker acknowledged the forward,
so a crash loses no request; several controllers in one consumer group share the
partitions. Every decision is one line on the ``kafkaratchet.audit`` logger.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from typing import Any

from . import keyexchange as kx
from .certs import Usage
from .credentials import Credentials
from .errors import ConfigError, KafkaRatchetError, KeyExchangeError
from .identity import fingerprint
from .settings import NodeSettings
from .store import KafkaCryptoStore

__all__ = ["KafkaCryptoController"]

log = logging.getLogger(__name__)
audit = logging.getLogger("kafkaratchet.audit")

#: fault injection for tests only: "kill-before-forward" makes the process SIGKILL itself after reading a
#: request and before forwarding it, to show that no request is lost
_FAULT_ENV = "KAFKARATCHET_FAULT"


class KafkaCryptoController:
    """``KafkaCryptoController(nodeID, kp, kc, config=None)``; ``kc`` should have a ``group_id`` and
    ``enable_auto_commit=False`` (several controllers in one group share the work)."""

    def __init__(self, nodeID: str | None, kp: Any, kc: Any,  # noqa: N803 - kafkacrypto's name
                 config: KafkaCryptoStore | str | os.PathLike[str] | None = None) -> None:
        self.store = KafkaCryptoStore.open(nodeID, config)
        self.node_id = self.store.node_id
        self.settings = NodeSettings.from_section(self.store.load_section("crypto"))
        self.credentials = Credentials(self.store, clock_skew=self.settings.clock_skew)
        if self.credentials.any_chain(Usage.CONTROLLER) is None:
            raise ConfigError(f"node {self.node_id} has no chain with the controller usage")
        self._kp = kp
        self._kc = kc
        self._mgmt: Any = None
        self._fault = os.environ.get(_FAULT_ENV, "")
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.forwarded = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._run, name=f"kafkaratchet-controller-{self.node_id}",
                                        daemon=True)
        self._thread.start()
        log.info("controller %s (%s) started", self.node_id, self.credentials.fingerprint)

    # ------------------------------------------------------------------ lifecycle
    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self._ready.wait(timeout)

    def assignment(self) -> set[Any]:
        """The ``R.subs`` partitions the group currently gives this controller."""
        return set(self._kc.assignment() or ())

    def close(self, timeout: float = 4.0) -> None:
        """Stop judging; the group rebalances the partitions to the other controllers."""
        self._stop.set()
        self._thread.join(timeout)
        for client in (self._mgmt,):
            if client is not None:
                client.close()
        log.info("controller %s stopped (%d forwarded, %d refused)", self.node_id, self.forwarded, self.refused)

    def __enter__(self) -> KafkaCryptoController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KafkaCryptoController(node_id={self.node_id!r}, fingerprint={self.credentials.fingerprint})"

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        suffix = re.escape(self.settings.subs_suffix)
        while not self._stop.is_set():
            try:
                if self._mgmt is None:
                    self._mgmt = self._follow_management()
                    self._kc.subscribe(pattern=f"^.+{suffix}$")
                    self._ready.set()
                self._poll_management()
                for tp, records in self._kc.poll(timeout_ms=200).items():
                    self._handle_batch(tp, records)
            except Exception as exc:  # the loop must survive broker weather; nothing is committed on failure
                log.warning("controller %s: %s: %s (continuing)", self.node_id, type(exc).__name__, exc)
                self._stop.wait(0.5)

    def _follow_management(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**self.store.get_kafka_config("consumer", extra="crypto"))
        tps = []
        for topic in (self.settings.chains_topic, self.settings.allowlist_topic, self.settings.denylist_topic):
            partitions = consumer.partitions_for_topic(topic) or self._kp.partitions_for(topic)
            tps += [TopicPartition(topic, p) for p in sorted(partitions or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        return consumer

    def _poll_management(self) -> None:
        for tp, records in self._mgmt.poll(timeout_ms=0).items():
            for record in records:
                if record.value is None:
                    continue
                try:
                    if tp.topic == self.settings.chains_topic:
                        self.credentials.offer_chain(record.value)
                    else:
                        kind = "allow" if tp.topic == self.settings.allowlist_topic else "deny"
                        self.credentials.apply_trust_update(kind, record.value)
                except KafkaRatchetError as exc:
                    log.info("ignored a message on %s: %s", tp.topic, exc)

    def _handle_batch(self, tp: Any, records: list[Any]) -> None:
        from kafka.structs import OffsetAndMetadata

        futures = [f for f in (self._judge(tp.topic, r.value) for r in records) if f is not None]
        try:
            for future in futures:
                future.get(timeout=10)
        except Exception as exc:  # kafka-python's send errors: re-read this batch rather than lose it
            log.warning("forwarding failed (%s); requests will be judged again", exc)
            self._kc.seek(tp, records[0].offset)
            return
        self._kc.commit({tp: OffsetAndMetadata(records[-1].offset + 1, "", -1)})

    def _judge(self, topic: str, value: bytes | None) -> Any:
        """Forward an allowed request (returns the send future), or log the refusal (returns None)."""
        requester = "unknown"
        root = topic[: -len(self.settings.subs_suffix)] if topic.endswith(self.settings.subs_suffix) else topic
        request_id = "-"
        try:
            if value is None:
                raise KeyExchangeError("empty record")
            message = kx.parse(value)
            if not isinstance(message, kx.KeyRequest):
                raise KeyExchangeError(f"a {type(message).__name__} on a subscription topic")
            requester, request_id = fingerprint(message.signer), message.request_id.hex()[:8]
            if message.root != root:
                raise KeyExchangeError(f"request for root {message.root!r} on {topic}")
            kx.verify_subscription(message, self.credentials.trust, max_age=self.settings.request_max_age)
            mine = self.credentials.chain_for(Usage.CONTROLLER, root)
            if mine is None:
                raise KeyExchangeError("this controller has no valid chain with controller usage for the root")
            forwarded = kx.forward_request(self.credentials.identity, mine[0], message)
        except KafkaRatchetError as exc:
            self.refused += 1
            audit.info("requester=%s root=%s request=%s decision=refused reason=%s", requester, root, request_id,
                       str(exc).replace("\n", " "))
            return None
        if self._fault == "kill-before-forward":
            os.kill(os.getpid(), signal.SIGKILL)
        self.forwarded += 1
        audit.info("requester=%s root=%s request=%s decision=forwarded", requester, root, request_id)
        return self._kp.send(root + self.settings.reqs_suffix, value=forwarded.raw)
