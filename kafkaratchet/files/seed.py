"""The ratchet's seed file (``<node>.seed``) and the current epoch: the stateful half of the ratchet.

The pure half (stepping, key derivation, the seed-file codec) is :mod:`kafkaratchet.protocol.ratchet`.
The new epoch is written durably to the seed file *before* it becomes current in
memory, so no key of an epoch exists that a crash could make the node derive
again differently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import nacl.utils

from kafkaratchet.errors import ConfigError, RatchetError
from kafkaratchet.files.secretfile import read_secret, write_atomic
from kafkaratchet.protocol.ratchet import (
    _MAX_EPOCH,
    KEY_SIZE,
    SEED_FILE_SIZE,
    DataKey,
    decode_seed,
    derive_data_key,
    encode_seed,
    step_secret,
)

__all__ = ["Ratchet"]

log = logging.getLogger(__name__)


class Ratchet:
    """The seed file and the current epoch; thread-safe.

    ``key_for(root)`` is the hot path for sealing: keys are cached per epoch.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._epoch, self._secret = decode_seed(self._read())
        self._keys: dict[str, DataKey] = {}
        self._since = self._mtime()

    def _read(self) -> bytes:
        try:
            return read_secret(self.path, max_size=SEED_FILE_SIZE)
        except ConfigError as exc:
            raise RatchetError(str(exc)) from None

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return time.time()

    @property
    def epoch_started(self) -> float:
        """When the current epoch began (the seed file's modification time)."""
        return self._since

    @classmethod
    def create(cls, path: str | os.PathLike[str], *, exist_ok: bool = False) -> Ratchet:
        """A new seed file with a random secret at epoch 0 (refuses to overwrite one)."""
        target = Path(path)
        if target.exists():
            if exist_ok:
                return cls(target)
            raise RatchetError(f"seed file {target} already exists")
        write_atomic(target, encode_seed(0, nacl.utils.random(KEY_SIZE)))
        log.info("created ratchet seed file %s", target)
        return cls(target)

    @property
    def epoch(self) -> int:
        return self._epoch

    def key_for(self, root: str) -> DataKey:
        key = self._keys.get(root)
        if key is None:
            with self._lock:
                key = self._keys.get(root)
                if key is None:
                    key = derive_data_key(self._secret, root, self._since)
                    self._keys[root] = key
        return key

    def step(self) -> int:
        """Advance one epoch. The file is durable before the new keys can be derived."""
        with self._lock:
            if self._epoch >= _MAX_EPOCH:
                raise RatchetError("ratchet epoch space exhausted")
            secret = step_secret(self._secret, nacl.utils.random(KEY_SIZE))
            epoch = self._epoch + 1
            try:
                write_atomic(self.path, encode_seed(epoch, secret))
            except OSError as exc:
                raise RatchetError(f"cannot persist ratchet step to {self.path}: {exc.strerror}") from None
            self._epoch, self._secret = epoch, secret
            self._keys = {}
            self._since = self._mtime()
        log.info("ratchet stepped to epoch %d", epoch)
        return epoch

    def __repr__(self) -> str:
        return f"Ratchet(path={str(self.path)!r}, epoch={self._epoch})"
