"""The benchmark suite runs end to end in its smoke mode. No speed is asserted (noisy machines).

The bench runs in its own interpreter, as ``python -m bench`` does: it sets up
logging and (to run kafkacrypto on kafka-python) import blockers that must not
leak into the rest of the test session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MEASUREMENTS = ("serdes", "e2e", "keyexchange", "startup", "writers")


def _bench(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_quick_mode_runs_every_measurement_and_writes_its_results(kafka_bootstrap: str, tmp_path: Path) -> None:
    done = _bench("--quick", "--bootstrap-servers", kafka_bootstrap, "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("| measure | kafkaratchet |")
    [json_file] = tmp_path.glob("*-quick.json")
    results = json.loads(json_file.read_text())
    assert set(MEASUREMENTS) <= set(results)
    assert results["serdes"]["sizes"]["64"]["bytes_added"]["kafkaratchet"] == 42
    assert all(entry["undecryptable"]["kafkaratchet"] == 0 for entry in results["e2e"]["sizes"].values())
    assert results["targets"], "the targets were checked"
    assert json_file.with_suffix(".md").read_text().count("| measure |") == 1


def test_help_explains_the_options() -> None:
    done = _bench("--help", timeout=60)
    assert done.returncode == 0
    assert "--quick" in done.stdout and "kafkacrypto" in done.stdout
