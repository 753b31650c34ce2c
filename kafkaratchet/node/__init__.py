"""The kafkaratchet node, split along its threads.

* :class:`KafkaCrypto` (``facade``): what the application holds, kafkacrypto's API.
* :class:`Sealers` (``sealers``): producer threads seal through it.
* :class:`KeyWaiter` (``waiter``): consumer threads open through it, waiting a bounded time for keys.
* :class:`ExchangeLoop` (``exchange``): the one background thread; it alone holds an
  :class:`ExchangeState` (``state``), and its handlers (``keytrade``, ``subscriptions``) take that state.
* :class:`RecordSealer` and :class:`RecordOpener` (``contract``): all the serializers know of a node.
"""

from __future__ import annotations

from .contract import RecordOpener, RecordSealer
from .exchange import ExchangeLoop
from .facade import KafkaCrypto
from .sealers import Sealers
from .state import ExchangeState
from .waiter import KeyWaiter

__all__ = ["KafkaCrypto", "Sealers", "KeyWaiter", "ExchangeLoop", "ExchangeState", "RecordSealer",
           "RecordOpener"]
