"""The bench's hostile-traffic measurement, in its smoke mode: the nodes survive the attack it mounts.

``python -m bench --only hostile --quick`` writes a few hundred hostile records of every kind to the trust
topics, ``R.reqs``, ``R.subs``, ``R.keys`` and ``R`` (bench/hostile.py), then checks what the nodes still do.
Only those outcomes are asserted, never a time or a CPU figure (noisy machines). The bench runs in its own
interpreter, as ``python -m bench`` does (it sets up logging of its own).

Checked by removing a guard: with protocol/trust.py ``TrustStore._admit`` admitting chainless self-denials,
"trust state unchanged" is false (hostile entries are stored) and this test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("rewrapped", "patterns", "pattern-floods", "self-denials", "squats", "replays", "bogus-key-ids")
TOPICS = ("denylist", "allowlist", "chains", "reqs", "subs", "keys", "data")


def test_nodes_still_work_after_the_hostile_bench(kafka_bootstrap: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "hostile", "--quick", "--no-kafkacrypto",
                           "--bootstrap-servers", kafka_bootstrap, "--output", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    [json_file] = tmp_path.glob("*-quick.json")
    hostile = json.loads(json_file.read_text())["hostile"]

    written = hostile["written"]
    for kind in KINDS:
        assert sum(written.get(kind, {}).values()) > 0, f"no hostile record of kind {kind} was written"
    for topic in TOPICS:
        assert sum(per_topic.get(topic, 0) for per_topic in written.values()) > 0, f"nothing hostile on {topic}"

    outcomes = hostile["outcomes"]
    assert outcomes["consumer_decrypted_after_attack"], "the consumer no longer decrypts a new record"
    assert outcomes["trust_state_unchanged"], f"hostile records changed a trust state: {hostile['trust_changes']}"
    assert outcomes["producer_restarted"], f"the producer did not restart: {hostile['producer_restart']}"
    assert outcomes["fresh_node_replayed"], f"a fresh node did not replay the trust topics: {hostile['fresh_node']}"
    assert hostile["reader"]["failure"] is None
    assert "| hostile: trust state unchanged" in done.stdout
