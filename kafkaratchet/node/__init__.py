"""The kafkaratchet node, split along its threads.

* :class:`KafkaCrypto` (``facade``): what the application holds, kafkacrypto's API.
* :class:`Sealers` (``sealers``): producer threads seal through it.
* :class:`KeyWaiter` (``waiter``): consumer threads open through it, waiting a bounded time for keys.
* :class:`ExchangeLoop` (``exchange``): the one background thread; it alone holds an
  :class:`ExchangeState` (``state``), and its handlers (``keytrade``, ``subscriptions``) take that state.
* :class:`RecordSealer` and :class:`RecordOpener` (``contract``): all the serializers know of a node.
* ``serdes``, ``message``, ``clients``, ``confluent``: what the application's Kafka clients use;
  ``trusttopics``: the trust topics' record keys and configs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KafkaCrypto": "facade", "Sealers": "sealers", "KeyWaiter": "waiter", "ExchangeLoop": "exchange",
    "ExchangeState": "state", "RecordSealer": "contract", "RecordOpener": "contract",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Imported on first use, so ``kafkaratchet.node.serdes`` does not pull in the whole node."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kafkaratchet.node' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
