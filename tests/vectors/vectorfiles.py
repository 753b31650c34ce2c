"""What every vector generator does with its output: write the files, or with ``--check`` compare them.

Generators import this as ``vectorfiles`` (run as scripts, their directory is on ``sys.path``; the tests
load them through ``tests/unit/_vectors.py``, which puts it there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(directory: Path, renders: Mapping[str, Callable[[], str]], argv: Sequence[str]) -> int:
    """Write each file's rendered text, or with ``--check`` in ``argv`` exit 1 naming every file that differs."""
    check = "--check" in argv
    status = 0
    for name, render in renders.items():
        text = render()
        path = directory / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                sys.stderr.write(f"{name} differs from the generator\n")
                status = 1
        else:
            path.write_text(text, encoding="utf-8")
    return status
