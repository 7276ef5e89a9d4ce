"""What else falls due, raised by the scheduler once each: due-date reminders, CAPA
effectiveness checks and logger gaps, in the app and by mail to the quality address."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from qms.accounts import service as accounts
from qms.db import Database
from qms.scheduling import reminders
from qms.scheduling.models import Alert
from qms.scheduling.runner import run_due
from qms.scheduling.settings import set_site_setting
from tests.conftest import make_test_settings
from tests.delivery_helpers import Mailbox, SmtpServer

PASSWORD = "correct-horse-battery"
OPENED = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)
SYSTEM = accounts.Actor.system("test")


def _people(session) -> dict:
    accounts.create_site(session=session, site_id="SH-01", name="Test Hospital")
    made = {
        name: accounts.create_user(
            session=session,
            actor=SYSTEM,
            username=name,
            full_name=name.title(),
            role=role,
            password=PASSWORD,
            site_ids=["SH-01"],
        )
        for name, role in (
            ("qo1", "quality_officer"),
            ("qo2", "quality_officer"),
            ("nurse1", "nurse"),
            ("nurse2", "nurse"),
            ("pharm1", "pharmacist"),
        )
    }
    session.flush()
    return made


def _deviation_and_capa(database: Database, *, close: bool = False) -> dict:
    """A deviation owned by qo1 and a CAPA (owner qo1) whose action nurse1 owns, due
    14 days after opening; `close` completes the action and approves the closure."""
    from qms.quality import capa as cp
    from qms.quality import deviations as dv
    from qms.records.signatures import PasswordEntry

    sign = dv.Signer(PasswordEntry(PASSWORD))
    with database.transaction() as session:
        people = _people(session)
        qo1 = people["qo1"]
        deviation = dv.open_deviation(
            session=session,
            by=qo1,
            site_id="SH-01",
            title="Bag dropped",
            description="The bag fell from the trolley.",
            classification="minor",
            signer=sign,
            now=OPENED,
        )
        for action, kw in (
            ("assigned", {"details": {"owner": "qo1"}}),
            ("investigation_started", {}),
            ("capa_required", {}),
        ):
            dv.record_event(
                session=session,
                by=qo1,
                deviation_id=deviation.id,
                action=action,
                signer=sign,
                now=OPENED,
                **kw,
            )
        capa = cp.open_capa(
            session=session,
            by=qo1,
            site_id="SH-01",
            title="Spare trolley",
            description="Trolleys tip over.",
            deviations=[deviation.id],
            owner="qo1",
            signer=sign,
            now=OPENED,
        )
        cp.add_action(
            session=session,
            by=qo1,
            capa_id=capa.id,
            title="Train the ward",
            owner="nurse1",
            due_at=OPENED + timedelta(days=14),
            signer=sign,
            now=OPENED,
        )
        if close:
            cp.add_evidence(
                session=session,
                by=people["nurse1"],
                capa_id=capa.id,
                action="1",
                text="Ward trained",
                files=[],
                store=Path("/nonexistent-evidence-store"),
                signer=sign,
                now=OPENED + timedelta(days=1),
            )
            cp.complete_action(
                session=session,
                by=people["nurse1"],
                capa_id=capa.id,
                action="1",
                signer=sign,
                now=OPENED + timedelta(days=1),
            )
            cp.approve_closure(
                session=session,
                by=people["qo2"],
                capa_id=capa.id,
                signer=sign,
                now=OPENED + timedelta(days=2),
            )
        (state,) = dv.states_of(session, [deviation])
        return {
            "deviation": deviation.id,
            "deviation_due": state.due_at,
            "capa": capa.id,
            "ids": {name: user.id for name, user in people.items()},
        }


def _alerts(database) -> list[Alert]:
    with database.transaction(write=False) as session:
        return list(session.exec(select(Alert).order_by(Alert.id)).all())


def test_stage_of_a_due_date_is_soon_then_overdue():
    due = datetime(2026, 10, 19, 2, 0, tzinfo=UTC)
    assert reminders.stage_of(due, due - reminders.LEAD - timedelta(seconds=1)) is None
    assert reminders.stage_of(due, due - reminders.LEAD) == "soon"
    assert reminders.stage_of(due, due) == "soon"
    assert reminders.stage_of(due, due + timedelta(seconds=1)) == "overdue"


def test_deviation_and_action_due_dates_are_reminded_once_per_stage_to_the_owner(
    fresh_database_url,
):
    database = Database(fresh_database_url)
    try:
        made = _deviation_and_capa(database)
        action_due = OPENED + timedelta(days=14)
        assert reminders.remind_due_items(database, action_due - timedelta(days=4)) == []
        soon = reminders.remind_due_items(database, action_due - timedelta(days=1))
        assert soon == [f"reminder remind:action:{made['capa']}:1:{action_due.isoformat()}:soon"]
        assert reminders.remind_due_items(database, action_due - timedelta(hours=1)) == []
        late = reminders.remind_due_items(database, action_due + timedelta(days=1))
        assert late == [f"reminder remind:action:{made['capa']}:1:{action_due.isoformat()}:overdue"]
        after_deviation_due = made["deviation_due"] + timedelta(hours=1)
        lines = reminders.remind_due_items(database, after_deviation_due)
        assert lines == [
            f"reminder remind:deviation:{made['deviation']}:"
            f"{made['deviation_due'].isoformat()}:overdue"
        ]  # its "soon" stage passed while nothing ran: only the stage of now is told
        # A restart (a new process, a new connection pool) tells nothing again.
        database.dispose()
        database = Database(fresh_database_url)
        assert reminders.remind_due_items(database, after_deviation_due + timedelta(days=3)) == []
        codes = [(a.code, json.loads(a.audience)) for a in _alerts(database)]
        ids = made["ids"]
        owners = sorted([ids["nurse1"], ids["qo1"]])
        assert codes == [
            ("capa_action.due_soon", {"users": owners}),
            ("capa_action.overdue", {"users": owners}),
            ("deviation.overdue", {"users": [ids["qo1"]]}),
        ]
    finally:
        database.dispose()


def test_two_schedulers_at_once_raise_each_reminder_once(fresh_database_url):
    database = Database(fresh_database_url)
    try:
        _deviation_and_capa(database)
        now = OPENED + timedelta(days=40)  # action and deviation overdue
        barrier = threading.Barrier(6)
        errors = []

        def worker() -> None:
            own = Database(fresh_database_url)
            try:
                barrier.wait()
                reminders.remind_due_items(own, now)
            except Exception as exc:  # pragma: no cover - shown by the assert
                errors.append(exc)
            finally:
                own.dispose()

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(a.code for a in _alerts(database)) == [
            "capa_action.overdue",
            "deviation.overdue",
        ]
    finally:
        database.dispose()


def test_an_effectiveness_check_falling_due_is_prepared_and_told_once(tmp_path, fresh_database_url):
    from qms.checklists.language import Registry
    from qms.quality.models import AuditRun

    registry = Registry.from_directory(Path(__file__).parent.parent / "records" / "checklists")
    database = Database(fresh_database_url)
    try:
        made = _deviation_and_capa(database, close=True)
        due = OPENED + timedelta(days=2 + 90)  # closed two days after opening; 90 days later

        def checks(now):  # the deviation stays open (and overdue): its reminders aside
            lines = reminders.remind_due_items(database, now, registry=registry)
            return [line for line in lines if "deviation" not in line]

        assert checks(due - timedelta(days=1)) == []
        lines = checks(due + timedelta(hours=1))
        assert lines[0] == f"reminder remind:check:{made['capa']}:{due.isoformat()}:due"
        assert lines[1].startswith(f"effectiveness check of {made['capa']} prepared: audit run")
        assert checks(due + timedelta(days=1)) == []
        with database.transaction(write=False) as session:
            runs = session.exec(select(AuditRun).where(AuditRun.kind == "effectiveness")).all()
        assert len(runs) == 1
        codes = [a.code for a in _alerts(database)]
        assert codes.count("capa.check_due") == 1 and codes.count("capa.check_prepared") == 1
    finally:
        database.dispose()


def _logger(database, times: list[datetime]) -> None:
    from qms.storage import service as storage
    from qms.storage.loggers import import_log

    with database.transaction() as session:
        storage.register_equipment(
            session=session, actor=SYSTEM, equipment_id="LN2-01", kind="ln2_vapour", site_id="SH-01"
        )
        session.flush()
        import_log(
            session=session,
            actor=SYSTEM,
            equipment_id="LN2-01",
            readings=[(t, -180.0) for t in times],
            now=times[-1],
        )


T = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def test_a_logger_gap_longer_than_the_sites_setting_is_flagged_once(fresh_database_url):
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            _people(session)
        # Every 10 minutes, with a 45-minute silence at 02:00 and a 70-minute one at 05:00.
        times = [T + timedelta(minutes=10 * i) for i in range(12)]  # 00:00 .. 01:50
        times += [T + timedelta(hours=2, minutes=35 + 10 * i) for i in range(14)]  # to 04:45
        times += [T + timedelta(hours=5, minutes=55 + 10 * i) for i in range(6)]  # to 06:45
        _logger(database, times)
        with database.transaction() as session:
            set_site_setting(
                session=session,
                actor=SYSTEM,
                site_id="SH-01",
                name="logger_gap_minutes",
                value="60",
                reason="our loggers send every 10 minutes; an hour is the alarm",
                now=T,
            )
        now = T + timedelta(hours=6, minutes=50)
        lines = reminders.flag_logger_gaps(database, now)
        assert lines == ["logger gap on LN2-01 from 2026-11-03 04:45 UTC to 2026-11-03 05:55 UTC"]
        assert reminders.flag_logger_gaps(database, now) == []
        # The logger falls silent: one alert for that silence, however long it lasts.
        later = T + timedelta(hours=8)
        assert reminders.flag_logger_gaps(database, later) == [
            "logger gap on LN2-01 from 2026-11-03 06:45 UTC (still silent)"
        ]
        assert reminders.flag_logger_gaps(database, later + timedelta(hours=5)) == []
        gaps = [a for a in _alerts(database) if a.code == "logger.gap"]
        assert len(gaps) == 2
        assert json.loads(gaps[0].audience) == {"roles": ["pharmacist", "quality_officer"]}
        assert json.loads(gaps[0].params)["minutes"] == 60
    finally:
        database.dispose()


def test_a_bad_site_setting_is_refused_with_one_message_and_nothing_stored(session, make_site):
    from qms.core.errors import Invalid
    from qms.scheduling.models import SiteSetting
    from qms.scheduling.settings import logger_gap_minutes

    make_site("SH-01")
    for name, value, message in (
        ("logger_gap_minutes", "0", "between 5 and 1440"),
        ("logger_gap_minutes", "half an hour", "between 5 and 1440"),
        ("quality_address", "quality at hospital", "not an email address"),
        ("colour", "blue", "no site setting"),
    ):
        with pytest.raises(Invalid, match=message):
            set_site_setting(
                session=session,
                actor=SYSTEM,
                site_id="SH-01",
                name=name,
                value=value,
                reason="why",
                now=T,
            )
    with pytest.raises(Invalid, match="needs a reason"):
        set_site_setting(
            session=session,
            actor=SYSTEM,
            site_id="SH-01",
            name="logger_gap_minutes",
            value="45",
            reason=" ",
            now=T,
        )
    assert session.exec(select(SiteSetting)).all() == []
    assert logger_gap_minutes(session, "SH-01") == 30  # the default


@pytest.mark.slow
def test_run_due_mails_reminders_to_the_quality_address_once_and_shows_them_in_the_app(
    tmp_path, fresh_database_url, monkeypatch
):
    database = Database(fresh_database_url)
    settings = make_test_settings(tmp_path, fresh_database_url)
    try:
        made = _deviation_and_capa(database)
        with database.transaction() as session:
            set_site_setting(
                session=session,
                actor=SYSTEM,
                site_id="SH-01",
                name="quality_address",
                value="quality@hospital.example",
                reason="the quality team's shared mailbox",
                now=OPENED,
            )
        now = OPENED + timedelta(days=13)  # the action falls due tomorrow
        with SmtpServer(Mailbox()) as server:
            monkeypatch.setenv("QMS_SMTP_URL", server.url)
            monkeypatch.setenv("QMS_MAIL_FROM", "qms@hospital.example")
            first = run_due(database, now, settings=settings).lines()
            assert any(line.startswith("reminder remind:action:") for line in first), first
            assert "delivery: alert mail to quality@hospital.example: accepted 250" in " ".join(
                first
            ), first
            # The same `now` again, and after a restart: nothing is raised or sent.
            assert run_due(database, now, settings=settings).lines() == ["nothing due"]
            database.dispose()
            database = Database(fresh_database_url)
            assert run_due(database, now, settings=settings).lines() == ["nothing due"]
            (message,) = server.mailbox.received
        assert message["To"] == "quality@hospital.example"
        body = message.get_body(("plain",)).get_content()
        assert f"Action 1 of {made['capa']} (Train the ward, owner nurse1) falls due" in body
    finally:
        database.dispose()


def test_the_reminder_lead_is_the_sites_setting(fresh_database_url):
    database = Database(fresh_database_url)
    try:
        made = _deviation_and_capa(database)
        action_due = OPENED + timedelta(days=14)
        week_before = action_due - timedelta(days=6)
        assert reminders.remind_due_items(database, week_before) == []  # 3 days by default
        with database.transaction() as session:
            set_site_setting(session=session, actor=SYSTEM, site_id="SH-01",
                             name="reminder_lead_days", value="7",
                             reason="the ward plans its training a week ahead",
                             now=OPENED)  # fmt: skip
        assert reminders.remind_due_items(database, week_before) == [
            f"reminder remind:action:{made['capa']}:1:{action_due.isoformat()}:soon"
        ]
        with database.transaction() as session:
            for value, message in (("0", "between 1 and 60"), ("a week", "between 1 and 60")):
                with pytest.raises(Exception, match=message):
                    set_site_setting(session=session, actor=SYSTEM, site_id="SH-01",
                                     name="reminder_lead_days", value=value, reason="x",
                                     now=OPENED)  # fmt: skip
    finally:
        database.dispose()


def test_the_watch_runs_once_per_interval_and_catches_up_after_downtime(
    tmp_path, fresh_database_url
):
    from qms.scheduling.models import JobRun
    from qms.scheduling.runner import WATCH_EVERY, watch_is_due

    assert watch_is_due(None, T, WATCH_EVERY)
    assert not watch_is_due(T, T + timedelta(minutes=14), WATCH_EVERY)
    assert watch_is_due(T, T + WATCH_EVERY, WATCH_EVERY)
    assert watch_is_due(T, T - timedelta(hours=1), WATCH_EVERY)  # a clock set back
    database = Database(fresh_database_url)
    settings = make_test_settings(tmp_path, fresh_database_url)
    try:
        made = _deviation_and_capa(database)
        action_due = OPENED + timedelta(days=14)
        soon_from = action_due - reminders.LEAD  # the "soon" reminder is due from here

        def pass_at(now) -> list[str]:
            lines = run_due(database, now, settings=settings).raised
            return [line for line in lines if "remind:action" in line]

        assert pass_at(soon_from - timedelta(minutes=5)) == []  # watched: nothing yet
        # Ten minutes later the reminder is due, but the watch ran five minutes ago.
        assert pass_at(soon_from + timedelta(minutes=5)) == []
        assert [a.code for a in _alerts(database)] == []
        assert pass_at(soon_from + timedelta(minutes=10)) == [
            f"reminder remind:action:{made['capa']}:1:{action_due.isoformat()}:soon"
        ]
        # The scheduler is down for five days: the first pass after raises the overdue one.
        assert pass_at(action_due + timedelta(days=2)) == [
            f"reminder remind:action:{made['capa']}:1:{action_due.isoformat()}:overdue"
        ]
        with database.transaction(write=False) as session:
            watches = session.exec(select(JobRun).where(JobRun.kind == "watch")).all()
        assert len(watches) == 3 and all(w.ok for w in watches)
    finally:
        database.dispose()


@pytest.mark.slow
def test_reminders_and_alerts_are_mailed_to_the_people_they_are_for_in_their_language(
    tmp_path, fresh_database_url, monkeypatch
):
    from qms.accounts.models import User
    from qms.delivery.models import NoticeMail

    database = Database(fresh_database_url)
    settings = make_test_settings(tmp_path, fresh_database_url)
    try:
        made = _deviation_and_capa(database)
        with database.transaction() as session:
            set_site_setting(session=session, actor=SYSTEM, site_id="SH-01",
                             name="quality_address", value="quality@hospital.example",
                             reason="the quality team's shared mailbox", now=OPENED)  # fmt: skip
            for name, address in (
                ("qo1", "qo1@hospital.example"),  # a quality officer, reading Chinese
                ("nurse1", "nurse1@hospital.example"),  # the action's owner
                ("nurse2", "nurse2@hospital.example"),  # nothing is for her
            ):
                user = session.get(User, made["ids"][name])
                accounts.set_email(session=session, actor=SYSTEM, user=user, email=address,
                                   reason="ward mail")  # fmt: skip
            session.get(User, made["ids"]["qo1"]).language = "zh_CN"
        now = OPENED + timedelta(days=13)  # the action falls due tomorrow
        with SmtpServer(Mailbox(["451 4.3.0 Try again later"])) as server:
            monkeypatch.setenv("QMS_SMTP_URL", server.url)
            monkeypatch.setenv("QMS_MAIL_FROM", "qms@hospital.example")
            first = run_due(database, now, settings=settings).lines()
            assert any("temporary 451" in line for line in first), first
            # The refused one is tried again a minute later, as report deliveries are.
            later = run_due(database, now + timedelta(minutes=1), settings=settings).lines()
            assert sum("accepted 250" in line for line in later) == 1, later
            received = {m["To"]: m for m in server.mailbox.received}
        assert sorted(received) == [
            "nurse1@hospital.example",
            "qo1@hospital.example",
            "quality@hospital.example",
        ]
        nurse = received["nurse1@hospital.example"].get_body(("plain",)).get_content()
        assert f"Action 1 of {made['capa']} (Train the ward, owner nurse1) falls due" in nurse
        chinese = received["qo1@hospital.example"].get_body(("plain",)).get_content()
        assert made["capa"] in chinese and "Action 1" not in chinese
        with database.transaction(write=False) as session:
            languages = {n.recipient: n.language for n in session.exec(select(NoticeMail))}
        assert languages["qo1@hospital.example"] == "zh_CN"
        assert languages["nurse1@hospital.example"] == "en"
    finally:
        database.dispose()
