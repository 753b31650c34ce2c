"""``python -m bench.compare A.json B.json ...``: runs side by side, one column per results file.

Each file's table (:func:`bench.report.table_rows`) is rebuilt from its JSON, and rows with the same measure are
lined up: kafkaratchet's figure from each run (or the row's plaintext or limit figure where kafkaratchet has
none), then each run's verdict on the target. Column headings name the engine that ran (``meta.broker``) and
the date. Typically: the Apache Kafka run and the Tansu run of one day.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .report import table_rows


def heading(results: dict[str, Any], path: Path) -> str:
    meta = results.get("meta", {})
    broker = meta.get("broker") or {}
    label = broker.get("label") or "embedded broker (Tansu), engine not recorded"
    return f"{label}, {meta.get('date', path.stem)}"


def verdict(text: str) -> str:
    if "**NOT met**" in text:
        return "not met"
    if "**met**" in text:
        return "met"
    return ""


def table(files: list[Path]) -> str:
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in files]
    measures: list[str] = []
    cells: list[dict[str, tuple[str, str, str]]] = []
    for results in runs:
        rows, _ = table_rows(results)
        by_measure: dict[str, tuple[str, str, str]] = {}
        for measure, ours, _theirs, reference, target in rows:
            if measure not in measures:
                measures.append(measure)
            by_measure[measure] = (ours or reference, target.split(" **")[0], verdict(target))
        cells.append(by_measure)
    headings = [heading(r, p) for r, p in zip(runs, files, strict=True)]
    lines = ["| measure | " + " | ".join(headings) + " | target |", "|---" * (len(headings) + 2) + "|"]
    for measure in measures:
        values = []
        wanted = ""
        for by_measure in cells:
            value, target, met = by_measure.get(measure, ("not run", "", ""))
            wanted = wanted or target
            values.append(f"{value} ({met})" if met else value)
        lines.append(f"| {measure} | " + " | ".join(values) + f" | {wanted} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="results files written by python -m bench (.json)")
    args = parser.parse_args(argv)
    print(table(args.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
