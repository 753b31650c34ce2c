"""``python -m bench``: every measurement of the benchmark suite, side by side, into one table.

    python -m bench                 # the full suite (several minutes), results in bench/results/
    python -m bench --quick         # smoke mode: every measurement once, tiny, seconds (what CI runs)
    python -m bench --only serdes --only writers --rounds 31
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

from . import report
from .common import SIZES, RunningNode, Trust, kafkacrypto_available, quiet_kafka

MEASUREMENTS = ("serdes", "e2e", "keyexchange", "startup", "writers", "hostile")
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="kafkaratchet's benchmark suite. Runs, side by side with interleaved repetitions: raw "
                    "XChaCha20-Poly1305 against the serializers and deserializers of kafkaratchet (and kafkacrypto "
                    "when installed) per record size, bytes added per record, end-to-end throughput through a broker "
                    "(producer and consumer in separate processes, plaintext against encrypted), a fresh consumer's "
                    "time to its first decrypted record, import and KafkaCrypto construction times, and 4 writer "
                    "threads sharing one KafkaCrypto; and (hostile) a producer and a consumer node under hostile "
                    "traffic written straight to their topics: forged and re-wrapped trust updates, 64 KiB pattern "
                    "bombs, self-denials, squatted request ids, replays, bogus key ids, with the node CPU per "
                    "hostile record and whether the nodes still decrypt, keep their trust lists, restart, and "
                    "whether a fresh node still replays the trust topics. Prints a Markdown table with the targets "
                    "of issue 6 and writes bench/results/<date>.json, .md and .png (the plot needs matplotlib).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    parser.add_argument("--kx-partitions", type=lambda s: tuple(int(x) for x in s.split(",") if x), default=(1,),
                        help="besides auto-created topics, also run the key exchange with topics created with these "
                             "partition counts (comma-separated; empty for none)")
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
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT",
                        help="use this Kafka cluster instead of starting the embedded broker")
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
        args.kx_runs, args.kx_partitions, args.records_kx = 1, (), 10
        args.import_rounds, args.construct_rounds, args.writer_seconds = 1, 1, 0.05
        args.hostile_records, args.hostile_rounds = 300, 1
    else:
        args.records_kx = 100
    return args


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
            "kafkaratchet": version("kafkaratchet"), "crc32c": crc, "load_average_at_start": load}


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
        bootstrap = args.bootstrap_servers
        if bootstrap is None:
            from kafkaratchet.tools.broker import EmbeddedBroker

            say("starting the embedded broker ...")
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
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
                                                     records=args.records_kx,
                                                     partition_variants=(None, *args.kx_partitions), say=say)
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
    markdown, targets = report.build(results)
    results["targets"] = [t.as_dict() for t in targets]
    print(markdown)
    if not args.no_write:
        stem = dt.date.today().isoformat() + ("-quick" if args.quick else "")
        for path in report.write(results, args.output, stem, markdown):
            say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
