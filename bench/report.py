"""Turning results into the Markdown table, the targets verdict, the JSON file and the plot."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaratchet.protocol.records import OVERHEAD

from .common import SIZES, size_label


def _fmt(value: float, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    v = value * scale
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def cell(summary: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    """``median (min–max)`` of a summary dict."""
    if not summary or not summary.get("n"):
        return "n/a"
    if summary["n"] == 1 or summary["min"] == summary["max"]:
        return _fmt(summary["median"], scale, digits)
    return (f"{_fmt(summary['median'], scale, digits)} ({_fmt(summary['min'], scale, digits)}–"
            f"{_fmt(summary['max'], scale, digits)})")


@dataclass
class Target:
    measure: str
    wanted: str
    value: float
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "wanted": self.wanted, "median": self.value, "met": self.met}


def _check(targets: list[Target], measure: str, summary: dict[str, float] | None, wanted: str,
           ok: Callable[[float], bool]) -> str:
    if not summary or not summary.get("n"):
        return "not measured"
    value = summary["median"]
    met = bool(value == value and ok(value))
    targets.append(Target(measure, wanted, value, met))
    return f"{wanted} {'**met**' if met else '**NOT met**'}"


Row = tuple[str, str, str, str, str]


def build(results: dict[str, Any]) -> tuple[str, list[Target]]:
    """The Markdown report (one table plus notes) and the list of checked targets."""
    rows, targets = table_rows(results)
    kc_note = results.get("kafkacrypto_skipped")
    e2e, kx, hostile = results.get("e2e"), results.get("keyexchange"), results.get("hostile")
    lines = ["| measure | kafkaratchet | kafkacrypto 0.9.11.3 | raw limit / plaintext | target |",
             "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    met = sum(t.met for t in targets)
    lines.append("")
    lines.append(f"Targets met: {met} of {len(targets)}. Cells are median (min–max) over interleaved repetitions; "
                 "ratios are taken within each repetition. Absolute times are for information only.")
    if kx:
        lines.append("")
        lines.append("¹ kafkacrypto's key exchange needs chains signed by a provisioned root of trust (its "
                     "provisioning tools); the bench does not provision those, so it is not measured here.")
    if e2e and any("padded" in e["ratio_to_plaintext"] for e in e2e["sizes"].values()):
        lines.append("")
        lines.append("² Controls, same run: `padded` is plaintext through a Python serializer pair that adds and "
                     f"strips {OVERHEAD} zero bytes, no cryptography: what the bytes alone cost. `idle-node` is "
                     "plaintext with a started kafkaratchet node in each process that seals nothing: what its "
                     "management thread and two Kafka clients cost. What remains between these and kafkaratchet is "
                     "the per-record work (docs/performance.md).")
    if hostile:
        control = hostile["control"]["cpu_s"]
        lines.append("")
        lines.append(f"³ Hostile traffic (bench/hostile.py): {hostile['records']:,} records "
                     f"({hostile['bytes'] / 2**20:,.0f} MiB) written by a raw client to the trust topics, R.reqs, "
                     "R.subs, R.keys and R, one kind and topic at a time, each followed by genuine markers the nodes "
                     "must act on. Node CPU is each node's management thread from the first hostile write until the "
                     f"markers took effect ({hostile['cpu_clock']}), markers and idle polling included (a case's "
                     "markers on all six topics, with no hostile record, cost "
                     f"{cell(control.get('producer'), 1e3)} + {cell(control.get('consumer'), 1e3)} ms, producer + "
                     "consumer). Target from the issue: at most 1 ms per hostile record of up to 64 KiB, for each "
                     "node.")
    if kc_note:
        lines.append("")
        lines.append(f"kafkacrypto comparisons skipped: {kc_note}")
    broker = results.get("meta", {}).get("broker")
    if broker:
        lines.append("")
        lines.append(f"Broker: {broker['label']} ({broker['origin']}; {broker['settings']}).")
    return "\n".join(lines), targets


def table_rows(results: dict[str, Any]) -> tuple[list[Row], list[Target]]:
    """The table's rows (measure, kafkaratchet, kafkacrypto, limit or plaintext, target verdict) and the targets."""
    targets: list[Target] = []
    rows: list[Row] = []

    serdes = results.get("serdes")
    if serdes:
        for size in sorted(int(s) for s in serdes["sizes"]):
            entry = serdes["sizes"][str(size)]
            t = entry["seconds_per_record"]
            label = size_label(size)
            rows.append((f"serializer, µs/record, {label}", cell(t.get("kafkaratchet serializer"), 1e6),
                         cell(t.get("kafkacrypto serializer"), 1e6), "raw encrypt " + cell(t.get("raw encrypt"), 1e6),
                         ""))
            rows.append((f"deserializer, µs/record, {label}", cell(t.get("kafkaratchet deserializer"), 1e6),
                         cell(t.get("kafkacrypto deserializer"), 1e6),
                         "raw decrypt " + cell(t.get("raw decrypt"), 1e6), ""))
            floor = 0.85 if size <= 1024 else 0.95
            for kind in ("serializer", "deserializer"):
                r = entry["ratio_to_raw"]
                rows.append((f"{kind} throughput ÷ raw AEAD, {label}", cell(r.get(f"kafkaratchet {kind}")),
                             cell(r.get(f"kafkacrypto {kind}")), "1.0",
                             _check(targets, f"{kind} ÷ raw AEAD at {label}", r.get(f"kafkaratchet {kind}"),
                                    f"≥ {floor}", lambda v, f=floor: bool(v >= f))))
        added = {who: sorted({e["bytes_added"].get(who) for e in serdes["sizes"].values()} - {None})
                 for who in ("kafkaratchet", "kafkacrypto")}
        ours_added = max(added["kafkaratchet"]) if added["kafkaratchet"] else float("nan")
        rows.append(("bytes added per record", "–".join(str(v) for v in added["kafkaratchet"]) or "n/a",
                     "–".join(str(v) for v in added["kafkacrypto"]) or "n/a", "16 (the tag)",
                     _check(targets, "bytes added per record", {"median": ours_added, "n": 1}, "≤ 45",
                            lambda v: v <= 45)))

    e2e = results.get("e2e")
    if e2e:
        for size in sorted(int(s) for s in e2e["sizes"]):
            entry = e2e["sizes"][str(size)]
            label = size_label(size)
            rps = entry["records_per_second"]
            rows.append((f"end-to-end records/s, {label} ({e2e['records']:,} records)", cell(rps.get("kafkaratchet")),
                         cell(rps.get("kafkacrypto")), "plaintext " + cell(rps.get("plaintext")), ""))
            ratio = entry["ratio_to_plaintext"]
            least = {64: 0.9, 1024: 0.97}.get(size)
            verdict = (_check(targets, f"end-to-end encrypted ÷ plaintext at {label}", ratio.get("kafkaratchet"),
                              f"≥ {least}", lambda v, f=least: v >= f) if least else "")
            rows.append((f"end-to-end encrypted ÷ plaintext, {label}", cell(ratio.get("kafkaratchet")),
                         cell(ratio.get("kafkacrypto")), "1.0", verdict))
            if "padded" in ratio:
                rows.append((f"end-to-end, no cryptography, {OVERHEAD} zero bytes added per record ÷ plaintext, "
                             f"{label} (control²)", "", "", cell(ratio["padded"]), ""))
            if "idle-node" in ratio:
                rows.append((f"end-to-end, no cryptography, an idle kafkaratchet node in each process ÷ plaintext, "
                             f"{label} (control²)", "", "", cell(ratio["idle-node"]), ""))
            cpu_ratio = entry.get("cpu_ratio_to_plaintext", {})
            rows.append((f"end-to-end CPU, plaintext ÷ encrypted (producer + consumer), {label}",
                         cell(cpu_ratio.get("kafkaratchet")), cell(cpu_ratio.get("kafkacrypto")), "1.0", ""))
            cpu = entry["cpu_us_per_record"]
            rows.append((f"end-to-end CPU µs/record producer + consumer, {label}",
                         _cpu(cpu.get("kafkaratchet")), _cpu(cpu.get("kafkacrypto")),
                         "plaintext " + _cpu(cpu.get("plaintext")), ""))
            bad = entry["undecryptable"]
            rows.append((f"end-to-end records not decrypted, {label}", str(bad.get("kafkaratchet", "n/a")),
                         str(bad.get("kafkacrypto", "n/a")), "", ""))

    kx = results.get("keyexchange")
    if kx:
        for name in kx.get("order") or sorted(kx["variants"]):
            v = kx["variants"][name]
            runs = v["first_decrypted_s"]["n"]
            settled = kx.get("settle_s", 0.5)
            label = name if settled == 0.5 else f"{name}; the consumer starts {settled:g} s after the last record"
            rows.append((f"fresh consumer: first poll → first decrypted record, s ({label}, {kx['runs']} runs)",
                         cell(v["first_decrypted_s"], digits=3), "not measured¹", "",
                         _check(targets, f"first decrypted record, median ({label})", v["first_decrypted_s"],
                                "≤ 0.3 s", lambda m: m <= 0.3)))
            worst = {"median": v["worst_s"] if runs == kx["runs"] else float("inf"), "n": 1}
            rows.append((f"fresh consumer: worst of {kx['runs']}, s ({label})", _fmt(v["worst_s"], digits=3), "", "",
                         _check(targets, f"first decrypted record, worst ({label})", worst, "≤ 1 s",
                                lambda m: m <= 1.0)))
            rows.append((f"fresh consumer: records undecryptable before the first decrypted ({label})",
                         f"{v['undecryptable_before_first']} (in all {kx['records']} × {kx['runs']}: "
                         f"{v['undecryptable_total']})", "", "",
                         _check(targets, f"undecryptable before first ({label})",
                                {"median": float(v["undecryptable_total"]), "n": 1}, "0", lambda m: m == 0)))

    idle = results.get("idle")
    if idle:
        for name in idle.get("order") or sorted(idle["variants"]):
            v = idle["variants"][name]
            threads = ", ".join(f"{thread} {_fmt(ms, digits=1)}" for thread, ms in
                                sorted(v["threads_ms_per_s"].items(), key=lambda item: -item[1]) if ms >= 0.05)
            if "settling_ms_per_s" in v:
                threads += (f"; the {idle['settle_s']:g} s before the windows: "
                            f"{_fmt(v['settling_ms_per_s'], digits=1)}")
            rows.append((f"idle node CPU, ms per second ({name}; median of {idle['windows']} windows of "
                         f"{idle['window_s']:g} s)", cell(v["ms_per_s"], digits=1), "", threads,
                         _check(targets, f"idle node CPU ({name})", v["ms_per_s"], "≤ 10 ms/s",
                                lambda m: m <= 10.0)))

    startup = results.get("startup")
    if startup:
        imp = startup["imports"]["seconds"]
        rows.append(("`import kafkaratchet` (fresh interpreter), ms", cell(imp.get("import kafkaratchet"), 1e3),
                     cell(imp.get("import kafkacrypto"), 1e3) + " (`import kafkacrypto`)", "",
                     _check(targets, "import kafkaratchet", imp.get("import kafkaratchet"), "< 120 ms",
                            lambda v: v < 0.120)))
        rows.append(("`from kafkaratchet import KafkaCrypto` (node + kafka-python), ms",
                     cell(imp.get("from kafkaratchet import KafkaCrypto"), 1e3), "", "", ""))
        con = startup["construction"]["seconds"]
        rows.append(("`KafkaCrypto(...)` construction, ms", cell(con.get("kafkaratchet KafkaCrypto()"), 1e3),
                     cell(con.get("kafkacrypto KafkaCrypto()"), 1e3), "", ""))
        rows.append(("`KafkaCrypto(...)` until `wait_ready()`, ms",
                     cell(con.get("kafkaratchet KafkaCrypto() until wait_ready()"), 1e3), "", "", ""))

    writers = results.get("writers")
    if writers:
        n, size = writers["threads"], writers["size"]
        r = writers["records_per_second"]
        rows.append((f"records/s sealing {size_label(size)}, 1 thread", cell(r.get("kafkaratchet, 1 thread")),
                     cell(r.get("kafkacrypto, 1 thread")), "raw AEAD " + cell(r.get("raw AEAD, 1 thread")), ""))
        rows.append((f"records/s sealing {size_label(size)}, {n} threads on one KafkaCrypto",
                     cell(r.get(f"kafkaratchet, {n} threads")), cell(r.get(f"kafkacrypto, {n} threads")),
                     "raw AEAD " + cell(r.get(f"raw AEAD, {n} threads")), ""))
        s = writers["speedup"]
        rows.append((f"{n} threads ÷ 1 thread, {size_label(size)} ({writers['cpus']} CPUs)",
                     cell(s.get("kafkaratchet")), cell(s.get("kafkacrypto")), "raw AEAD " + cell(s.get("raw AEAD")),
                     _check(targets, f"{n} threads ÷ 1 thread at {size_label(size)}", s.get("kafkaratchet"),
                            "≥ 1.5", lambda v: v >= 1.5)))

    hostile = results.get("hostile")
    if hostile:
        rows += _hostile_rows(hostile, targets)
    return rows, targets

def _verdict(targets: list[Target], measure: str, ok: bool) -> str:
    return _check(targets, measure, {"median": 1.0 if ok else 0.0, "n": 1}, "yes", lambda v: v == 1.0)


def _hostile_rows(hostile: dict[str, Any], targets: list[Target]) -> list[Row]:
    """The rows of the hostile-traffic measurement: CPU per hostile record, then the outcomes."""
    rows: list[Row] = []
    within = "≤ 1 ms"

    def pair(cpu: dict[str, dict[str, float]]) -> str:
        return f"{cell(cpu.get('producer'), 1e6)} / {cell(cpu.get('consumer'), 1e6)}"

    overall = hostile["overall"]["cpu_s_per_record"]
    rows.append((f"hostile: node CPU per hostile record, µs, producer / consumer ({hostile['records']:,} records "
                 "of up to 64 KiB)³", pair(overall), "", "",
                 _check(targets, "hostile: node CPU per hostile record (busier node)", overall.get("worst node"),
                        within, lambda v: v <= 1e-3)))
    for kind, entry in hostile["per_kind"].items():
        cpu = entry["cpu_s_per_record"]
        note = f"costliest on {entry['costliest_topic']}" if entry.get("costliest_topic") else ""
        if kind == "bogus-key-ids":
            note += f"; application consumer thread {cell(cpu.get('reader'), 1e6)} µs"
        rows.append((f"hostile: node CPU per record, µs, producer / consumer: {hostile['kinds'][kind]} "
                     f"({entry['records']:,})", pair(cpu), "", note,
                     _check(targets, f"hostile: node CPU per record, {kind} (busier node)", cpu.get("worst node"),
                            within, lambda v: v <= 1e-3)))
    outcomes = hostile["outcomes"]
    decrypt = hostile["decrypt_after_ratchet"]
    ok = outcomes["consumer_decrypted_after_attack"]
    rows.append(("hostile: consumer decrypts after the attack (producer ratchets, record sealed, decrypted), s",
                 f"{'yes' if ok else 'NO'}, {_fmt(decrypt['after']['seconds'], digits=3)}", "",
                 f"before the attack {_fmt(decrypt['before']['seconds'], digits=3)}",
                 _verdict(targets, "hostile: consumer decrypts after the attack", ok)))
    ok = outcomes["trust_state_unchanged"]
    changed = "; ".join(f"{name}: {', '.join(found)}" for name, found in hostile.get("trust_changes", {}).items())
    if hostile.get("producer_epoch_stepped_by_attack"):
        changed = "; ".join(filter(None, [changed, "the producer's ratchet stepped"]))
    rows.append(("hostile: trust state unchanged (roots, denials, stored entries, no ratchet step; every node)",
                 "yes" if ok else f"NO ({changed})", "", "",
                 _verdict(targets, "hostile: trust state unchanged", ok)))
    restart = hostile["producer_restart"]
    ok = outcomes["producer_restarted"]
    rows.append(("hostile: producer restarts (ready, then answers a key request), s",
                 f"{'yes' if ok else 'NO'}, ready {_fmt(restart['ready_s'], digits=3)}, answers "
                 f"{_fmt(restart['answer_s'], digits=3)}", "", "",
                 _verdict(targets, "hostile: producer restarts", ok)))
    fresh = hostile["fresh_node"]
    ok = outcomes["fresh_node_replayed"]
    rows.append(("hostile: fresh node replays trust topics (construction → last entry applied), s",
                 f"{'yes' if ok else 'NO'}, {_fmt(fresh['after']['seconds'], digits=3)}", "",
                 f"before the attack {_fmt(fresh['before']['seconds'], digits=3)}",
                 _verdict(targets, "hostile: fresh node replays trust topics", ok)))
    return rows


def _cpu(pair: dict[str, Any] | None) -> str:
    if not pair:
        return "n/a"
    return f"{_fmt(pair['producer']['median'])} + {_fmt(pair['consumer']['median'])}"


def write(results: dict[str, Any], directory: Path, stem: str, markdown: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    written.append(json_path)
    md_path = directory / f"{stem}.md"
    meta = results.get("meta", {})
    header = [f"# kafkaratchet benchmark, {meta.get('date', stem)}", "",
              f"Machine: {meta.get('machine', '?')}, {meta.get('cpus', '?')} CPUs, Python {meta.get('python', '?')}, "
              f"kafka-python {meta.get('kafka_python', '?')}, PyNaCl {meta.get('pynacl', '?')}, "
              f"crc32c extension: {meta.get('crc32c', '?')}, kafkacrypto: {meta.get('kafkacrypto', 'absent')}.",
              f"Command: `{meta.get('command', 'python -m bench').strip()}` ({meta.get('seconds', '?')} s; "
              f"load average at start {meta.get('load_average_at_start', float('nan')):.1f}, at the end "
              f"{meta.get('load_average_at_end', float('nan')):.1f}; CPU pressure, the share of the last minute in "
              f"which some task waited for a CPU: {meta.get('cpu_pressure_at_start', float('nan')):.0f} % at start, "
              f"{meta.get('cpu_pressure_at_end', float('nan')):.0f} % at the end)", ""]
    broker = meta.get("broker")
    if broker:
        header += [f"Broker: {broker['label']} ({broker['origin']}; {broker['settings']}).", ""]
    header.append("")
    md_path.write_text("\n".join(header) + markdown + "\n", encoding="utf-8")
    written.append(md_path)
    plot = _plot(results, directory / f"{stem}.png")
    if plot is not None:
        written.append(plot)
    return written


def _plot(results: dict[str, Any], path: Path) -> Path | None:
    serdes = results.get("serdes")
    if not serdes:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = sorted(int(s) for s in serdes["sizes"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    lines = {"encrypt": [("raw encrypt", "raw XChaCha20-Poly1305 (PyNaCl)", "k--"),
                         ("kafkaratchet serializer", "kafkaratchet", "C0o-"),
                         ("kafkacrypto serializer", "kafkacrypto 0.9.11.3", "C3s-")],
             "decrypt": [("raw decrypt", "raw XChaCha20-Poly1305 (PyNaCl)", "k--"),
                         ("kafkaratchet deserializer", "kafkaratchet", "C0o-"),
                         ("kafkacrypto deserializer", "kafkacrypto 0.9.11.3", "C3s-")]}
    for ax, (title, series) in zip(axes, lines.items(), strict=True):
        for key, label, style in series:
            xs, ys = [], []
            for size in sizes:
                t = serdes["sizes"][str(size)]["seconds_per_record"].get(key)
                if t and t.get("n"):
                    xs.append(size)
                    ys.append(size / t["median"] / 1e6)
            if xs:
                ax.plot(xs, ys, style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [size_label(s) for s in sizes])
        ax.set_xlabel("record size")
        ax.set_title("serializer (seal)" if title == "encrypt" else "deserializer (open)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("throughput, MB/s (median)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["build", "table_rows", "write", "cell", "Target", "Row", "SIZES"]
