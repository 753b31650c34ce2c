"""Every case in tests/vectors/ratchet.json and records.json, as another implementation would run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kafkaratchet import errors
from kafkaratchet.protocol.ratchet import decode_seed, derive_data_key, step_secret
from kafkaratchet.protocol.records import Role, key_id_of, open_sealed

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def _cases(name: str) -> list[dict[str, Any]]:
    cases = json.loads((VECTORS / name).read_text())["cases"]
    assert cases, f"{name} holds no cases"
    return cases


@pytest.mark.parametrize("case", _cases("ratchet.json"), ids=lambda c: c["name"])
def test_ratchet_vector(case: dict[str, Any]) -> None:
    if case["kind"] == "step":
        assert step_secret(bytes.fromhex(case["secret"]), bytes.fromhex(case["fresh"])).hex() == case["next"]
    elif case["kind"] == "data_key":
        key = derive_data_key(bytes.fromhex(case["secret"]), case["root"])
        assert (key.key_id.hex(), key.key.hex()) == (case["key_id"], case["key"])
    elif "error" in case:
        assert case["name"].startswith("bad_")
        with pytest.raises(getattr(errors, case["error"])):
            decode_seed(bytes.fromhex(case["file"]))
    else:
        assert decode_seed(bytes.fromhex(case["file"])) == (case["epoch"], bytes.fromhex(case["secret"]))


@pytest.mark.usefixtures("aead_engine")  # once per AEAD engine
@pytest.mark.parametrize("case", _cases("records.json"), ids=lambda c: c["name"])
def test_record_vector(case: dict[str, Any]) -> None:
    record = bytes.fromhex(case["record"])
    role = Role[case["role"].upper()]
    key = bytes.fromhex(case["key"])
    if "error" in case:
        assert case["name"].startswith("bad_")
        with pytest.raises(getattr(errors, case["error"])):
            open_sealed(key, case["topic"], role, record)
    else:
        assert key_id_of(record).hex() == case["key_id"]
        assert open_sealed(key, case["topic"], role, record).hex() == case["plaintext"]
