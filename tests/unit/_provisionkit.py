"""Helpers shared by the provisioning tests (unit and integration); holds no test itself.

Argon2id at the "moderate" limits costs about a second per call, so the tests
share one in-memory memo of (password, salt, limits) -> key for the whole
session: every distinct password is still derived for real, once; nothing is
cached on disk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provision import cli, inputs, rootkey
from provision import password as pw

#: the derivation vector's password doubles as the tests' root password, so it is derived once
ROOT_PW = "correct horse battery staple"
PROV_PW = "provisioning password 42"
#: a second root password: a "mistyped" one in refusal tests, another organisation's in trust tests
OTHER_PW = "a different root password"

_DERIVED: dict[tuple[bytes, bytes, int, int], bytes] = {}


@pytest.fixture(autouse=True, scope="module")
def argon2_once_per_password() -> Iterator[None]:
    """Autouse in every module that imports it: each (password, salt) pair costs one Argon2id run."""
    real = pw.derive_key

    def memo(password: bytes, salt: bytes, *, opslimit: int = pw.OPSLIMIT, memlimit: int = pw.MEMLIMIT) -> bytes:
        slot = (password, salt, opslimit, memlimit)
        if slot not in _DERIVED:
            _DERIVED[slot] = real(password, salt, opslimit=opslimit, memlimit=memlimit)
        return _DERIVED[slot]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pw, "derive_key", memo)
        patch.setattr(rootkey, "derive_key", memo)
        yield


@pytest.fixture(autouse=True)
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autouse in every module that imports it: passwords come from the test, never from the environment."""
    monkeypatch.delenv(inputs.ROOT_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(inputs.PROVISIONING_PASSWORD_ENV, raising=False)


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """The CLI in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def snapshot(*roots: Path) -> dict[str, Any]:
    """Every path under ``roots`` with its bytes, mode and modification time: "nothing changed" made exact."""
    state: dict[str, Any] = {}
    for root in roots:
        if not root.exists():
            state[str(root)] = None
            continue
        for path in sorted([root, *root.rglob("*")]):
            info = path.lstat()
            state[str(path)] = (path.read_bytes() if path.is_file() else b"dir", info.st_mode, info.st_mtime_ns)
    return state


def assert_refused(result: tuple[int, str, str], fragment: str) -> None:
    """Exit status 2 and exactly one line on stderr, the tool's error line, containing ``fragment``."""
    code, _, err = result
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1, lines
    assert lines[0].startswith("kafkaratchet-provision: error: "), lines
    assert fragment in lines[0], lines[0]


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
