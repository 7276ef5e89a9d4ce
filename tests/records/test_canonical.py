"""The canonical JSON contract (qms.core.canonical) and the chain hash."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from qms.core.canonical import GENESIS, CanonicalError, canonical_json, chain_hash
from qms.core.ledger import RECORD_TYPES, protected_tables


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


def test_every_declared_record_type_renders_its_keys_in_sorted_order():
    """verify renders a row with one %-template per table: its keys are the content's."""
    from qms.core.verify import _typed_query

    protected_tables()
    assert set(RECORD_TYPES) >= {"unit", "step_record", "signature", "reading", "unit_status"}
    for dialect in ("sqlite", "postgresql"):
        for table, declaration in RECORD_TYPES.items():
            query = _typed_query(dialect, declaration, {None: "null"})
            assert declaration.keys == sorted(["type", "v", *(c.key for c in declaration.chained)])
            assert "FROM " + table + " t JOIN ledger_entry" in query.sql


# --- what the ledger writes is the canonical dump of the declared content ------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import qms.models  # noqa: E402, F401  (every declaration)
from qms.core.ledger import JSON, NUMBER, TIME, USER  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
_by_encoding = {
    TIME: _times,
    USER: st.integers(1, 3),
    NUMBER: st.integers(-1000, 1000) | st.floats(-300, 300, allow_nan=False),
    JSON: _json_values.map(canonical_json),
}
USERNAMES = {1: "li.na", 2: 'wang "wei"', 3: "张\u202e伟"}


@pytest.mark.parametrize("table", sorted(RECORD_TYPES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_written_body_is_the_canonical_dump_of_the_content(table, data):
    """`RecordType.body` writes the canonical JSON directly (JSON columns spliced in as
    stored); it must be byte for byte `canonical_json(content)` for any values."""
    declaration = RECORD_TYPES[table]
    row = {}
    for chained in declaration.chained:
        strategy = _by_encoding.get(chained.encoding, st.text(max_size=12))
        row[chained.attribute] = data.draw(st.none() | strategy, label=chained.attribute)
    # Computed keys (a reading's id) read other columns: give them values, as a row has.
    for name in ("equipment_id", "at", "corrects_id"):
        row.setdefault(name, data.draw(st.none() | _times if name == "at" else st.text(max_size=6)))
    if row.get("at") is None:
        row["at"] = datetime(2026, 10, 2, tzinfo=UTC)
    if row.get("equipment_id") is None:
        row["equipment_id"] = "LN2-01"
    kind, ref, body = declaration.body(row, USERNAMES.__getitem__)
    content = declaration.content(row, USERNAMES.__getitem__)
    assert body == canonical_json(content)
    assert (kind, ref) == (content["type"], str(content["id"]))
