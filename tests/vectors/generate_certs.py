"""Regenerate certificates.json, chains.json and trust_updates.json: python tests/vectors/generate_certs.py.

Identities come from fixed seeds (bytes([n]) * 32), every time is relative to
the fixed NOW, and Ed25519 signatures are deterministic, so the files are
byte-for-byte stable. ``--check`` compares instead of writing (exit 1 on a
difference). Layout: docs/PROTOCOL.md, section 5, "Test vectors".
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vectorfiles import write_or_check

from kafkaratchet.protocol import wire
from kafkaratchet.protocol.certs import (
    CERT_CONTEXT,
    DEFAULT_SKEW,
    Certificate,
    Chain,
    Usage,
    issue_certificate,
    self_signed_root,
)
from kafkaratchet.protocol.identity import SigningIdentity
from kafkaratchet.protocol.trust import TRUST_CONTEXT, make_trust_update

HERE = Path(__file__).resolve().parent
NOW = 1_700_000_000
DAY = 86_400
#: not_before of every certificate unless a case is about not_before.
NB = NOW - DAY


def ident(n: int) -> SigningIdentity:
    return SigningIdentity(bytes([n]) * 32)


ROOT = ident(1)  # all topics, all usages, unlimited path length, never expires
ROOT_B = ident(2)  # narrow root: two topics, four usages, pathlen 1, expires in a year
ROOT_OLD = ident(3)  # an expired root
ROOT_DENIED = ident(4)  # on the allowlist and on the denylist
INTER = ident(10)
INTER2 = ident(11)
LEAF = ident(20)
OTHER = ident(21)
DENIED = ident(30)  # on the denylist
STRANGER = ident(40)  # on no list
ADMIN = ident(50)
ADMIN2 = ident(51)
ADMIN_NARROW = ident(52)  # may allowlist only consume-only roots for "orders"
NEWROOT = ident(60)


def issue(issuer: SigningIdentity, subject: SigningIdentity, **kw: Any) -> Certificate:
    kw.setdefault("not_before", NB)
    kw.setdefault("usages", [Usage.PRODUCE, Usage.CONSUME])
    return issue_certificate(issuer, subject.public_key, **kw)


def raw_cert(signer: SigningIdentity, body: list[Any], *, version: int = 1) -> bytes:
    """A certificate with any body at all, validly signed, to exercise the decoder."""
    data = wire.pack(body)
    return wire.pack([version, data, signer.sign(CERT_CONTEXT, data)])


def good_body(**changes: Any) -> list[Any]:
    fields = {"subject": LEAF.public_key, "issuer": ROOT.public_key, "not_before": NB, "expiry": 0,
              "topics": ["orders"], "usages": ["consume"], "pathlen": 0, "extra": {}}
    fields.update(changes)
    return list(fields.values())


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def hexkeys(*ids: SigningIdentity) -> list[str]:
    return [i.public_key.hex() for i in ids]


def cert_expect(cert: Certificate, allows: dict[str, bool]) -> dict[str, Any]:
    return {
        "subject": cert.subject.hex(),
        "issuer": cert.issuer.hex(),
        "not_before": cert.not_before,
        "expiry": cert.expiry,
        "topics": None if cert.topics is None else list(cert.topics),
        "usages": sorted(cert.usages),
        "pathlen": cert.pathlen,
        "extra": dict(cert.extra),
        "self_signed": cert.self_signed,
        "body": cert.body.hex(),
        "allows_topic": allows,
    }


def certificate_vectors() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []

    def good(name: str, cert: Certificate, allows: dict[str, bool]) -> None:
        cases.append({"name": name, "certificate": cert.encode().hex(), "expect": cert_expect(cert, allows)})

    def bad(name: str, data: bytes, error: str) -> None:
        cases.append({"name": name, "certificate": data.hex(), "error": error})

    good("good_literal_topics", issue(ROOT, LEAF, topics=["orders", "payments"], expiry=NOW + 30 * DAY),
         {"orders": True, "payments": True, "orders2": False, "Orders": False})
    good("good_regex_topic", issue(ROOT, LEAF, topics=["^sensor-[0-9]+"], usages=[Usage.PRODUCE]),
         {"sensor-12": True, "sensor-": False, "xsensor-1": False, "sensor-1x": False})
    good("good_self_signed_root", self_signed_root(ROOT, not_before=NB), {"anything": True})
    good("good_extra_preserved", issue(ROOT, LEAF, extra={"note": "kept", "n": 7}, pathlen=None),
         {"orders": True})
    good("good_unknown_usage", issue(ROOT, LEAF, usages=[Usage.PRODUCE, "future-usage"], topics=[]),
         {"orders": False})
    good("good_max_pathlen_and_usage_lengths",
         issue(ROOT, LEAF, usages=["u" * 64], topics=["t" * 249, "^" + "x" * 255], pathlen=255),
         {"t" * 249: True, "x" * 255: True})

    valid = issue(ROOT, LEAF).encode()
    bad("bad_unsupported_version", raw_cert(ROOT, good_body(), version=2), "UnsupportedVersionError")
    bad("bad_truncated", valid[: len(valid) // 2], "FormatError")
    bad("bad_trailing_byte", valid + b"\x00", "FormatError")
    bad("bad_not_msgpack", b"\xc1", "FormatError")
    bad("bad_outer_four_items", wire.pack([1, wire.pack(good_body()), b"\x00" * 64, 0]), "FormatError")
    bad("bad_signature_short", wire.pack([1, wire.pack(good_body()), b"\x00" * 63]), "FormatError")
    bad("bad_body_nine_fields", raw_cert(ROOT, good_body() + [None]), "FormatError")
    bad("bad_subject_31_bytes", raw_cert(ROOT, good_body(subject=b"\x01" * 31)), "FormatError")
    bad("bad_issuer_is_str", raw_cert(ROOT, good_body(issuer="root")), "FormatError")
    bad("bad_negative_expiry", raw_cert(ROOT, good_body(expiry=-1)), "FormatError")
    bad("bad_not_before_bool", raw_cert(ROOT, good_body(not_before=True)), "FormatError")
    bad("bad_topic_empty", raw_cert(ROOT, good_body(topics=[""])), "FormatError")
    bad("bad_topic_too_long", raw_cert(ROOT, good_body(topics=["t" * 250])), "FormatError")
    bad("bad_regex_too_long", raw_cert(ROOT, good_body(topics=["^" + "x" * 256])), "FormatError")
    bad("bad_duplicate_usage", raw_cert(ROOT, good_body(usages=["consume", "consume"])), "FormatError")
    bad("bad_33_usages", raw_cert(ROOT, good_body(usages=[f"u{i}" for i in range(33)])), "FormatError")
    bad("bad_usage_65_chars", raw_cert(ROOT, good_body(usages=["u" * 65])), "FormatError")
    bad("bad_pathlen_256", raw_cert(ROOT, good_body(pathlen=256)), "FormatError")
    bad("bad_extra_bin_key", raw_cert(ROOT, good_body(extra={b"k": 1})), "FormatError")
    bad("bad_extra_is_list", raw_cert(ROOT, good_body(extra=[])), "FormatError")
    bad("bad_signature_flipped", flip(valid, len(valid) - 5), "SignatureError")
    bad("bad_signed_by_other_key", raw_cert(OTHER, good_body()), "SignatureError")
    return {
        "description": "certificate decoding, fields, topic matching and signature "
                       "(docs/PROTOCOL.md, section 5)",
        "now": NOW,
        "cases": cases,
    }


def chain_vectors() -> dict[str, Any]:
    root = self_signed_root(ROOT, not_before=NB)
    root_b = self_signed_root(ROOT_B, not_before=NB, expiry=NOW + 365 * DAY, pathlen=1,
                              topics=["orders", "^metrics-.*"],
                              usages=[Usage.PRODUCE, Usage.CONSUME, Usage.SUBSCRIBE, Usage.CHAIN_ISSUE, "future-usage"])
    root_old = self_signed_root(ROOT_OLD, not_before=NB - 400 * DAY, expiry=NOW - DAY)
    root_denied = self_signed_root(ROOT_DENIED, not_before=NB)
    cases: list[dict[str, Any]] = []

    def good(name: str, chain: Chain, root_key: SigningIdentity, allows: list[list[Any]]) -> None:
        leaf = chain.leaf
        expiries = [c.expiry for c in chain.certificates if c.expiry]
        expiries += [r.expiry for r in (root, root_b) if r.subject == root_key.public_key and r.expiry]
        cases.append({"name": name, "chain": chain.encode().hex(), "expect": {
            "subject": leaf.subject.hex(),
            "root": root_key.public_key.hex(),
            "topics": None if leaf.topics is None else list(leaf.topics),
            "usages": sorted(leaf.usages),
            "expiry": min(expiries) if expiries else 0,
            "allows": allows,
        }})

    def bad(name: str, data: bytes, error: str) -> None:
        cases.append({"name": name, "chain": data.hex(), "error": error})

    def raw_chain(*certs: Certificate | bytes, version: int = 1) -> bytes:
        return wire.pack([version, [c if isinstance(c, bytes) else c.encode() for c in certs]])

    ca = issue(ROOT, INTER, usages=[Usage.PRODUCE, Usage.CONSUME, Usage.CHAIN_ISSUE],
               topics=["^orders.*", "metrics-cpu"], pathlen=1, expiry=NOW + 1000)
    leaf_ca = issue(INTER, LEAF, usages=[Usage.CONSUME], topics=["orders-eu", "metrics-cpu"],
                    expiry=NOW + 5000)
    direct = issue(ROOT, LEAF, topics=["orders"])

    good("good_direct_leaf", Chain.of(direct), ROOT,
         [["produce", "orders", True], ["consume", "orders", True], ["produce", "payments", False],
          ["allowlist", "orders", False]])
    good("good_intermediate_expiry_clamped", Chain.of(ca, leaf_ca), ROOT,
         [["consume", "orders-eu", True], ["consume", "metrics-cpu", True], ["produce", "orders-eu", False],
          ["consume", "orders-us", False]])
    good("good_child_regex_equal_to_parent",
         Chain.of(issue(ROOT_B, LEAF, topics=["^metrics-.*"], usages=[Usage.SUBSCRIBE])), ROOT_B,
         [["subscribe", "metrics-mem", True], ["subscribe", "orders", False], ["subscribe", "metrics", False]])
    good("good_literal_under_parent_regex",
         Chain.of(issue(ROOT_B, LEAF, topics=["metrics-cpu", "orders"])), ROOT_B,
         [["produce", "metrics-cpu", True], ["produce", "orders", True], ["produce", "metrics-mem", False]])
    good("good_pathlen_exactly_at_limit",
         Chain.of(issue(ROOT, INTER, pathlen=1), issue(INTER, INTER2, pathlen=None)), ROOT,
         [["produce", "anything", True]])
    good("good_expired_within_skew",
         Chain.of(issue(ROOT, LEAF, expiry=NOW - DEFAULT_SKEW + 10)), ROOT, [["produce", "x", True]])
    good("good_not_yet_valid_within_skew",
         Chain.of(issue(ROOT, LEAF, not_before=NOW + DEFAULT_SKEW - 10)), ROOT, [["produce", "x", True]])
    good("good_unknown_usage_passes_through",
         Chain.of(issue(ROOT_B, LEAF, usages=["future-usage"], topics=["orders"])), ROOT_B,
         [["future-usage", "orders", True], ["produce", "orders", False]])
    eight = [issue(ROOT, ident(100), pathlen=None, usages=Usage.ALL)]
    for n in range(101, 107):
        eight.append(issue(ident(n - 1), ident(n), pathlen=None, usages=Usage.ALL))
    eight.append(issue(ident(106), LEAF))
    good("good_eight_certificates", Chain.of(*eight), ROOT, [["consume", "x", True]])
    good("good_root_expiry_clamps",
         Chain.of(issue(ROOT_B, LEAF, topics=["orders"], expiry=NOW + 400 * DAY)), ROOT_B,
         [["produce", "orders", True]])

    bad("bad_unknown_root", raw_chain(issue(STRANGER, LEAF)), "unknown-root")
    bad("bad_broken_link", raw_chain(issue(ROOT, INTER, pathlen=None), issue(OTHER, LEAF)), "broken-link")
    bad("bad_signature", raw_chain(flip(direct.encode(), len(direct.encode()) - 1)), "bad-signature")
    bad("bad_signed_by_wrong_key", raw_chain(raw_cert(OTHER, good_body())), "bad-signature")
    bad("bad_expired_leaf", raw_chain(issue(ROOT, LEAF, expiry=NOW - DEFAULT_SKEW - 10)), "expired")
    bad("bad_expired_intermediate", raw_chain(issue(ROOT, INTER, pathlen=None, expiry=NOW - DAY),
                                              issue(INTER, LEAF)), "expired")
    bad("bad_expired_root", raw_chain(issue(ROOT_OLD, LEAF, not_before=NB - 400 * DAY)), "expired")
    bad("bad_not_yet_valid", raw_chain(issue(ROOT, LEAF, not_before=NOW + DEFAULT_SKEW + 10)), "not-yet-valid")
    bad("bad_widened_topics_literal", raw_chain(issue(ROOT_B, LEAF, topics=["payments"])), "widened-topics")
    bad("bad_widened_topics_all", raw_chain(issue(ROOT_B, LEAF, topics=None)), "widened-topics")
    bad("bad_widened_topics_narrower_regex", raw_chain(issue(ROOT_B, LEAF, topics=["^metrics-cpu.*"])),
        "widened-topics")
    bad("bad_widened_topics_literal_not_fullmatch", raw_chain(issue(ROOT_B, LEAF, topics=["xmetrics-a"])),
        "widened-topics")
    bad("bad_widened_topics_below_intermediate", raw_chain(ca, issue(INTER, LEAF, topics=["payments"])),
        "widened-topics")
    bad("bad_widened_usages", raw_chain(issue(ROOT_B, LEAF, topics=["orders"], usages=[Usage.ALLOWLIST])),
        "widened-usages")
    bad("bad_unknown_usage_not_in_parent", raw_chain(issue(ROOT, LEAF, usages=["future-usage"])),
        "widened-usages")
    bad("bad_widened_usages_below_intermediate",
        raw_chain(ca, issue(INTER, LEAF, topics=["orders"], usages=[Usage.SUBSCRIBE])), "widened-usages")
    bad("bad_pathlen_exceeded_by_root",
        raw_chain(issue(ROOT_B, INTER, topics=["orders"], pathlen=None), issue(INTER, LEAF, topics=["orders"])),
        "pathlen-exceeded")
    bad("bad_pathlen_exceeded_by_intermediate",
        raw_chain(issue(ROOT, INTER, pathlen=1), issue(INTER, INTER2, pathlen=None), issue(INTER2, LEAF)),
        "pathlen-exceeded")
    bad("bad_pathlen_zero_intermediate", raw_chain(issue(ROOT, INTER, pathlen=0), issue(INTER, LEAF)),
        "pathlen-exceeded")
    bad("bad_pathlen_exceeded_below_intermediate",
        raw_chain(ca, issue(INTER, INTER2, topics=["orders"], pathlen=None), issue(INTER2, LEAF, topics=["orders"])),
        "pathlen-exceeded")
    bad("bad_denylisted_intermediate", raw_chain(issue(ROOT, DENIED, pathlen=None), issue(DENIED, LEAF)),
        "denylisted")
    bad("bad_denylisted_leaf", raw_chain(issue(ROOT, DENIED)), "denylisted")
    bad("bad_denylisted_root", raw_chain(issue(ROOT_DENIED, LEAF)), "denylisted")
    nine = [c.encode() for c in eight[:-1]]
    nine += [issue(ident(106), ident(107), pathlen=None).encode(), issue(ident(107), LEAF).encode()]
    bad("bad_nine_certificates", raw_chain(*nine), "FormatError")
    bad("bad_empty_chain", raw_chain(), "FormatError")
    bad("bad_chain_version", raw_chain(direct, version=2), "UnsupportedVersionError")
    good_bytes = Chain.of(direct).encode()
    bad("bad_chain_truncated", good_bytes[:-1], "FormatError")
    bad("bad_chain_item_not_bin", wire.pack([1, ["not a certificate"]]), "FormatError")
    bad("bad_chain_certificate_malformed", raw_chain(raw_cert(ROOT, good_body(pathlen=-1))), "FormatError")
    # patterns are compiled only once every signature of the chain verified (decoding never compiles)
    bad("bad_regex_does_not_compile", raw_chain(raw_cert(ROOT, good_body(topics=["^(orders"]))), "FormatError")
    return {
        "description": "chain validation against an allowlist and a denylist (docs/PROTOCOL.md, section 5)",
        "now": NOW,
        "skew": DEFAULT_SKEW,
        "roots": [c.encode().hex() for c in (root, root_b, root_old, root_denied)],
        "denied": hexkeys(DENIED, ROOT_DENIED),
        "cases": cases,
    }


def trust_update_vectors() -> dict[str, Any]:
    root = self_signed_root(ROOT, not_before=NB)
    root_b = self_signed_root(ROOT_B, usages=[Usage.PRODUCE, Usage.CONSUME, Usage.ALLOWLIST],
                              topics=["orders", "metrics"], pathlen=1, expiry=NOW + 365 * DAY, not_before=NB)
    admin_usages = [Usage.ALLOWLIST, Usage.DENYLIST, Usage.PRODUCE, Usage.CONSUME]
    admin_chain = Chain.of(issue(ROOT, ADMIN, usages=admin_usages))
    admin2_chain = Chain.of(issue(ROOT, ADMIN2, usages=admin_usages))
    narrow_chain = Chain.of(issue(ROOT, ADMIN_NARROW, usages=[Usage.ALLOWLIST, Usage.DENYLIST, Usage.CONSUME],
                                  topics=["orders"]))
    expiring_chain = Chain.of(issue(ROOT, ADMIN2, usages=admin_usages, expiry=NOW + DAY))
    node_chain = Chain.of(issue(ROOT, LEAF, usages=[Usage.PRODUCE, Usage.CONSUME], topics=["orders"]))
    stranger_chain = Chain.of(issue(STRANGER, ADMIN, usages=admin_usages))
    issued = NOW - 600
    new_root = {"topics": ["orders"], "usages": [Usage.PRODUCE, Usage.CONSUME], "not_before": issued}
    cases: list[dict[str, Any]] = []

    def good(name: str, data: bytes, changed: bool, *, denied: Sequence[str] = (),
             scoped: Sequence[tuple[str, list[str]]] = (), roots: Sequence[str] = (),
             changed_roots: Sequence[str] = (), prior: Sequence[bytes] = ()) -> None:
        case: dict[str, Any] = {"name": name, "update": data.hex()}
        if prior:
            case["prior"] = [p.hex() for p in prior]
        case["expect"] = {"changed": changed, "denied_added": list(denied),
                          "scoped_added": [[k, list(t)] for k, t in scoped], "roots_added": list(roots),
                          "roots_changed": list(changed_roots)}
        cases.append(case)

    def bad(name: str, data: bytes, error: str) -> None:
        cases.append({"name": name, "update": data.hex(), "error": error})

    def update(kind: str, signer: SigningIdentity, chain: Chain | None, subject: SigningIdentity,
               **kw: Any) -> Any:
        kw.setdefault("issued_at", issued)
        return make_trust_update(kind, signer, chain, subject.public_key, **kw)

    def body(kind: str, signer: SigningIdentity, subject: SigningIdentity, **changes: Any) -> list[Any]:
        fields: dict[str, Any] = {"kind": kind, "subject": subject.public_key, "signer": signer.public_key,
                                  "issued_at": issued, "topics": None, "usages": [], "not_before": 0,
                                  "expiry": 0, "pathlen": None, "extra": {}}
        fields.update(changes)
        return list(fields.values())

    def envelope(fields: list[Any], signer: SigningIdentity, chain: Chain | None, *,
                 context: bytes = TRUST_CONTEXT, version: int = 2) -> bytes:
        data = wire.pack(fields)
        return wire.pack([version, data, signer.sign(context, data), None if chain is None else chain.encode()])

    # -- what takes effect
    good("good_self_denial_with_a_chain", update("deny", LEAF, node_chain, LEAF).encode(), True,
         denied=hexkeys(LEAF))
    good("good_admin_denial_everywhere", update("deny", ADMIN, admin_chain, STRANGER).encode(), True,
         denied=hexkeys(STRANGER))
    good("good_scoped_denial", update("deny", ADMIN_NARROW, narrow_chain, LEAF, topics=["orders"]).encode(), True,
         scoped=[(LEAF.public_key.hex(), ["orders"])])
    good("good_deny_already_denied", update("deny", ADMIN, admin_chain, DENIED).encode(), False)
    allow = update("allow", ADMIN, admin_chain, NEWROOT, **new_root, pathlen=1, expiry=NOW + 30 * DAY)
    good("good_admin_allows_a_new_root", allow.encode(), True, roots=hexkeys(NEWROOT))
    good("good_allow_within_a_narrow_signer",
         update("allow", ADMIN_NARROW, narrow_chain, NEWROOT, topics=["orders"], usages=[Usage.CONSUME],
                not_before=issued).encode(), True, roots=hexkeys(NEWROOT))
    good("good_root_narrows_itself",
         update("allow", ROOT_B, None, ROOT_B, topics=["orders"], usages=[Usage.CONSUME], pathlen=0,
                expiry=NOW + 200 * DAY, not_before=NB).encode(), True, changed_roots=hexkeys(ROOT_B))
    good("good_root_restates_itself",
         update("allow", ROOT, None, ROOT, usages=list(Usage.ALL), not_before=NB).encode(), False)
    good("good_root_denies_itself", update("deny", ROOT_B, None, ROOT_B).encode(), True, denied=hexkeys(ROOT_B))
    good("good_the_first_of_two_allows_wins_whatever_arrives_first",
         update("allow", ADMIN, admin_chain, NEWROOT, **{**new_root, "usages": [Usage.CONSUME]}).encode(),
         True, changed_roots=hexkeys(NEWROOT),
         prior=[update("allow", ADMIN2, admin2_chain, NEWROOT, **new_root, issued_at=issued + 1).encode()])

    # -- one structure is never another
    cert = issue(ROOT, NEWROOT, usages=list(Usage.ALL))
    bad("bad_certificate_presented_as_an_update", wire.pack([2, cert.body, cert.signature, None]), "FormatError")
    deny_body = body("deny", ADMIN, STRANGER)
    for context in (CERT_CONTEXT, b"kr-request-v1", b"kr-forward-v1", b"kr-answer-v1", b"kr-trust-v1"):
        name = context.decode().removeprefix("kr-").replace("-", "_")
        bad(f"bad_signed_under_{name}", envelope(deny_body, ADMIN, admin_chain, context=context), "SignatureError")
    bad("bad_version_1_update", wire.pack([1, "deny", cert.encode(), admin_chain.encode()]),
        "UnsupportedVersionError")
    bad("bad_update_version_3", envelope(deny_body, ADMIN, admin_chain, version=3), "UnsupportedVersionError")

    # -- rights and scope
    bad("bad_deny_without_denylist_usage", update("deny", LEAF, node_chain, STRANGER).encode(),
        "usage-not-allowed")
    bad("bad_allow_without_allowlist_usage", update("allow", LEAF, node_chain, NEWROOT, **new_root).encode(),
        "usage-not-allowed")
    bad("bad_self_denial_without_a_chain", update("deny", STRANGER, None, STRANGER).encode(), "missing-chain")
    bad("bad_deny_without_chain", update("deny", ADMIN, None, STRANGER).encode(), "missing-chain")
    bad("bad_narrow_denylister_denies_everywhere", update("deny", ADMIN_NARROW, narrow_chain, LEAF).encode(),
        "widened-topics")
    bad("bad_narrow_denylister_outside_its_topics",
        update("deny", ADMIN_NARROW, narrow_chain, LEAF, topics=["payments"]).encode(), "widened-topics")
    bad("bad_deny_a_provisioned_root", update("deny", ADMIN, admin_chain, ROOT_B).encode(), "provisioned-root")
    bad("bad_allow_replaces_a_root", update("allow", ADMIN, admin_chain, ROOT_B, **new_root).encode(),
        "root-exists")
    bad("bad_root_widens_its_topics",
        update("allow", ROOT_B, None, ROOT_B, topics=None, usages=[Usage.CONSUME], pathlen=1,
               expiry=NOW + DAY, not_before=NB).encode(), "widened-topics")
    bad("bad_root_widens_its_usages",
        update("allow", ROOT_B, None, ROOT_B, topics=["orders"], usages=list(Usage.ALL), pathlen=1,
               expiry=NOW + DAY, not_before=NB).encode(), "widened-usages")
    bad("bad_root_removes_its_expiry",
        update("allow", ROOT_B, None, ROOT_B, topics=["orders"], usages=[Usage.CONSUME], pathlen=1, expiry=0,
               not_before=NB).encode(), "widened-validity")
    bad("bad_root_starts_earlier",
        update("allow", ROOT_B, None, ROOT_B, topics=["orders"], usages=[Usage.CONSUME], pathlen=1,
               expiry=NOW + DAY, not_before=NB - 1).encode(), "widened-validity")
    bad("bad_root_lifts_its_path_length",
        update("allow", ROOT_B, None, ROOT_B, topics=["orders"], usages=[Usage.CONSUME], pathlen=None,
               expiry=NOW + DAY, not_before=NB).encode(), "widened-pathlen")
    bad("bad_allow_starts_after_its_issue_time",
        update("allow", ADMIN, admin_chain, NEWROOT, **{**new_root, "not_before": issued + 2 * DEFAULT_SKEW})
        .encode(), "not-yet-valid")
    bad("bad_allow_outlives_its_signer",
        update("allow", ADMIN2, expiring_chain, NEWROOT, **new_root, expiry=0).encode(), "widened-validity")
    bad("bad_allow_wider_usages_than_signer",
        update("allow", ADMIN_NARROW, narrow_chain, NEWROOT, topics=["orders"],
               usages=[Usage.PRODUCE, Usage.CONSUME]).encode(), "widened-usages")
    bad("bad_allow_wider_topics_than_signer",
        update("allow", ADMIN_NARROW, narrow_chain, NEWROOT, topics=None, usages=[Usage.CONSUME]).encode(),
        "widened-topics")
    bad("bad_allow_denylisted_subject", update("allow", ADMIN, admin_chain, DENIED, **new_root).encode(),
        "denylisted")
    bad("bad_allow_chain_unknown_root", update("allow", ADMIN, stranger_chain, NEWROOT, **new_root).encode(),
        "unknown-root")
    bad("bad_signer_mismatch", envelope(deny_body, ADMIN, admin2_chain), "signer-mismatch")
    bad("bad_issued_in_the_future", update("deny", ADMIN, admin_chain, STRANGER, issued_at=NOW + 2 * DEFAULT_SKEW)
        .encode(), "not-yet-valid")

    # -- format
    good_bytes = allow.encode()
    bad("bad_signature", flip(good_bytes, 40), "SignatureError")
    bad("bad_kind", envelope(body("grant", ADMIN, STRANGER), ADMIN, admin_chain), "FormatError")
    bad("bad_deny_with_root_constraints", envelope(body("deny", ADMIN, STRANGER, expiry=NOW), ADMIN, admin_chain),
        "FormatError")
    bad("bad_body_of_nine_fields", envelope(deny_body[:-1], ADMIN, admin_chain), "FormatError")
    bad("bad_update_truncated", good_bytes[:-2], "FormatError")
    bad("bad_chain_not_bin", wire.pack([2, allow.body, allow.signature, [admin_chain.encode()]]), "FormatError")
    return {
        "description": "trust updates v2, each applied to a fresh store built from roots and denied, after the "
                       "case's prior entries if any (docs/PROTOCOL.md, section 5)",
        "now": NOW,
        "skew": DEFAULT_SKEW,
        "roots": [c.encode().hex() for c in (root, root_b)],
        "denied": hexkeys(DENIED),
        "cases": cases,
    }


FILES = {
    "certificates.json": certificate_vectors,
    "chains.json": chain_vectors,
    "trust_updates.json": trust_update_vectors,
}


def render(name: str) -> str:
    return json.dumps(FILES[name](), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check(HERE, {name: functools.partial(render, name) for name in FILES}, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
