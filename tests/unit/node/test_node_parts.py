"""The node's parts, each without the others' threads: the serdes contract, the key waiter's shared
failure map under many deserializer threads, and the exchange loop's handlers called with no thread
and no broker."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from kafkaratchet import KafkaCrypto
from kafkaratchet.node import RecordOpener, RecordSealer
from kafkaratchet.node.message import KafkaCryptoMessage
from kafkaratchet.node.serdes import CryptoDeserializer, CryptoSerializer, key_serializer, value_deserializer
from kafkaratchet.node.waiter import MAX_FAILED_SLOTS
from kafkaratchet.protocol.records import Role, Sealer, key_id_of
from tests.unit._fuzzkit import make_world, start_stub_node

WORLD = make_world()


def test_the_parts_conform_to_the_serdes_contract(tmp_path: Path) -> None:
    crypto = start_stub_node(tmp_path / "node", WORLD)
    sealer: RecordSealer = crypto.sealers  # the type checker's conformance check (Go's `var _ Recipient`)
    opener: RecordOpener = crypto.waiter
    serializer = key_serializer(sealer, name="n")
    deserializer = value_deserializer(opener, 0.0)
    assert isinstance(serializer, CryptoSerializer) and isinstance(deserializer, CryptoDeserializer)
    record = crypto.getValueSerializer().serialize("fz.a", None, b"hello")
    assert deserializer.deserialize("fz.a", None, record).getMessage() == b"hello"
    assert repr(crypto.getKeySerializer()) == f"CryptoSerializer(key, node={crypto.node_id!r})"
    assert repr(serializer) == "CryptoSerializer(key, node='n')"
    assert kafka_names_delegate(crypto)


def kafka_names_delegate(crypto: KafkaCrypto) -> bool:
    """kafkacrypto's getter names hand out serdes bound to the node's parts."""
    deserializer = crypto.getValueDeserializer(3, 0.5)
    return deserializer.wait == 1.5 and crypto.getKeyDeserializer(0, 0).wait == 0.0


def test_many_deserializer_threads_share_the_failure_backoff(tmp_path: Path) -> None:
    """Missing keys on one node from several deserializer threads at once, far past the failure map's
    bound: no deserializer raises, every record comes back retryable, and the map stays bounded.
    Guards KeyWaiter's lock: without it, two threads evicting at once pop the same oldest slot
    (KeyError) or one inserts while another iterates (RuntimeError), inside a deserializer."""
    crypto = start_stub_node(tmp_path / "node", WORLD)
    template = Sealer(b"\x00" * 8, b"\x01" * 32, "fz.a", Role.VALUE).seal(b"x")
    threads, per_thread = 8, 1_500
    errors: list[BaseException] = []
    results: list[int] = []
    start = threading.Barrier(threads)

    def consume() -> None:
        deserializer = crypto.getValueDeserializer(1, 1e-5)
        retryable = 0
        start.wait()
        try:
            for _ in range(per_thread):
                record = template[:2] + os.urandom(8) + template[10:]
                message = deserializer.deserialize("fz.a", None, record)
                assert isinstance(message, KafkaCryptoMessage) and key_id_of(record) == record[2:10]
                retryable += message.isPossiblyDecryptable() and not message.isCleartext(retry=False)
        except BaseException as exc:  # noqa: BLE001 - any escape from a deserializer fails the test
            errors.append(exc)
        results.append(retryable)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race needs an unlucky switch
    try:
        workers = [threading.Thread(target=consume) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        sys.setswitchinterval(switch)
    assert not errors, f"a deserializer raised: {errors[0]!r}"
    assert sum(results) == threads * per_thread, "every record without its key is returned retryable"
    assert crypto.waiter.failed_slots() == MAX_FAILED_SLOTS


def test_exchange_handlers_run_without_a_thread_or_a_broker(tmp_path: Path) -> None:
    """What the sealers and the waiter ask of the loop is a command; the test plays the loop's thread."""
    crypto = start_stub_node(tmp_path / "node", WORLD)
    loop, state = crypto.exchange, crypto.exchange.state
    assert loop.thread.ident is None, "the stub node's loop never started"

    def drain() -> list[tuple[str, Any]]:
        commands = []
        while not loop.commands.empty():
            commands.append(loop.commands.get_nowait())
            loop.handle(*commands[-1])
        return commands

    sealed = crypto.sealers.seal("fz.a", Role.VALUE, b"x")
    assert drain() == [("produce", "fz")]
    assert state.produce_roots == {"fz"} and "fz.reqs" in state.unresolved, "no broker: R.reqs waits for later"
    missing = sealed[:2] + b"\x42" * 8 + sealed[10:]
    message = crypto.waiter.open("fz.a", Role.VALUE, missing, wait=0.0, retrier=None)
    assert message.isPossiblyDecryptable() and not message.isCleartext()
    assert drain() == [("want", ("fz", b"\x42" * 8))]
    assert set(state.wants["fz"].key_ids) == {b"\x42" * 8}
    loop.requests.send_due(state)  # R.keys cannot be pinned without a broker: no request is sent ...
    assert not state.pending and not loop.kp.sent
    assert state.wants["fz"].next_request > 0  # ... and it is tried again later
    own = crypto.sealers.current_keys()
    assert [k.key_id for k in own] == [key_id_of(sealed)]
    state.bite_roots.add("fz")
    epoch = crypto.epoch
    loop.bite()
    assert crypto.epoch == epoch + 1 and not state.bite_roots and not crypto.sealers.current_keys()
