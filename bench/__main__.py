"""``python -m bench``: every measurement of the benchmark suite, side by side, into one table.

    python -m bench                 # the full suite (several minutes), results in bench/results/
    python -m bench --broker tansu  # on the embedded broker instead of Apache Kafka
    python -m bench --quick         # smoke mode: every measurement once, tiny (what CI runs)
    python -m bench --only serdes --only writers --rounds 31
    python -m bench --only idle --only keyexchange   # idle node CPU, a fresh consumer's first decrypted record
    python -m bench --only hostile  # hostile traffic: node CPU per attacker record, and the node still works

From a fresh clone, ``python3 dev.py bench [options]`` creates the virtual
environment and runs this. kafkacrypto comparisons run when ``kafkacrypto``
imports (``pip install 'kafkaratchet[bench]'``), and are skipped with the reason
printed otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from kafkaratchet.tools.apachekafka import KAFKA_VERSION

from . import engine as engines
from . import report
from .common import SIZES, RunningNode, Trust, kafkacrypto_available, quiet_kafka
from .engine import BROKERS

MEASUREMENTS = ("serdes", "e2e", "keyexchange", "idle", "startup", "writers", "hostile")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="kafkaratchet's benchmark suite. Runs, side by side with interleaved repetitions: raw "
                    "XChaCha20-Poly1305 against the serializers and deserializers of kafkaratchet (and kafkacrypto "
                    "when installed) per record size, bytes added per record, end-to-end throughput through a broker "
                    "(producer and consumer in separate processes, plaintext against encrypted), a fresh consumer's "
                    "time from its first poll to its first decrypted record (key exchange included), the CPU an idle "
                    "started node costs its process (ms per second, each node alone in a process), import and "
                    "KafkaCrypto construction times, and 4 writer threads sharing one KafkaCrypto; and (hostile) a "
                    "producer and a consumer node under hostile traffic written straight to their topics: forged and "
                    "re-wrapped trust updates, 64 KiB pattern bombs, self-denials, squatted request ids, replays, "
                    "bogus key ids, with the node CPU per hostile record and whether the nodes still decrypt, keep "
                    "their trust lists, restart, and whether a fresh node still replays the trust topics. Every "
                    "measurement creates the data topics it writes (Apache Kafka here creates none on first use). "
                    "Prints a Markdown table with the targets of the issues and writes "
                    "bench/results/<date>-<engine>[-<measurements run, when not all>][-quick].json, .md and .png "
                    "(the plot needs matplotlib), the engine and its version recorded in them. Compare two runs "
                    "with python -m bench.compare A.json B.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--broker", choices=BROKERS, default="auto",
                       help="the engine to start for the run and stop after it: kafka (Apache Kafka "
                            f"{KAFKA_VERSION}, 3 KRaft nodes on loopback, replication factor 3, no automatic topic "
                            "creation; needs Java 17+ and Maven) or tansu (the embedded broker, nothing but Python). "
                            "auto, the default, picks Apache Kafka when java and mvn are on PATH, because it is the "
                            "reference the targets are set on and what production runs, and Tansu otherwise, so the "
                            "suite (and --quick) still runs on a machine with nothing but Python; the engine that "
                            "ran is printed and recorded in the results")
    where.add_argument("--bootstrap-servers", metavar="HOST:PORT,...",
                       help="use this running cluster instead of starting one (what it is, Apache Kafka started "
                            "by dev.py kafka up or a test session, or Tansu, is recognised and recorded)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: every measurement, minimal repetitions and records (checks it runs; "
                             "its numbers mean little)")
    parser.add_argument("--only", action="append", choices=MEASUREMENTS, metavar="NAME",
                        help=f"run only this measurement (repeatable): {', '.join(MEASUREMENTS)}")
    parser.add_argument("--skip", action="append", choices=MEASUREMENTS, default=[], metavar="NAME",
                        help="skip this measurement (repeatable)")
    parser.add_argument("--rounds", type=int, default=21,
                        help="interleaved repetitions for serializer/deserializer and writer measurements")
    parser.add_argument("--sample-time", type=float, default=0.03,
                        help="seconds per serializer/deserializer sample (a batch of calls)")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES,
                        help="record sizes in bytes for the serializer/deserializer measurement, comma-separated")
    parser.add_argument("--records", type=int, default=10_000, help="records per end-to-end run")
    parser.add_argument("--e2e-sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=(64, 1024),
                        help="record sizes for the end-to-end measurement")
    parser.add_argument("--e2e-rounds", type=int, default=5,
                        help="interleaved repetitions of each end-to-end case (each is a pair of fresh processes)")
    parser.add_argument("--kx-runs", type=int, default=10, help="fresh consumers per key-exchange variant")
    parser.add_argument("--kx-variants", type=_kx_variants, default=("admin", "nodes", 1), metavar="V,...",
                        help="key-exchange variants, interleaved run by run (comma-separated): admin (R.reqs, "
                             "R.keys, R.subs created beforehand with the broker's defaults, as `kafkaratchet topics "
                             "create` does), nodes (the nodes create them when they first need them), or a number "
                             "(every topic created beforehand with that many partitions)")
    parser.add_argument("--kx-settle", type=float, default=0.5,
                        help="seconds between the producer's last record and the fresh consumer's start (longer "
                             "than the producer node stays busy after its last activity: a key exchange with an "
                             "idle producer)")
    parser.add_argument("--idle-windows", type=int, default=5, help="windows over which an idle node's CPU is read")
    parser.add_argument("--idle-window", type=float, default=5.0, help="seconds per idle-CPU window")
    parser.add_argument("--idle-settle", type=float, default=10.0,
                        help="seconds an idle node is left alone after starting, before the first window (longer "
                             "than the node stays busy after its last activity)")
    parser.add_argument("--import-rounds", type=int, default=15, help="fresh interpreters per import measurement")
    parser.add_argument("--construct-rounds", type=int, default=7, help="KafkaCrypto constructions per library")
    parser.add_argument("--writer-seconds", type=float, default=0.4, help="duration of one many-writers sample")
    parser.add_argument("--hostile-records", type=int, default=10_000, metavar="N",
                        help="hostile records the hostile measurement writes in all, shared evenly between its kinds "
                             "of record (replays: at least every genuine record once); many are 64 KiB, about 200 MiB "
                             "for 10,000. Its nodes use trust topics of their own (<root>-chains, -allowlist, "
                             "-denylist), never the cluster's. --quick: 300")
    parser.add_argument("--hostile-rounds", type=int, default=3, metavar="N",
                        help="rounds of the hostile measurement: each round writes a share of every kind of record, "
                             "one kind and topic at a time, the order rotating; medians are over rounds; --quick: 1")
    parser.add_argument("--no-kafkacrypto", action="store_true", help="do not measure kafkacrypto even if installed")
    parser.add_argument("--kafkacrypto-client", choices=("kafka-python", "auto"), default="kafka-python",
                        help="Kafka client under kafkacrypto: kafka-python (as kafkaratchet uses) or whatever it "
                             "picks itself (confluent-kafka when importable)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="directory for the .json, .md and .png")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("-v", "--verbose", action="store_true", help="log kafkaratchet's INFO messages")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.sample_time, args.sizes = 2, 0.002, (64, 16 * 1024)
        args.records, args.e2e_sizes, args.e2e_rounds = 200, (64,), 1
        args.kx_runs, args.kx_variants, args.records_kx = 1, ("admin",), 10
        args.idle_windows, args.idle_window, args.idle_settle = 2, 0.5, 0.2
        args.import_rounds, args.construct_rounds, args.writer_seconds = 1, 1, 0.05
        args.hostile_records, args.hostile_rounds = 300, 1
    else:
        args.records_kx = 100
    return args


def _kx_variants(text: str) -> tuple[str | int, ...]:
    variants: list[str | int] = []
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word in ("admin", "nodes"):
            variants.append(word)
        elif word.isdigit() and int(word) > 0:
            variants.append(int(word))
        else:
            raise argparse.ArgumentTypeError(f"{word!r}: a key-exchange variant is admin, nodes or a partition count")
    if not variants:
        raise argparse.ArgumentTypeError("at least one key-exchange variant")
    return tuple(variants)


def _cpu_pressure() -> float:
    """Linux pressure stall information: % of the last 60 s in which some runnable task waited for a CPU."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(dict(field.split("=") for field in first.split()[1:])["avg60"])
    except (OSError, ValueError, KeyError, IndexError):
        return float("nan")


def _versions() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    try:
        import crc32c  # noqa: F401

        crc = "installed"
    except ImportError:
        crc = "MISSING (kafka-python falls back to pure-Python checksums)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"python": platform.python_version(), "machine": f"{platform.system()} {platform.machine()}",
            "cpus": os.cpu_count(), "kafka_python": version("kafka-python"), "pynacl": version("PyNaCl"),
            "kafkaratchet": version("kafkaratchet"), "crc32c": crc, "load_average_at_start": load,
            "cpu_pressure_at_start": _cpu_pressure()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with _logging(args.verbose):
        return _run(args, argv)


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Log to stderr while the bench runs (kafkaratchet's warnings only with -v); restored afterwards."""
    ours = logging.getLogger("kafkaratchet")
    level = ours.level
    root = logging.getLogger()
    handler = None
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    ours.setLevel(logging.INFO if verbose else logging.ERROR)
    try:
        yield
    finally:
        ours.setLevel(level)
        if handler is not None:
            root.removeHandler(handler)


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    chosen = [m for m in MEASUREMENTS if (not args.only or m in args.only) and m not in args.skip]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    meta = _versions()
    meta.update(date=dt.datetime.now().strftime("%Y-%m-%d %H:%M"), command="python -m bench " + " ".join(
        sys.argv[1:] if argv is None else argv), quick=args.quick)
    if meta["crc32c"] != "installed":
        say("warning: the crc32c extension is not installed; end-to-end numbers will hide the cost of encryption")
    kc_ok, kc_reason = ((False, "disabled with --no-kafkacrypto") if args.no_kafkacrypto
                        else kafkacrypto_available(args.kafkacrypto_client))
    results: dict[str, Any] = {"meta": meta}
    if kc_ok:
        meta["kafkacrypto"] = metadata.version("kafkacrypto") + f" on {args.kafkacrypto_client}"
    else:
        results["kafkacrypto_skipped"] = kc_reason
        say(f"kafkacrypto comparisons skipped: {kc_reason}")

    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_kafka())
        engine = stack.enter_context(engines.running(args.broker, args.bootstrap_servers, say))
        meta["broker"] = engine.as_dict()
        say(f"broker: {engine.label} ({engine.origin}; {engine.settings}) at {engine.bootstrap_servers}")
        bootstrap = engine.bootstrap_servers
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafkaratchet-bench-")))
        trust = Trust(workdir, bootstrap)
        configs = {name: trust.provision(name, role) for name, role in
                   (("bench-producer", "producer"), ("bench-consumer", "consumer"), ("bench-prodcon", "prodcon"))}
        kc_configs: tuple[Path, Path] | None = None
        if kc_ok:
            from . import kcnode

            kc_configs = (kcnode.provision(workdir, "kc-producer", bootstrap),
                          kcnode.provision(workdir, "kc-consumer", bootstrap))

        if "serdes" in chosen or "writers" in chosen:
            with contextlib.ExitStack() as nodes:
                producer = nodes.enter_context(RunningNode(configs["bench-producer"]))
                consumer = nodes.enter_context(RunningNode(configs["bench-consumer"]))
                kc_nodes = None
                if kc_configs is not None:
                    from .kcnode import KCNode

                    kc_nodes = (nodes.enter_context(KCNode(kc_configs[0])), nodes.enter_context(KCNode(kc_configs[1])))
                if "serdes" in chosen:
                    from . import micro

                    say("serializers and deserializers ...")
                    results["serdes"] = micro.run(producer, consumer, kc_nodes, rounds=args.rounds,
                                                  sample_time=args.sample_time, sizes=args.sizes, say=say)
                if "writers" in chosen:
                    from . import writers

                    say("many writers ...")
                    results["writers"] = writers.run(producer, kc_nodes[0] if kc_nodes else None, rounds=args.rounds,
                                                     duration=args.writer_seconds)
        if "e2e" in chosen:
            from . import e2e

            say("end to end through the broker ...")
            pair = (configs["bench-producer"], configs["bench-consumer"])
            modes: dict[str, tuple[Path, Path] | None] = {
                "plaintext": None, "padded": None, "idle-node": pair, "kafkaratchet": pair}
            if kc_configs is not None:
                modes["kafkacrypto"] = kc_configs
            results["e2e"] = e2e.run(bootstrap, modes, records=args.records, sizes=args.e2e_sizes,
                                     rounds=args.e2e_rounds, say=say)
        if "keyexchange" in chosen:
            from . import keyexchange

            say("key exchange with fresh consumers ...")
            results["keyexchange"] = keyexchange.run(trust, configs["bench-prodcon"], runs=args.kx_runs,
                                                     records=args.records_kx, variants=args.kx_variants,
                                                     settle=args.kx_settle, say=say)
        if "idle" in chosen:
            from . import idle

            say("idle nodes, each alone in its process ...")
            results["idle"] = idle.run(trust, windows=args.idle_windows, window=args.idle_window,
                                       settle=args.idle_settle, say=say)
        if "startup" in chosen:
            from . import startup

            say("import and construction times ...")
            results["startup"] = {
                "imports": startup.run_imports(rounds=args.import_rounds, with_kafkacrypto=kc_ok),
                "construction": startup.run_construction(configs["bench-prodcon"],
                                                         kc_configs[0] if kc_configs else None,
                                                         rounds=args.construct_rounds)}
        if "hostile" in chosen:
            from . import hostile

            say("hostile traffic against a producer and a consumer node ...")
            results["hostile"] = hostile.run(trust, records=args.hostile_records, rounds=args.hostile_rounds,
                                             say=say)
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["load_average_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    meta["cpu_pressure_at_end"] = _cpu_pressure()
    markdown, targets = report.build(results)
    results["targets"] = [t.as_dict() for t in targets]
    print(markdown)
    if not args.no_write:
        subset = "" if len(chosen) == len(MEASUREMENTS) else "-" + "-".join(chosen)  # never overwrites a full run
        stem = f"{dt.date.today().isoformat()}-{engine.tag}{subset}" + ("-quick" if args.quick else "")
        for path in report.write(results, args.output, stem, markdown):
            say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
