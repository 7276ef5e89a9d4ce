"""The ledger check a report states: in full, or since the last passed `qms verify`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from qms.core import ledger
from qms.core.anchors import anchor
from qms.core.verify import verify
from qms.db import utcnow
from qms.reports.ledgercheck import ledger_check, since_last_verify


def _passed_verify(session, at=None):
    report = verify(session.connection())
    assert report.ok
    anchor(
        session,
        source="verify",
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        at=at or utcnow(),
    )
    session.flush()
    return report


def _tamper(session, seq: int) -> None:
    """Change an entry's content in place, its protection dropped (as an attacker would)."""
    dialect = session.connection().dialect.name
    for name in ledger.trigger_names(dialect, "ledger_entry"):
        on = " ON ledger_entry" if dialect == "postgresql" else ""
        session.exec(text(f"DROP TRIGGER {name}{on}"))
    session.connection().execute(
        text("UPDATE ledger_entry SET content = content || ' ' WHERE seq = :seq"), {"seq": seq}
    )


def test_without_a_passed_verify_the_check_is_full(demo):
    checked = ledger_check(demo)
    assert checked["mode"] == "full" and checked["ok"]
    assert checked["to_seq"] == ledger.head(demo)[0]


def test_after_a_passed_verify_only_the_later_entries_are_checked(demo, make_user):
    verified = _passed_verify(demo)
    make_user("nurse", username="later.nurse")  # not chained: the head stays
    from qms.accounts.service import Actor
    from qms.storage import service as storage

    storage.record_reading(
        session=demo,
        actor=Actor.system("test"),
        equipment_id="LN2-01",
        at=utcnow() - timedelta(minutes=5),
        temperature_c=-160.0,
        source="logger",
    )
    demo.flush()
    checked = ledger_check(demo)
    assert checked["mode"] == "since-anchor" and checked["ok"]
    assert checked["from_seq"] == verified.head_seq + 1
    assert checked["to_seq"] == ledger.head(demo)[0] == verified.head_seq + 1


def test_a_tampered_entry_after_the_anchor_is_found(demo):
    verified = _passed_verify(demo)
    from qms.accounts.service import Actor
    from qms.storage import service as storage

    storage.record_reading(
        session=demo,
        actor=Actor.system("test"),
        equipment_id="LN2-01",
        at=utcnow() - timedelta(minutes=5),
        temperature_c=-160.0,
        source="logger",
    )
    demo.flush()
    _tamper(demo, verified.head_seq + 1)
    checked = ledger_check(demo)
    assert checked["mode"] == "since-anchor" and not checked["ok"] and checked["problems"] >= 1


def test_a_rewritten_anchored_entry_is_found(demo):
    verified = _passed_verify(demo)
    dialect = demo.connection().dialect.name
    for name in ledger.trigger_names(dialect, "ledger_entry"):
        on = " ON ledger_entry" if dialect == "postgresql" else ""
        demo.exec(text(f"DROP TRIGGER {name}{on}"))
    demo.connection().execute(
        text("UPDATE ledger_entry SET hash = :h WHERE seq = :seq"),
        {"h": "0" * 64, "seq": verified.head_seq},
    )
    checked = since_last_verify(demo, now=utcnow())
    assert checked is not None and not checked["ok"]


def test_an_old_verify_is_not_relied_on(demo, monkeypatch):
    _passed_verify(demo, at=utcnow() - timedelta(days=3))
    assert ledger_check(demo)["mode"] == "full"
    _passed_verify(demo)
    assert ledger_check(demo)["mode"] == "since-anchor"
    monkeypatch.setenv("QMS_REPORT_VERIFY", "full")
    assert ledger_check(demo)["mode"] == "full"
