"""Start-up costs: the package's import in a fresh interpreter, and constructing ``KafkaCrypto``.

Import: each sample is a new ``python`` process that times its own ``import``
statement with ``time.perf_counter`` (interpreter start-up excluded; bytecode
caches and the page cache warm, as on any machine after the first run). Two
imports are timed for kafkaratchet: the bare package (``import kafkaratchet``,
what the target is about) and the package plus the node and its Kafka client
(``from kafkaratchet import KafkaCrypto``), which is what kafkacrypto's
``import kafkacrypto`` always costs.

Construction: ``KafkaCrypto(None, kp, kc, config=store)`` on an already
provisioned node, ``kp``/``kc`` built beforehand and not timed; for kafkaratchet
also the time until ``wait_ready()`` (its management topics are followed).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import RunningNode, Summary, interleave

_TIMED = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"
_NO_CONFLUENT = "import sys; sys.modules['confluent_kafka'] = None; "

IMPORTS = {
    "import kafkaratchet": "import kafkaratchet",
    "from kafkaratchet import KafkaCrypto": "from kafkaratchet import KafkaCrypto",
}
KC_IMPORT = {"import kafkacrypto": "import warnings; warnings.simplefilter('ignore'); import kafkacrypto"}


def _import_sampler(stmt: str, prefix: str = "") -> Callable[[], float]:
    code = prefix + _TIMED.format(stmt=stmt)

    def sample() -> float:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        return float(out.stdout.strip().splitlines()[-1])

    return sample


def import_profile(stmt: str = "import kafkaratchet", top: int = 8) -> list[tuple[str, int]]:
    """The modules with the largest self time under ``python -X importtime`` (µs)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:"):].split("|", 2)
        rows.append((name.strip(), int(self_us)))
    return sorted(rows, key=lambda r: -r[1])[:top]


def run_imports(*, rounds: int, with_kafkacrypto: bool) -> dict[str, Any]:
    cases = {name: _import_sampler(stmt) for name, stmt in IMPORTS.items()}
    if with_kafkacrypto:
        cases.update({name: _import_sampler(stmt, _NO_CONFLUENT) for name, stmt in KC_IMPORT.items()})
    samples = interleave(cases, rounds)
    return {"seconds": {k: Summary.of(v).as_dict() for k, v in samples.items()},
            "largest_self_times_us": import_profile()}


def run_construction(ours_config: Path, kc_config: Path | None, *, rounds: int) -> dict[str, Any]:
    ready: list[float] = []

    def ours() -> float:
        node = RunningNode(ours_config)
        try:
            ready.append(node.ready_seconds)
            return node.construct_seconds
        finally:
            node.close()

    cases: dict[str, Callable[[], float]] = {"kafkaratchet KafkaCrypto()": ours}
    if kc_config is not None:
        from .kcnode import KCNode

        def theirs() -> float:
            node = KCNode(kc_config)
            try:
                return node.construct_seconds
            finally:
                node.close()

        cases["kafkacrypto KafkaCrypto()"] = theirs
    samples = interleave(cases, rounds)
    samples["kafkaratchet KafkaCrypto() until wait_ready()"] = ready
    return {"seconds": {k: Summary.of(v).as_dict() for k, v in samples.items()}}
