"""Durable, atomic replacement of files, secret ones at mode 0600.

The sequence is the one a crash cannot corrupt: write a temp file in the same
directory (created 0600 from the first byte), fsync it, rename it over the
target, fsync the directory. A failure at any step removes the temp file, so no
copy of a secret is ever left behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

from kafkaratchet.errors import ConfigError

__all__ = ["write_atomic", "read_secret", "fsync_directory", "remove_stale_temps"]

_TEMP_SUFFIX = ".kr-tmp"


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably, leaving no temp file on failure."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    temp = directory / f".{target.name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(directory)


def read_secret(path: str | os.PathLike[str], *, max_size: int = 1 << 20) -> bytes:
    """Read a secret file, refusing one that others can read or that is absurdly large."""
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        raise ConfigError(f"secret file {target} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot stat secret file {target}: {exc.strerror}") from None
    if os.name == "posix" and info.st_mode & 0o077:
        raise ConfigError(
            f"secret file {target} is readable by others (mode {info.st_mode & 0o777:o}); chmod 600 it"
        )
    if info.st_size > max_size:
        raise ConfigError(f"secret file {target} is larger than {max_size} bytes")
    try:
        return target.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {target}: {exc.strerror}") from None


def remove_stale_temps(directory: str | os.PathLike[str], names: Iterable[str], *, older_than: float = 60.0) -> int:
    """Delete temp files that a write killed before its rename left behind for ``names``.

    They may hold a secret that has since been replaced or erased (an old seed, an
    expired key), so a node removes them at start. Only files older than
    ``older_than`` seconds go: a write in flight right now is left alone.
    """
    removed = 0
    cutoff = time.time() - older_than
    base = Path(directory)
    for name in names:
        for temp in base.glob(f".{glob.escape(name)}.*{_TEMP_SUFFIX}"):
            try:
                if temp.is_file() and not temp.is_symlink() and temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except OSError:
                continue
    return removed
