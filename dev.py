#!/usr/bin/env python3
"""One entry point for a fresh machine that has nothing but python3.

    python3 dev.py demo     # the main job: encrypted round trip on the embedded broker
    python3 dev.py test     # lint, type check and the whole test suite (what CI runs):
                            # on Apache Kafka when Java and Maven are on PATH, then a smoke
                            # subset on the embedded broker; else all on the embedded broker
    python3 dev.py bench    # the benchmark suite (--broker kafka|tansu, --help)
    python3 dev.py kafka up # Apache Kafka (3 KRaft nodes) on loopback; also: down, status

Each command creates ``.venv`` on first use, installs the project into it with
the extras it needs, then runs. Extra arguments go to the underlying command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("KAFKARATCHET_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXTRAS = {"demo": "broker", "test": "test,confluent", "bench": "test,bench", "kafka": "test,confluent"}


def _run(*cmd: str | os.PathLike[str]) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def ensure_venv(extras: str) -> None:
    """Create the venv and (re)install when setup.cfg or the wanted extras changed."""
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "setup.cfg").read_bytes() + extras.encode()).hexdigest()
    stamp = VENV / f".kafkaratchet-{extras.replace(',', '-')}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    code = _run(BIN / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
                "-e", f".[{extras}]")
    if code:
        sys.exit(f"installing the project failed (pip exit status {code})")
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"} or argv[0] not in EXTRAS:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help", "help"} else 2
    command, rest = argv[0], argv[1:]
    ensure_venv(EXTRAS[command])
    if command == "demo":
        return _run(BIN / "kafkaratchet", "demo", *rest)
    if command == "bench":
        return _run(BIN / "python", "-m", "bench", *rest)
    if command == "kafka":
        return _run(BIN / "python", "-m", "kafkaratchet.tools.apachekafka", *rest)
    code = _run(BIN / "ruff", "check", ".")
    if code:
        return code
    code = _run(BIN / "mypy")  # strict, configured in setup.cfg [mypy]
    if code:
        return code
    return run_tests(rest)


def test_broker() -> str:
    """Apache Kafka (the reference) when it can run here; KAFKARATCHET_TEST_BROKER forces a choice."""
    chosen = os.environ.get("KAFKARATCHET_TEST_BROKER")
    if chosen:
        return chosen
    if shutil.which("java") and shutil.which("mvn"):
        return "kafka"
    print("Java and Maven are not both on PATH: the whole suite runs on the embedded broker (Tansu). "
          "CI runs it on Apache Kafka (README, \"Two commands\").", flush=True)
    return "tansu"


def run_tests(rest: list[str]) -> int:
    """The whole suite on the chosen engine; after Apache Kafka, the smoke subset on the embedded broker."""
    broker = test_broker()
    external = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    code = _run(BIN / "python", "-m", "pytest", f"--broker={broker}", *rest)
    if code == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
    if code or broker != "kafka" or external or rest:
        return code
    print("the smoke subset on the embedded broker (Tansu):", flush=True)
    code = _run(BIN / "python", "-m", "pytest", "--broker=tansu", "-m", "smoke", "tests/integration")
    if code == 5:
        print("no smoke test was collected: that is a failure here", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
