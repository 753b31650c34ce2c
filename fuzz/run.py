#!/usr/bin/env python3
"""Run the fuzzing campaign: every target (or some) for a fixed time each, and report.

    python fuzz/run.py                      # 10 minutes per target, one after another
    python fuzz/run.py --seconds 60         # a short run
    python fuzz/run.py --targets certs,trust --jobs 2
    python fuzz/run.py --check              # replay corpora and findings with plain Python (no atheris)

For each target the corpus lives in ``fuzz/corpus/<target>/`` (seeded with valid
inputs on first use, grown by libFuzzer, reused by the next run), crashes and hangs
in ``fuzz/findings/<target>/``, and libFuzzer's log in ``fuzz/logs/<target>.log``.
The report gives executions, executions per second, corpus size and findings per
target; the exit status is 1 when anything was found.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

#: libFuzzer flags for every target: a single input over 10 s is a hang, 2 GiB of RSS a leak or bomb
FLAGS = ["-timeout=10", "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1", "-use_value_profile=1"]


def _seed(target: str, corpus: Path) -> None:
    import targets

    corpus.mkdir(parents=True, exist_ok=True)
    for data in targets.seeds(target):
        path = corpus / f"seed-{hashlib.sha1(data).hexdigest()[:16]}"
        if not path.exists():
            path.write_bytes(data)


def _stat(log: str, name: str) -> int:
    found = re.findall(rf"stat::{name}:\s+(\d+)", log)
    return int(found[-1]) if found else 0


def run_target(target: str, seconds: int) -> dict[str, object]:
    corpus = HERE / "corpus" / target
    findings = HERE / "findings" / target
    logs = HERE / "logs"
    for directory in (findings, logs):
        directory.mkdir(parents=True, exist_ok=True)
    _seed(target, corpus)
    before = {p.name for p in findings.iterdir()}
    command = [sys.executable, str(HERE / "fuzz.py"), target, str(corpus), f"-max_total_time={seconds}",
               f"-artifact_prefix={findings}/", *FLAGS]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    elapsed = time.monotonic() - started
    log = result.stdout + result.stderr
    (logs / f"{target}.log").write_text(log)
    files = [p for p in corpus.iterdir() if p.is_file()]
    executions = _stat(log, "number_of_executed_units")
    return {
        "target": target,
        "seconds": round(elapsed),
        "executions": executions,
        "exec_per_s": _stat(log, "average_exec_per_sec") or int(executions / max(elapsed, 1)),
        "corpus_files": len(files),
        "corpus_bytes": sum(p.stat().st_size for p in files),
        "peak_rss_mb": _stat(log, "peak_rss_mb"),
        "new_findings": sorted({p.name for p in findings.iterdir()} - before),
        "exit": result.returncode,
    }


def check() -> int:
    """Replay every corpus and finding file through its target with plain Python; 1 on any violation."""
    import traceback

    import targets

    failures = 0
    for target, function in targets.TARGETS.items():
        count = 0
        for directory in (HERE / "corpus" / target, HERE / "findings" / target):
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                count += 1
                try:
                    function(path.read_bytes())
                except Exception:  # noqa: BLE001 - reporting, not handling
                    failures += 1
                    print(f"{target}: {path}:\n{traceback.format_exc()}", file=sys.stderr)
        print(f"{target:12} {count:7d} inputs replayed")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="time per target (default 600: 10 minutes)")
    parser.add_argument("--targets", default="", help="comma-separated subset of the targets (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time (default 1)")
    parser.add_argument("--check", action="store_true", help="replay corpora and findings, no fuzzing")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("the campaign needs atheris: pip install atheris", file=sys.stderr)
        return 2
    import targets

    chosen = [t for t in args.targets.split(",") if t] or list(targets.TARGETS)
    unknown = [t for t in chosen if t not in targets.TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets.TARGETS)}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda t: run_target(t, args.seconds), chosen))
    print(f"{'target':12} {'time':>6} {'execs':>10} {'execs/s':>8} {'corpus':>7} {'KiB':>7} {'RSS MB':>7}  findings")
    for r in results:
        print(f"{r['target']:12} {r['seconds']:>5}s {r['executions']:>10} {r['exec_per_s']:>8} "
              f"{r['corpus_files']:>7} {int(r['corpus_bytes']) // 1024:>7} {r['peak_rss_mb']:>7}  "
              f"{', '.join(r['new_findings']) or 'none'}")  # type: ignore[arg-type]
    return 1 if any(r["new_findings"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
