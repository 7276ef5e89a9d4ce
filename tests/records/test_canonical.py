"""The canonical JSON contract (qms.records.canonical) and the chain hash."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from qms.records import ledger
from qms.records.canonical import GENESIS, CanonicalError, canonical_json, chain_hash


def test_sorted_keys_no_spaces_unicode_as_is():
    assert (
        canonical_json({"b": 1, "a": {"y": "温度", "x": None}})
        == '{"a":{"x":null,"y":"温度"},"b":1}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (21.0, "21"),
        (21, "21"),
        (2.5, "2.5"),
        (-151.3, "-151.3"),
        (Decimal("21.50"), "21.5"),
        (True, "true"),
    ],
)
def test_numbers_have_one_form(value, text):
    assert canonical_json({"n": value}) == '{"n":' + text + "}"


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), datetime(2026, 1, 1), {1: "a"}, object()]
)
def test_values_without_a_canonical_form_are_refused(value):
    with pytest.raises(CanonicalError):
        canonical_json({"v": value})


def test_times_are_utc_with_six_digits_and_z():
    shanghai = timezone(timedelta(hours=8))
    assert canonical_json({"t": datetime(2026, 10, 2, 9, 30, tzinfo=shanghai)}) == (
        '{"t":"2026-10-02T01:30:00.000000Z"}'
    )


def test_canonical_form_is_idempotent():
    doc = {"f": 21.0, "g": [1.25, "x"], "t": datetime(2026, 1, 1, tzinfo=UTC)}
    once = canonical_json(doc)
    assert canonical_json(json.loads(once)) == once


def test_chain_hash_is_sha256_of_previous_hex_and_content():
    content = '{"a":1}'
    assert chain_hash(GENESIS, content) == hashlib.sha256((GENESIS + content).encode()).hexdigest()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_verify_renders_the_same_keys_as_the_content_builders(dialect):
    t = datetime(2026, 1, 1, tzinfo=UTC)
    built = {
        "unit": ledger.unit_content(
            id="U",
            site="S",
            checklist="c",
            checklist_version="1",
            profile=None,
            coi_id=None,
            patient="P-1",
            attributes={},
            registered_at=t,
            registered_by="u",
            imported_at=None,
            imported_by=None,
        ),
        "step_record": ledger.step_content(
            id="U#1",
            unit="U",
            step="s",
            fields={},
            performed_at=t,
            recorded_at=t,
            performed_by="u",
            performed_by_role="nurse",
            witness=None,
            witness_role=None,
            recorded_by="u",
            meaning="performed",
            checklist="c",
            checklist_version="1",
            corrects=None,
            reason=None,
            findings=[],
            imported_at=None,
            imported_by=None,
        ),
        "signature": ledger.signature_content(
            id="U#1/1",
            record="U#1",
            signer="u",
            printed_name="U",
            meaning="performed",
            signed_at=t,
            method="password",
            imported_at=None,
            imported_by=None,
        ),
        "reading": ledger.reading_content(
            equipment="E",
            at=t,
            temperature_c=-150,
            recorded_at=t,
            recorded_by="u",
            source="manual",
            imported_at=None,
            imported_by=None,
        ),
        "unit_status": ledger.unit_status_content(
            id="U!1",
            unit="U",
            status="complete",
            at=t,
            recorded_at=t,
            by="u",
            by_role="nurse",
            method="password",
            reason=None,
            findings=[],
            imported_at=None,
            imported_by=None,
        ),
    }
    assert set(built) == set(ledger.TYPED_TABLES)  # every chained record type is covered
    for table, content in built.items():
        _, _, template, _ = ledger._typed_query(dialect, table)
        keys = [part.split('"')[1] for part in template[1:-1].split(",")]
        assert keys == sorted(content), table
