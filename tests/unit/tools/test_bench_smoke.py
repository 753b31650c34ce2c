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
MEASUREMENTS = ("serdes", "e2e", "keyexchange", "idle", "startup", "writers")


def _bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # on Apache Kafka and 2 shared cores a quick run took 60-100 s at load averages of 12-15
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_quick_mode_runs_every_measurement_and_writes_its_results(kafka_bootstrap: str, tmp_path: Path) -> None:
    """On the session's cluster (Apache Kafka without automatic topic creation, or Tansu): every measurement
    creates the topics it writes, and the results say which engine ran."""
    done = _bench("--quick", "--bootstrap-servers", kafka_bootstrap, "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("| measure | kafkaratchet |")
    [json_file] = tmp_path.glob("*-quick.json")
    results = json.loads(json_file.read_text())
    assert set(MEASUREMENTS) <= set(results)
    broker = results["meta"]["broker"]
    assert broker["tag"] in ("kafka", "tansu") and broker["version"], broker
    assert json_file.name.endswith(f"-{broker['tag']}-quick.json")
    assert results["serdes"]["sizes"]["64"]["bytes_added"]["kafkaratchet"] == 42
    assert all(entry["undecryptable"]["kafkaratchet"] == 0 for entry in results["e2e"]["sizes"].values())
    assert all(v["never_decrypted_runs"] == 0 for v in results["keyexchange"]["variants"].values())
    assert {"started", "after a key exchange"} <= set(results["idle"]["variants"])
    assert results["targets"], "the targets were checked"
    assert json_file.with_suffix(".md").read_text().count("| measure |") == 1


def test_quick_mode_starts_the_embedded_broker_itself(tmp_path: Path) -> None:
    """``--broker tansu`` needs nothing but Python (no Java): it starts Tansu for the run and records it."""
    done = _bench("--quick", "--broker", "tansu", "--only", "keyexchange", "--only", "idle", "--no-kafkacrypto",
                  "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    [json_file] = tmp_path.glob("*-tansu-*-quick.json")  # <date>-tansu-<measurements>-quick.json
    broker = json.loads(json_file.read_text())["meta"]["broker"]
    assert (broker["name"], broker["origin"]) == ("Tansu", "started by the bench")
    assert "| idle node CPU" in done.stdout


def test_help_explains_the_options() -> None:
    done = _bench("--help", timeout=60)
    assert done.returncode == 0
    assert "--quick" in done.stdout and "kafkacrypto" in done.stdout
    assert "--broker" in done.stdout and "Apache Kafka" in done.stdout
