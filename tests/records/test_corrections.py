"""Corrections: new records with a reason; the original stays; the latest counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from qms.core.errors import Denied, Invalid, NotFound
from qms.core.verify import verify
from qms.records import queries
from qms.records.corrections import correct_step
from qms.records.models import StepRecord
from qms.records.signatures import PasswordEntry

PASSWORD = "correct-horse-battery"


@pytest.fixture
def correct(session, registry):
    def do(record, *, by, reason="typing error", **kwargs):
        return correct_step(
            session=session,
            registry=registry,
            record_id=record.id,
            by=by,
            credential=PasswordEntry(PASSWORD),
            freshness_minutes=5,
            reason=reason,
            **kwargs,
        )

    return do


def test_correction_is_a_new_record_and_the_original_stays(
    session, make_user, make_unit, log, correct
):
    nurse = make_user("nurse", username="li.na")
    quality = make_user("quality_officer", username="liu.yang")
    unit = make_unit(by=nurse)
    original = log(
        unit, "thaw_end", by=nurse, fields={"temperature_c": 2.1}, reason="no id check"
    ).record
    fixed = correct(
        original, by=quality, fields={"temperature_c": 21}, reason="decimal point misplaced"
    )
    record = fixed.record
    assert record.corrects_id == original.id and record.reason == "decimal point misplaced"
    assert record.recorded_by_id == quality.id and record.performed_by_id == nurse.id
    # The original is untouched and both are in the history; the engine sees the correction.
    assert json.loads(session.get(StepRecord, original.id).fields) == {"temperature_c": 2.1}
    assert [r.id for r in queries.step_history(session, unit.id)] == [original.id, record.id]
    facts = queries.effective_steps(session, unit.id)
    assert [(f.record_id, f.corrects, dict(f.fields)) for f in facts] == [
        (record.id, original.id, {"temperature_c": 21})
    ]
    assert json.loads(ledger_content(session, record))["type"] == "correction"
    assert verify(session).ok


def ledger_content(session, record):
    from qms.core.models import LedgerEntry

    return session.get(LedgerEntry, record.ledger_seq).content


def test_the_latest_correction_counts_and_correcting_a_correction_targets_the_original(
    session, make_user, make_unit, log, correct
):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    original = log(unit, "receipt", by=nurse, fields={"temperature_c": -150}).record
    first = correct(original, by=nurse, fields={"temperature_c": -151}).record
    second = correct(
        first, by=nurse, fields={"temperature_c": -152}, reason="read the wrong dewar"
    ).record
    assert second.corrects_id == original.id
    facts = queries.effective_steps(session, unit.id)
    assert [dict(f.fields) for f in facts] == [{"temperature_c": -152}]


def test_correction_needs_a_reason_and_a_change(make_user, make_unit, log, correct):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    original = log(unit, "receipt", by=nurse, fields={"temperature_c": -150}).record
    with pytest.raises(Invalid, match="needs a reason"):
        correct(original, by=nurse, fields={"temperature_c": -151}, reason="  ")
    with pytest.raises(Invalid, match="changes nothing"):
        correct(original, by=nurse, fields={"temperature_c": -150})


def test_correction_can_fix_the_time_but_not_into_the_future(make_user, make_unit, log, correct):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    original = log(unit, "receipt", by=nurse).record
    earlier = original.performed_at - timedelta(minutes=10)
    assert correct(original, by=nurse, performed_at=earlier).record.performed_at == earlier
    with pytest.raises(Invalid, match="in the future"):
        correct(original, by=nurse, performed_at=datetime.now(UTC) + timedelta(hours=1))


def test_who_may_correct(make_user, make_unit, log, correct):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    original = log(unit, "thaw_end", by=nurse, fields={"temperature_c": 20}, reason="r").record
    with pytest.raises(Denied, match="may not correct"):
        correct(original, by=make_user("pharmacist"), fields={"temperature_c": 21})
    with pytest.raises(NotFound, match=f"there is no unit {unit.id}"):
        correct(original, by=make_user("nurse", sites=("BJ-02",)), fields={"temperature_c": 21})


def test_a_correction_is_checked_by_the_engine(make_user, make_unit, log, correct):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    original = log(unit, "thaw_end", by=nurse, fields={"temperature_c": 20}, reason="r").record
    fixed = correct(original, by=nurse, fields={"temperature_c": 30}, reason="misread thermometer")
    assert "limit" in [f.kind for f in fixed.findings]
