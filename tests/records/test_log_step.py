"""log_step: who may record a step, signatures and witnesses, times, the live check."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import func, select

from qms.core.errors import (
    Conflict,
    Denied,
    FindingsNeedReason,
    Invalid,
    NotFound,
    SignatureError,
)
from qms.core.models import LedgerEntry
from qms.core.verify import verify
from qms.records import queries
from qms.records.models import Signature, StepRecord
from qms.records.signatures import FreshSession, PasswordEntry


def _count(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def test_unit_is_registered_in_the_ledger(session, make_unit):
    unit = make_unit(unit_id="U-7", attributes={"age_years": 34})
    entry = session.get(LedgerEntry, unit.ledger_seq)
    content = json.loads(entry.content)
    assert content["type"] == "unit" and content["id"] == "U-7"
    assert content["patient"] == "P-0042" and content["attributes"] == {"age_years": 34}
    assert content["checklist"] == "testcart" and content["checklist_version"] == "1.0"


@pytest.mark.parametrize("patient", ["Li Na", "LiNa", "", "张三"])
def test_patient_reference_must_be_pseudonymous(make_unit, patient):
    with pytest.raises(Invalid, match="never a name"):
        make_unit(patient_ref=patient)


def test_step_with_witness_is_signed_by_both(session, make_user, make_unit, log):
    nurse = make_user("nurse", full_name="Li Na")
    witness = make_user("physician", full_name="Dr Zhang Min")
    unit = make_unit(by=nurse)
    done = log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        fields={"product_patient_id": "P-0042", "wristband_patient_id": "P-0042"},
    )
    record = done.record
    assert done.findings == []
    assert record.performed_by_id == nurse.id and record.witness_id == witness.id
    assert record.performed_by_role == "nurse" and record.witness_role == "physician"
    assert record.recorded_at >= record.performed_at
    sigs = session.exec(select(Signature).where(Signature.record_id == record.id)).all()
    assert sorted((s.printed_name, s.meaning, s.method) for s in sigs) == [
        ("Dr Zhang Min", "witnessed", "password"),
        ("Li Na", "performed", "password"),
    ]
    assert verify(session).ok


def test_wrong_witness_password_is_refused_and_nothing_stored(session, make_user, make_unit, log):
    nurse = make_user("nurse")
    witness = make_user("nurse")
    unit = make_unit(by=nurse)
    before = (_count(session, StepRecord), _count(session, Signature), _count(session, LedgerEntry))
    with pytest.raises(SignatureError, match="witness's username or password is wrong"):
        log(
            unit,
            "identity_check",
            by=nurse,
            witness=witness,
            witness_password="not-the-password",
            fields={"product_patient_id": "P-1", "wristband_patient_id": "P-1"},
        )
    after = (_count(session, StepRecord), _count(session, Signature), _count(session, LedgerEntry))
    assert after == before


def test_witness_must_be_another_person_with_an_allowed_role(make_user, make_unit, log):
    nurse = make_user("nurse")
    pharmacist = make_user("pharmacist")
    unit = make_unit(by=nurse)
    fields = {"product_patient_id": "P-1", "wristband_patient_id": "P-1"}
    with pytest.raises(SignatureError, match="different person"):
        log(unit, "identity_check", by=nurse, witness=nurse, fields=fields)
    with pytest.raises(SignatureError, match="witnessed by nurse, physician"):
        log(unit, "identity_check", by=nurse, witness=pharmacist, fields=fields)


def test_performer_role_and_site_are_checked(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    pharmacist = make_user("pharmacist")
    with pytest.raises(Denied, match="recorded by nurse, not by a pharmacist"):
        log(unit, "thaw_end", by=pharmacist, fields={"temperature_c": 20})
    quality = make_user("quality_officer")
    with pytest.raises(Denied, match="may not record steps"):
        log(unit, "thaw_end", by=quality, fields={"temperature_c": 20})
    elsewhere = make_user("nurse", sites=("BJ-02",))
    with pytest.raises(NotFound, match=f"there is no unit {unit.id}"):  # as if missing
        log(unit, "thaw_end", by=elsewhere, fields={"temperature_c": 20})


def test_out_of_limit_value_needs_a_reason_then_becomes_a_finding(
    session, make_user, make_unit, log
):
    nurse, witness = make_user("nurse"), make_user("nurse")
    unit = make_unit(by=nurse)
    log(
        unit,
        "identity_check",
        by=nurse,
        witness=witness,
        fields={"product_patient_id": "P-1", "wristband_patient_id": "P-1"},
    )
    with pytest.raises(FindingsNeedReason, match=r"28 °C, above the maximum of 25 °C") as refused:
        log(unit, "thaw_end", by=nurse, fields={"temperature_c": 28})
    assert [f.kind for f in refused.value.findings] == ["limit"]
    assert _count(session, StepRecord) == 1
    done = log(unit, "thaw_end", by=nurse, fields={"temperature_c": 28}, reason="water bath fault")
    assert done.record.reason == "water bath fault"
    stored = json.loads(done.record.findings)
    assert stored[0]["kind"] == "limit" and stored[0]["actual"] == "28 °C"
    assert (
        json.loads(session.get(LedgerEntry, done.record.ledger_seq).content)["findings"] == stored
    )


def test_unknown_or_missing_fields_are_refused(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    with pytest.raises(Invalid, match="has no field colour"):
        log(unit, "thaw_end", by=nurse, fields={"temperature_c": 20, "colour": "red"})
    with pytest.raises(Invalid, match="temperature c is required"):  # its label, never its id
        log(unit, "thaw_end", by=nurse, fields={})
    with pytest.raises(Invalid, match="no step 'thaw'"):
        log(unit, "thaw", by=nurse, fields={})


def test_future_and_pre_registration_times_are_refused(make_user, make_unit, log, now):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse, at=now - timedelta(hours=1))
    with pytest.raises(Invalid, match="in the future"):
        log(unit, "receipt", by=nurse, at=now + timedelta(minutes=10), now=now)
    with pytest.raises(Invalid, match="before unit .* was registered"):
        log(unit, "receipt", by=nurse, at=now - timedelta(hours=2), now=now)
    # Within the allowed clock skew a device running a minute ahead is fine.
    assert log(unit, "receipt", by=nurse, at=now + timedelta(minutes=1), now=now).record


def test_times_are_shown_in_the_site_zone_in_messages(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse, at=datetime(2026, 10, 2, 1, 0, tzinfo=UTC))
    with pytest.raises(Invalid, match=r"2026-10-02 08:00:00 \+08:00"):
        log(unit, "receipt", by=nurse, at=datetime(2026, 10, 2, 0, 0, tzinfo=UTC))


def test_signature_freshness_window(make_user, make_unit, log, now):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse, at=now - timedelta(hours=1))
    stale = FreshSession(user_id=nurse.id, password_at=now - timedelta(minutes=6))
    with pytest.raises(SignatureError, match="enter it again"):
        log(unit, "receipt", by=nurse, credential=stale, now=now)
    fresh = FreshSession(user_id=nurse.id, password_at=now - timedelta(minutes=4))
    done = log(unit, "receipt", by=nurse, credential=fresh, now=now)
    assert done.signatures[0].method == "session"
    other = make_user("nurse")
    with pytest.raises(SignatureError, match="only sign for the person signed in"):
        log(
            unit,
            "infusion_end",
            by=other,
            credential=FreshSession(user_id=nurse.id, password_at=now),
            now=now,
        )
    with pytest.raises(SignatureError, match="wrong password"):
        log(unit, "infusion_end", by=nurse, credential=PasswordEntry("nope-nope-nope"), now=now)


def test_a_step_that_does_not_repeat_cannot_be_recorded_twice(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    first = log(unit, "receipt", by=nurse)
    with pytest.raises(Conflict, match=f"already recorded .*{first.record.id}.*correct it"):
        log(unit, "receipt", by=nurse)


def test_missing_witness_is_a_finding_that_needs_a_reason(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse)
    fields = {"product_patient_id": "P-1", "wristband_patient_id": "P-1"}
    with pytest.raises(FindingsNeedReason, match="not co-signed by a witness"):
        log(unit, "identity_check", by=nurse, fields=fields)
    done = log(unit, "identity_check", by=nurse, fields=fields, reason="night shift, alone")
    assert [f.kind for f in done.findings] == ["witness"]


def test_record_ids_number_the_units_steps(make_user, make_unit, log):
    nurse = make_user("nurse")
    unit = make_unit(by=nurse, unit_id="U-42")
    assert log(unit, "receipt", by=nurse).record.id == "U-42#1"
    assert log(unit, "infusion_end", by=nurse).record.id == "U-42#2"


def test_effective_steps_are_engine_facts(session, make_user, make_unit, log):
    nurse = make_user("nurse", username="li.na")
    unit = make_unit(by=nurse)
    log(unit, "thaw_end", by=nurse, fields={"temperature_c": 20}, reason="no identity check yet")
    facts = queries.effective_steps(session, unit.id)
    assert [(f.step, f.by, f.by_role, dict(f.fields)) for f in facts] == [
        ("thaw_end", "li.na", "nurse", {"temperature_c": 20})
    ]


def test_wrong_signature_passwords_count_towards_the_lockout(session, make_user, make_unit, log):
    """Guessing a colleague's password at the bedside locks their account, as at sign-in."""
    from qms.accounts import service as accounts

    nurse = make_user("nurse")
    witness = make_user("nurse")
    unit = make_unit(by=nurse)
    identity = {"product_patient_id": "P-1", "wristband_patient_id": "P-1"}
    lockout = accounts.Lockout(threshold=3, minutes=30)
    for _ in range(3):
        with pytest.raises(SignatureError) as refused:
            log(
                unit,
                "identity_check",
                by=nurse,
                witness=witness,
                witness_password="guess",
                fields=identity,
                lockout=lockout,
            )
        # The caller rolls back the step, then records the failed attempt.
        assert refused.value.failed_username == witness.username
        accounts.record_signature_failure(session=session, username=refused.value.failed_username)
        session.flush()
    state = accounts.lock_state(session=session, username=witness.username, threshold=3, minutes=30)
    assert state.locked
    # Now even the right password does not let the locked account sign...
    with pytest.raises(SignatureError, match="locked"):
        log(unit, "identity_check", by=nurse, witness=witness, fields=identity, lockout=lockout)
    # ...nor sign in.
    with pytest.raises(accounts.LoginFailed, match="locked"):
        accounts.authenticate(
            session=session,
            username=witness.username,
            password="correct-horse-battery",
            threshold=3,
            minutes=30,
        )
    # The performer's own wrong password is named the same way.
    with pytest.raises(SignatureError) as own:
        log(unit, "identity_check", by=nurse, credential=PasswordEntry("nope"), fields=identity)
    assert own.value.failed_username == nurse.username


def test_in_a_chinese_request_the_messages_and_their_times_are_chinese(
    app, make_user, make_unit, log, now
):
    # Outside a request (the tests above) the messages are English; in a request whose
    # language is Chinese, a refusal reads in Chinese, its roles and times too.
    nurse, pharmacist = make_user("nurse"), make_user("pharmacist")
    unit = make_unit(by=nurse, at=now - timedelta(hours=1))
    future = datetime(2099, 1, 1, 0, 0, tzinfo=UTC)
    with app.test_request_context("/", headers={"Accept-Language": "zh-CN"}):
        with pytest.raises(Invalid) as late:
            log(unit, "receipt", by=nurse, at=future, now=now)
        with pytest.raises(Denied) as role:
            log(unit, "thaw_end", by=pharmacist, fields={"temperature_c": 20})
        with pytest.raises(Invalid) as value:
            log(unit, "thaw_end", by=nurse, fields={"temperature_c": "warm"})
    # The site's zone (Asia/Shanghai) in the Chinese format, to the second.
    assert str(late.value).startswith(
        "该步骤的时间为 2099年1月1日 08:00:00 +08:00，晚于当前时间（现在是 "
    )
    assert "由护士记录，药师不能记录" in str(role.value)
    assert str(value.value).endswith("必须是以 °C 为单位的数字，而不是 'warm'。未记录任何内容。")
