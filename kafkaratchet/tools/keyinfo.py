"""``kafkaratchet keyinfo``: what a node is, whom it trusts, and how long it has left.

An operator looking at a node wants the answers a failing key exchange would
otherwise reveal the hard way: which key is this, which chains does it hold and
do they still validate, when do they expire (in time for the chain server to
renew them?), which roots does it trust, which keys are denied, and which of its
own producer keys are still kept for late consumers. Everything shown is
public: fingerprints, constraints, key *ids* and ages. The identity is read only
to compute its public key and to open the key archive; no key byte is ever
printed, in text or JSON.

Exit status: 0, or 1 when a warning was printed (a chain expired, expiring
within the window, or not validating), so monitoring can act on it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from kafkaratchet.errors import ChainError, ConfigError, KafkaRatchetError
from kafkaratchet.files.keyring import KeyRing
from kafkaratchet.files.nodefiles import NodeFiles
from kafkaratchet.files.seed import Ratchet
from kafkaratchet.files.settings import KeyinfoSettings, NodeSettings
from kafkaratchet.files.store import KafkaCryptoStore
from kafkaratchet.protocol.certs import Certificate, Chain
from kafkaratchet.protocol.identity import derive_subkey, fingerprint
from kafkaratchet.protocol.ratchet import DataKey
from kafkaratchet.protocol.trust import TrustStore
from kafkaratchet.protocol.validation import chain_expiry

__all__ = ["main", "inspect_node", "render_text", "describe_chain", "chain_expiry", "format_time",
           "format_duration", "DEFAULT_WARN_WITHIN"]

#: warn about chains expiring within a day, unless the config names the chain server's refresh window
DEFAULT_WARN_WITHIN: int = KeyinfoSettings.chain_refresh_window


def format_time(timestamp: int) -> str:
    if timestamp == 0:
        return "never"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(seconds: float) -> str:
    """Two most significant units: ``364 d 23 h``, ``2 h 3 min``, ``45 s``."""
    left = int(abs(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size} {unit}")
            left %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _topics_text(topics: tuple[str, ...] | None) -> str:
    return "all" if topics is None else " ".join(topics)


def _expiry_text(expiry: int, now: float) -> str:
    if expiry == 0:
        return "never expires"
    if expiry <= now:
        return f"EXPIRED {format_time(expiry)} ({format_duration(now - expiry)} ago)"
    return f"expires {format_time(expiry)} (in {format_duration(expiry - now)})"


def describe_chain(chain: Chain, *, root: Certificate | None = None, now: float | None = None) -> str:
    """One line for a chain: usages, topics, path length and expiry."""
    moment = time.time() if now is None else now
    leaf = chain.leaf
    pathlen = "-" if leaf.pathlen is None else str(leaf.pathlen)
    return (f"usages {','.join(sorted(leaf.usages))} | topics {_topics_text(leaf.topics)} | pathlen {pathlen} | "
            f"{_expiry_text(chain_expiry(chain, root), moment)}")


def _warn_within(store: KafkaCryptoStore, override: int | None) -> tuple[int, str]:
    if override is not None:
        if override < 0:
            raise ConfigError("--warn-within must not be negative")
        return override, "--warn-within"
    if store.load_text("chain_refresh_window", "crypto") is None:
        return DEFAULT_WARN_WITHIN, "default"
    # typed by the schema: a non-negative integer, else a ConfigError naming the key and the file
    return KeyinfoSettings.from_store(store).chain_refresh_window, "[crypto] chain_refresh_window"


def _certificate_info(cert: Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.hex(),
        "subject_fingerprint": fingerprint(cert.subject),
        "issuer_fingerprint": fingerprint(cert.issuer),
        "usages": sorted(cert.usages),
        "topics": None if cert.topics is None else list(cert.topics),
        "pathlen": cert.pathlen,
        "not_before": cert.not_before,
        "expiry": cert.expiry,
    }


def inspect_node(config: Path, *, warn_within: int | None = None, now: float | None = None) -> dict[str, Any]:
    """Everything keyinfo reports, as plain data (the JSON output is exactly this)."""
    moment = time.time() if now is None else now
    store = KafkaCryptoStore(config)
    window, window_source = _warn_within(store, warn_within)
    settings = NodeSettings.from_store(store)
    # lenient: every problem of the node's files is one more warning, and the rest is still reported
    files, warnings = NodeFiles.read(store, strict=False)
    identity = files.identity
    roots = files.root_certificates
    allowlist = [{"fingerprint": fingerprint(cert.subject), **_certificate_info(cert),
                  "expired": bool(cert.expiry and cert.expiry <= moment)} for cert in roots]
    trust = TrustStore(roots, files.denied_keys, skew=settings.clock_skew)
    by_subject = {cert.subject: cert for cert in roots}
    updates = files.trust_updates
    trust.apply_many(updates, now=moment)
    state = trust.state
    for key, admitted in sorted(state.roots.items()):
        if not admitted.provisioned:
            allowlist.append({"fingerprint": fingerprint(key), "subject": key.hex(), "subject_fingerprint":
                              fingerprint(key), "issuer_fingerprint": None, "usages": sorted(admitted.usages),
                              "topics": None if admitted.topics is None else list(admitted.topics),
                              "pathlen": admitted.pathlen,
                              "not_before": admitted.not_before, "expiry": admitted.expiry, "source": "trust update",
                              "expired": bool(admitted.expiry and admitted.expiry <= moment)})
    denied = sorted(state.denied)
    scoped = [{"fingerprint": fingerprint(k), "public_key": k.hex(), "topics": list(scope)}
              for k, scopes in sorted(state.scoped.items()) for scope in scopes]
    chains = []
    for name in sorted({*files.chains, *files.bad_chains}):
        if name in files.bad_chains:  # its warning is among the files' problems
            chains.append({"name": name, "status": "invalid", "reason": f"unparsable: {files.bad_chains[name]}"})
            continue
        chain = files.chains[name]
        root = by_subject.get(chain.certificates[0].issuer)
        expiry = chain_expiry(chain, root)
        try:
            trust.validate(chain, now=moment)
            status, reason = "valid", None
        except ChainError as exc:
            status, reason = "invalid", str(exc)
        entry: dict[str, Any] = {
            "name": name,
            "status": status,
            "reason": reason,
            "for_this_node": None if identity is None else chain.subject == identity.public_key,
            "root_fingerprint": fingerprint(chain.certificates[0].issuer),
            "usages": sorted(chain.leaf.usages),
            "topics": None if chain.leaf.topics is None else list(chain.leaf.topics),
            "pathlen": chain.leaf.pathlen,
            "expiry": expiry,
            "expires_in": None if expiry == 0 else int(expiry - moment),
            "certificates": [_certificate_info(c) for c in chain.certificates],
        }
        if expiry and expiry <= moment:
            warnings.append(f"{name} EXPIRED {format_duration(moment - expiry)} ago ({format_time(expiry)})")
        elif expiry and expiry - moment <= window:
            warnings.append(f"{name} expires in {format_duration(expiry - moment)} ({format_time(expiry)}), "
                            f"within the {format_duration(window)} warning window")
        if status != "valid" and not (reason or "").startswith("expired"):
            warnings.append(f"{name} does not validate: {reason}")
        chains.append(entry)
    if not chains:
        warnings.append("the node holds no chain: it can neither hand out nor obtain keys")

    seed_path = store.secret_path("ratchet", ".seed")
    epoch: int | None = None
    if seed_path.exists():
        try:
            epoch = Ratchet(seed_path).epoch
        except KafkaRatchetError as exc:
            warnings.append(f"seed file {seed_path}: {exc}")
    keys: dict[str, list[dict[str, Any]]] = {}
    held: list[DataKey] = []
    if identity is not None:  # without it the archive cannot be opened (its problem is already a warning)
        try:
            held = KeyRing(store.secret_path("keyarchive", ".keys"),
                           derive_subkey(identity, b"kr-key-archive")).own_keys()
        except KafkaRatchetError as exc:  # report the rest; an unreadable archive is one more thing to fix
            warnings.append(f"key archive: {exc}")
    for own in sorted(held, key=lambda k: (k.root, k.created, k.key_id)):
        keys.setdefault(own.root, []).append({"key_id": own.key_id.hex(), "created": int(own.created),
                                              "age": max(0, int(moment - own.created))})
    return {
        "node_id": store.node_id,
        "config": str(store.path),
        "role": store.load_value("role", "crypto"),
        "fingerprint": None if identity is None else identity.fingerprint,
        "public_key": None if identity is None else identity.public_key.hex(),
        "bootstrap_servers": store.load_value("bootstrap_servers", "kafka"),
        "now": int(moment),
        "warn_within": window,
        "warn_within_source": window_source,
        "chains": chains,
        "allowlist": allowlist,
        "denylist": [{"fingerprint": fingerprint(k), "public_key": k.hex()} for k in denied],
        "scoped_denials": scoped,
        "trust_updates": len(updates),
        "ratchet_epoch": epoch,
        "producer_keys": keys,
        "warnings": warnings,
    }


def render_text(report: dict[str, Any]) -> str:
    now = report["now"]
    lines = [
        f"node         {report['node_id']}",
        f"config       {report['config']}",
        f"fingerprint  {report['fingerprint']}",
        f"public key   {report['public_key']}",
    ]
    if report["role"]:
        lines.append(f"role         {report['role']}")
    if report["bootstrap_servers"]:
        lines.append(f"kafka        {report['bootstrap_servers']}")
    lines += ["", f"chains ({len(report['chains'])})"]
    for chain in report["chains"]:
        if "usages" not in chain:
            lines.append(f"  {chain['name']}  INVALID ({chain['reason']})")
            continue
        state = "valid" if chain["status"] == "valid" else f"INVALID ({chain['reason']})"
        path = " -> ".join(["root " + chain["root_fingerprint"]]
                           + [c["subject_fingerprint"] for c in chain["certificates"]])
        pathlen = "-" if chain["pathlen"] is None else chain["pathlen"]
        lines += [
            f"  {chain['name']}  {state}",
            f"    usages   {', '.join(chain['usages'])}",
            f"    topics   {_topics_text(None if chain['topics'] is None else tuple(chain['topics']))}",
            f"    pathlen  {pathlen}",
            f"    expiry   {_expiry_text(chain['expiry'], now)}",
            f"    path     {path}",
        ]
    lines += ["", f"allowlist ({len(report['allowlist'])})"]
    for root in report["allowlist"]:
        pathlen = "-" if root["pathlen"] is None else root["pathlen"]
        lines.append(f"  {root['fingerprint']}  usages {','.join(root['usages'])}  topics "
                     f"{_topics_text(None if root['topics'] is None else tuple(root['topics']))}  pathlen {pathlen}  "
                     f"{_expiry_text(root['expiry'], now)}")
    lines += ["", f"denylist ({len(report['denylist'])})"]
    lines += [f"  {entry['fingerprint']}  {entry['public_key']}" for entry in report["denylist"]]
    if report["scoped_denials"]:
        lines += ["", f"denied for some topics ({len(report['scoped_denials'])})"]
        lines += [f"  {entry['fingerprint']}  topics {' '.join(entry['topics'])}" for entry in report["scoped_denials"]]
    epoch = report["ratchet_epoch"]
    held = sum(len(v) for v in report["producer_keys"].values())
    lines += ["", f"producer keys ({held} held{'' if epoch is None else f', ratchet epoch {epoch}'})"]
    for root, keys in report["producer_keys"].items():
        lines.append(f"  {root}")
        lines += [f"    {k['key_id']}  age {format_duration(k['age'])}  (created {format_time(k['created'])})"
                  for k in keys]
    if report["warnings"]:
        lines.append("")
        lines += [f"WARNING: {w}" for w in report["warnings"]]
    return "\n".join(lines) + "\n"


def main(config: Path, *, as_json: bool = False, warn_within: int | None = None, out: TextIO) -> int:
    """Print the report for the node configured in ``config``; 1 when there is a warning."""
    report = inspect_node(config, warn_within=warn_within)
    if as_json:
        out.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        out.write(render_text(report))
    return 1 if report["warnings"] else 0
