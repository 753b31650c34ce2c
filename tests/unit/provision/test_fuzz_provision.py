"""Fuzzing the provisioning tool's inputs: request and chain files, root key files, flag values, argv.

The tool's contract (provision/cli.py) is stricter than "a KafkaRatchetError": a refused input is
exit status 2 (or 1 for I/O) and one line on standard error, never a traceback. The command-line
fuzz checks exactly that, in-process, in a scratch directory, with Argon2id replaced by a cheap
stand-in (the KDF is not what is being fuzzed) and no terminal (so nothing can block on a prompt).
Skipped, with the reason printed, when the tool is not in the tree.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkaratchet.errors import KafkaRatchetError
from tests.unit._fuzzkit import NOW, budget, hostile, ident, make_world, mutated, outcome, scratch, seeds

formats = pytest.importorskip("provision.formats", reason="provision/ (the provisioning tool) is not in the tree yet")
inputs = pytest.importorskip("provision.inputs", reason="provision/inputs.py is not in the tree yet")
rootkey = pytest.importorskip("provision.rootkey", reason="provision/rootkey.py is not in the tree yet")
cli = pytest.importorskip("provision.cli", reason="provision/cli.py is not in the tree yet")
password = pytest.importorskip("provision.password", reason="provision/password.py is not in the tree yet")

__all__ = ["scratch"]

WORLD = make_world()
NODE = ident(60)
REQUEST = formats.NodeRequest("n1", "consumer", NODE.public_key, ("fz", "^fz-[0-9]+"), 0, 3600, NOW).encode(NODE)
CHAIN_FILE = formats.ChainFile("n1", WORLD.consumer_chain, WORLD.root_cert).encode()


def _cheap_kdf(password: bytes, salt: bytes, *, opslimit: int = 0, memlimit: int = 0) -> bytes:
    if len(salt) != 16:
        raise KafkaRatchetError("salt")
    return sodium.crypto_generichash_blake2b_salt_personal(password + salt, digest_size=32)


@contextlib.contextmanager
def _tool_sandbox(directory: Path) -> Iterator[None]:
    """cwd in ``directory``, no password variables, no terminal, a cheap KDF: then restore everything."""
    saved_cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(password, "derive_key", _cheap_kdf)
        patch.setattr(rootkey, "derive_key", _cheap_kdf)
        patch.setattr(inputs, "_terminal_available", lambda: False)
        patch.delenv(inputs.ROOT_PASSWORD_ENV, raising=False)
        patch.delenv(inputs.PROVISIONING_PASSWORD_ENV, raising=False)
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(saved_cwd)


@pytest.fixture(scope="module")
def root_key_file() -> bytes:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rootkey, "derive_key", _cheap_kdf)
        return bytes(rootkey.seal_root_key(ident(61), b"correct horse battery", created=NOW, opslimit=1,
                                           memlimit=8192))


@budget(2000)
@given(hostile(REQUEST, CHAIN_FILE))
def test_fuzz_request_file(data: bytes) -> None:
    result = outcome(formats.NodeRequest.decode, data)
    if not isinstance(result, KafkaRatchetError):
        assert result.public_key == NODE.public_key  # the signature binds the request to the key it names


@budget(2000)
@given(hostile(CHAIN_FILE, REQUEST))
def test_fuzz_chain_file(data: bytes) -> None:
    result = outcome(formats.ChainFile.decode, data)
    if not isinstance(result, KafkaRatchetError):
        result.root.verify_signature()


@budget(1500)
@given(st.data())
def test_fuzz_root_key_file(root_key_file: bytes, data: st.DataObject) -> None:
    blob = data.draw(st.one_of(mutated(root_key_file), st.binary(max_size=200), st.just(root_key_file)))
    peeked = outcome(rootkey.peek_root_key, blob)
    if isinstance(peeked, KafkaRatchetError):
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rootkey, "derive_key", _cheap_kdf)
        opened = outcome(rootkey.open_root_key, blob, b"correct horse battery")
    if not isinstance(opened, KafkaRatchetError):
        assert blob == root_key_file, "only the untouched file opens (every header byte is authenticated)"


_PARSERS = ["parse_node_id", "parse_role", "parse_pathlen", "parse_lifetime", "parse_bootstrap",
            "parse_fingerprint"]
_TEXTS = st.one_of(st.text(max_size=40), st.sampled_from(
    ["n1", " n1 ", "consumer", "-1", "0", "99999999999999999999999", "1e3", "host:0", "host:65536", "[::1]:9092",
     "a,b", ",", "abcd-efgh-ijkl-mnop", "ABCD-EFGH-IJKL-MNOP", "\x00", "٣", "n1.config", "." * 200, "^(", "fz.x"]))


@budget(1500)
@given(st.sampled_from(_PARSERS + ["parse_topics"]), _TEXTS)
def test_fuzz_flag_value_parsers(name: str, text: str) -> None:
    parse = getattr(inputs, name)
    result = outcome(parse, [text] if name == "parse_topics" else text)
    assert not isinstance(result, KafkaRatchetError) or type(result).__name__ == "ProvisioningError"


@budget(600)
@given(st.binary(max_size=300), st.sampled_from(["root password", "provisioning password"]))
def test_fuzz_password_files(scratch: Path, content: bytes, what: str) -> None:
    path = scratch / "pw.txt"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    text = outcome(inputs.read_password_file, path, what)
    if isinstance(text, str):
        outcome(password.password_bytes, text, what)


# --------------------------------------------------------------------------- the command line

_SAFE_PATHS = ["n1.request", "n1.chain", "root.key", "pw.txt", "bad.txt", "missing", "sub/x", "d", ".", "n1.config",
               "hostile.request", "hostile.chain", "hostile.key"]
_VALUES = ["n1", "consumer", "producer", "prodcon", "chainserver", "nope", "fz", "fz.x", "^fz-[0-9]+", "^(", "0", "-1",
           "1", "7", "99999999999", "3600", "x", "127.0.0.1:9092", "host", "abcd-efgh-ijkl-mnop", "", "é"]
# (no NUL: an operating system's argv cannot carry one)
_FLAGS = {
    "password": ["--node-id", "--role", "--topics", "--all-topics", "--pathlen", "--lifetime", "--bootstrap-servers",
                 "--dir", "--force", "--root-password-file", "--provisioning-password-file", "--root-fingerprint",
                 "--new-root"],
    "init-root": ["--out", "--root-password-file", "--force"],
    "request": ["--node-id", "--role", "--topics", "--all-topics", "--pathlen", "--lifetime", "--bootstrap-servers",
                "--dir", "--force", "--out", "--renew"],
    "sign": ["--root", "--request", "--role", "--topics", "--pathlen", "--lifetime", "--out", "--root-password-file",
             "--yes", "--force"],
    "install": ["--chain", "--dir", "--node-id", "--root-fingerprint", "--yes"],
}
_SWITCHES = {"--all-topics", "--force", "--new-root", "--renew", "--yes"}
_PATH_FLAGS = {"--dir", "--root-password-file", "--provisioning-password-file", "--out", "--root", "--request",
               "--chain"}


_TEMPLATES = [
    ["request", "--node-id", "n1", "--role", "consumer", "--topics", "fz", "--pathlen", "0", "--lifetime", "3600",
     "--dir", "d", "--force"],
    ["sign", "--root", "root.key", "--request", "n1.request", "--root-password-file", "pw.txt", "--yes", "--force",
     "--out", "sub/x"],
    ["install", "--chain", "n1.chain", "--dir", "d", "--yes"],
    ["password", "--node-id", "n2", "--role", "producer", "--all-topics", "--root-password-file", "pw.txt",
     "--provisioning-password-file", "pw.txt", "--dir", "d", "--force", "--pathlen", "0", "--lifetime", "0"],
    ["init-root", "--out", "sub/root2.key", "--root-password-file", "pw.txt", "--force"],
]


def _argv(rng: random.Random) -> list[str]:
    if rng.random() < 0.5:  # a complete command with one or two things changed: reaches the deep paths
        argv = list(rng.choice(_TEMPLATES))
        for _ in range(rng.choice([0, 1, 1, 2])):
            i = rng.randrange(1, len(argv))
            action = rng.randrange(3)
            if action == 0:
                argv[i] = rng.choice(_VALUES + _SAFE_PATHS)
            elif action == 1:
                del argv[i]
            else:
                argv.insert(i, rng.choice(_VALUES + sorted(_SWITCHES)))
        return argv
    command = rng.choice(list(_FLAGS) + ["nosuch", "-v"])
    argv = [command] if rng.random() < 0.95 else []
    for flag in rng.sample(_FLAGS.get(command, ["--help"]), k=min(len(_FLAGS.get(command, [])), rng.randint(0, 7))):
        argv.append(flag)
        if flag in _SWITCHES:
            continue
        for _ in range(rng.choice([1, 1, 1, 2, 0])):
            argv.append(rng.choice(_SAFE_PATHS) if flag in _PATH_FLAGS else rng.choice(_VALUES))
    if rng.random() < 0.05:
        argv.insert(rng.randint(0, len(argv)), rng.choice(["--bogus", "-h", "--", "-vv"]))
    return argv


def _seed_files(directory: Path, rng: random.Random, root_key: bytes) -> None:
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "d").mkdir(exist_ok=True)
    files = {
        "n1.request": REQUEST, "n1.chain": CHAIN_FILE, "root.key": root_key, "pw.txt": b"correct horse battery\n",
        "bad.txt": b"short\n", "hostile.request": rng.randbytes(40) + REQUEST[40:],
        "hostile.chain": CHAIN_FILE[: rng.randrange(len(CHAIN_FILE))],
        "hostile.key": bytes(b ^ (rng.random() < 0.01) for b in root_key),
    }
    for name, data in files.items():
        path = directory / name
        if not path.exists():
            path.write_bytes(data)
            os.chmod(path, 0o600)


@budget(300)
@given(seeds, st.text(max_size=60))
def test_fuzz_command_line(scratch: Path, root_key_file: bytes, seed: int, stdin: str) -> None:
    rng = random.Random(seed)
    work = scratch / f"cli-{seed % 16}"  # a few directories, so state (existing nodes) builds up too
    work.mkdir(exist_ok=True)
    _seed_files(work, rng, root_key_file)
    argv = _argv(rng)
    out, err = io.StringIO(), io.StringIO()
    with _tool_sandbox(work):
        code: Any = outcome(cli.main, argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    assert code in (0, 1, 2), f"{argv!r} -> {code!r}"
    errors = [line for line in err.getvalue().splitlines() if ": error: " in line]
    if code != 0:
        assert len(errors) == 1, f"{argv!r}: a refusal is exactly one error line, got {err.getvalue()!r}"
        assert "Traceback" not in err.getvalue()
    _OUTCOMES[code] = _OUTCOMES.get(code, 0) + 1


_OUTCOMES: dict[int, int] = {}


def test_command_line_fuzz_reached_success_and_refusal() -> None:
    """Runs after the fuzz test (file order): it must have exercised both ends of the tool."""
    if not _OUTCOMES:
        pytest.skip("the command-line fuzz test did not run in this session")
    assert _OUTCOMES.get(2, 0) > 0 and sum(_OUTCOMES.values()) >= 100, _OUTCOMES
