"""``kafkaratchet demo`` on the test broker, run the way its users run it (``python3 dev.py demo``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.smoke
def test_demo_round_trip_on_the_test_broker(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The demo creates its own data topic (a cluster without automatic creation has none), and every
    record it sends is ciphertext on the broker and cleartext at its consumer."""
    done = subprocess.run([sys.executable, "-m", "kafkaratchet.tools.cli", "demo", "--bootstrap-servers",
                           kafka_bootstrap, "--records", "500", "--size", "64", "--keep", str(tmp_path / "nodes")],
                          cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert lines["records sent"].split()[-1] == "500"
    assert lines["decrypted by the consumer"].split()[-1] == "500"
    assert lines["raw records read back"].split()[4:] == ["500,", "plaintext", "found", "in", "0"]
    assert "OK: every record was ciphertext on the broker and cleartext at the consumer" in done.stdout
    assert sorted(p.name for p in (tmp_path / "nodes").glob("*.config")) == ["demo-consumer.config",
                                                                            "demo-producer.config"]
