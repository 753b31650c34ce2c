"""Every case of tests/vectors/topics.json: the trust topics' record keys (docs/PROTOCOL.md section 7)."""

from __future__ import annotations

from typing import Any

import pytest

from kafkaratchet.node.trusttopics import chain_record_key, entry_record_key
from kafkaratchet.protocol.certs import Chain
from tests.unit._vectors import VECTORS, cases, generator

CASES = cases("topics.json")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_record_key_vector(case: dict[str, Any]) -> None:
    if case["kind"] == "entry":
        assert entry_record_key(bytes.fromhex(case["value"])).hex() == case["key"]
    else:
        assert chain_record_key(Chain.decode(bytes.fromhex(case["chain"]))).hex() == case["key"]


def test_a_renewal_with_the_same_rights_has_the_same_key() -> None:
    keys = {c["name"]: c["key"] for c in CASES}
    assert keys["good_chain_key_topics_unsorted_with_a_duplicate"] == keys[
        "good_chain_key_renewal_same_rights_later_expiry"]


def test_the_file_is_what_the_generator_writes() -> None:
    assert (VECTORS / "topics.json").read_text(encoding="utf-8") == generator("generate_topics").render()
