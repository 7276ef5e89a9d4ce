"""Regional annual reports on a schedule: due periods, made once through the regional
generator, delivered by mail (aiosmtpd on loopback) and to the portal of a regulator of
every site the region covers."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from qms.accounts import service as accounts
from qms.core.errors import Invalid, NotFound
from qms.core.verify import verify
from qms.db import Database
from qms.regions.service import create_region, place_site
from qms.scheduling import service
from qms.scheduling.models import Alert, ScheduleRegion
from qms.scheduling.runner import run_due
from qms.scheduling.service import ScheduleSpec
from tests.conftest import make_test_settings
from tests.delivery_helpers import Mailbox, SmtpServer

SYSTEM = accounts.Actor.system("test")
MADE_AT = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
# 5 January 2027, 09:00 in Shanghai: the 2026 report falls due.
DUE_2026 = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)


def _region(session) -> None:
    """Region R-1 of SH-01 and BJ-01; regulators of both sites and of SH-01 alone."""
    accounts.create_site(session=session, site_id="SH-01", name="Test Hospital")
    accounts.create_site(session=session, site_id="BJ-01", name="Test Hospital, Beijing")
    session.flush()
    for username, sites, email in (
        ("reg.both", ["SH-01", "BJ-01"], "reg.both@bureau.example"),
        ("reg.one", ["SH-01"], "reg.one@bureau.example"),
    ):
        accounts.create_user(
            session=session,
            actor=SYSTEM,
            username=username,
            full_name=username.title(),
            role="regulator",
            password="correct-horse-battery",
            site_ids=sites,
            email=email,
        )
    create_region(session=session, region_id="R-1", name="East", actor_id=None, actor_name="t")
    for site in ("SH-01", "BJ-01"):
        place_site(session=session, region_id="R-1", site_id=site, actor_id=None, actor_name="t")
    session.flush()


def _spec(**changes) -> ScheduleSpec:
    values = dict(
        report_type="regional-annual",
        site_id=None,
        region_id="R-1",
        day=5,
        at="09:00",
        recipients=["bureau@example.org"],
        first_period="2026",
    )
    values.update(changes)
    return ScheduleSpec(**values)


def test_a_regional_schedule_is_yearly_in_its_regions_name_and_falls_due_in_january(session):
    _region(session)
    row = service.add_schedule(session=session, actor=SYSTEM, spec=_spec(first_period="2025"),
                               now=MADE_AT)  # fmt: skip
    session.flush()
    assert (row.schedule_id, row.cadence, row.site_id) == ("SCH-R-1-1", "yearly", "BJ-01")
    assert service.region_of(session, row) == "R-1"
    (scope,) = session.exec(select(ScheduleRegion)).all()
    assert (scope.id, scope.region_id) == (row.id, "R-1")
    # The 2026 report is due on 5 January 2027 at 09:00 in the first site's zone; 2025's
    # was due a year earlier: a scheduler that was stopped makes both, once each.
    early = service.what_is_due(session, DUE_2026.replace(minute=0, hour=0))
    assert [d.period for d in early] == ["2025"]
    due = service.what_is_due(session, DUE_2026)
    assert [(d.period, d.due_at) for d in due] == [
        ("2025", datetime(2026, 1, 5, 1, 0, tzinfo=UTC)),
        ("2026", DUE_2026),
    ]
    claimed = service.claim_due(session=session, actor=SYSTEM, now=DUE_2026, claimed_at=DUE_2026)
    assert [r.period for r in claimed] == ["2025", "2026"]
    assert service.claim_due(session=session, actor=SYSTEM, now=DUE_2026,
                             claimed_at=DUE_2026) == []  # fmt: skip
    # An edit keeps the region (a new version, with its region chained beside it).
    changed = service.change_schedule(session=session, actor=SYSTEM, schedule_id=row.schedule_id,
                                      spec=_spec(first_period="2025", day=7), reason="the 7th",
                                      now=MADE_AT)  # fmt: skip
    session.flush()
    assert service.region_of(session, changed) == "R-1"
    with pytest.raises(Invalid, match="stays with its region"):
        service.change_schedule(session=session, actor=SYSTEM, schedule_id=row.schedule_id,
                                spec=_spec(region_id=None, site_id="SH-01"), reason="x",
                                now=MADE_AT)  # fmt: skip
    assert verify(session).ok


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"region_id": None}, Invalid, "needs a region"),
        ({"region_id": "R-9"}, NotFound, "no region R-9"),
        ({"regulators": ["reg.one"]}, Invalid, "reg.one does not belong to site BJ-01"),
        ({"recipients": ["reg.one"]}, Invalid, "reg.one does not belong to site BJ-01"),
        ({"first_period": "2026-10"}, Invalid, "not a yearly period"),
        ({"cadence": "monthly", "first_period": "2026-10"}, Invalid, "for monthly periods"),
    ],
)
def test_a_regional_schedule_that_cannot_work_is_refused(session, change, error, message):
    _region(session)
    with pytest.raises(error, match=message):
        service.add_schedule(session=session, actor=SYSTEM, spec=_spec(**change), now=MADE_AT)


def test_a_quality_officer_of_one_site_neither_keeps_nor_sees_the_regions_schedule(
    session, make_user
):
    _region(session)
    row = service.add_schedule(session=session, actor=SYSTEM, spec=_spec(), now=MADE_AT)
    session.flush()
    officer = make_user("quality_officer", sites=("SH-01",))
    with pytest.raises(Exception, match="does not belong to site BJ-01"):
        service.add_schedule(session=session, actor=officer, spec=_spec(), now=MADE_AT)
    assert service.list_schedules(session=session, actor=officer) == []
    with pytest.raises(NotFound):
        service.current_schedule(session=session, actor=officer, schedule_id=row.schedule_id)


@pytest.mark.slow
def test_a_regional_report_is_made_once_and_delivered_by_mail_and_to_the_portal(
    tmp_path, fresh_database_url, monkeypatch
):
    from qms.checklists.language import Registry
    from qms.delivery.models import Delivery
    from qms.delivery.service import portal_deliveries
    from qms.quality.models import AuditRun
    from qms.reports.keys import make_demo_keys
    from qms.reports.models import ReportSite, ReportVersion

    registry = Registry.from_directory(Path(__file__).parent.parent / "records" / "checklists")
    settings = make_test_settings(tmp_path, fresh_database_url)
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            _region(session)
        make_demo_keys(settings, site_name="Test Hospital")
        # A configured key (not the demonstration one alone): automatic release may be asked.
        monkeypatch.setenv("QMS_REPORT_PKCS12", str(tmp_path / "keys" / "signing.p12"))
        with database.transaction() as session:
            row = service.add_schedule(
                session=session,
                actor=SYSTEM,
                spec=_spec(recipients=["bureau@example.org", "reg.both"],
                           regulators=["reg.both"], auto_release=True, language="zh"),
                now=MADE_AT,
            )  # fmt: skip
        with SmtpServer(Mailbox()) as server:
            monkeypatch.setenv("QMS_SMTP_URL", server.url)
            monkeypatch.setenv("QMS_MAIL_FROM", "qms@hospital.example")
            first = run_due(database, DUE_2026, settings=settings, registry=registry).lines()
            key = "regional-annual:BJ-01:R-1:2026:zh_CN"
            assert f"generated {key}/v1" in first, first
            assert run_due(database, DUE_2026, settings=settings, registry=registry).lines() == [
                "nothing due"
            ]
            received = {m["To"]: m for m in server.mailbox.received}
        assert sorted(received) == ["bureau@example.org", "reg.both@bureau.example"]
        with database.transaction(write=False) as session:
            (report,) = session.exec(select(ReportVersion)).all()
            covered = sorted(r.site_id for r in session.exec(select(ReportSite)).all())
            audits = session.exec(select(AuditRun)).all()
            deliveries = session.exec(select(Delivery)).all()
            assert [d.id for d, _ in portal_deliveries(session, "reg.both")] == [
                d.id for d in deliveries if d.channel == "portal"
            ]
            assert verify(session).ok
        assert (report.type, report.scope, report.period) == ("regional-annual", "R-1", "2026")
        assert covered == ["BJ-01", "SH-01"]
        assert sorted(a.site_id for a in audits) == ["BJ-01", "SH-01"]  # one per site
        for message in received.values():
            (attachment,) = list(message.iter_attachments())
            assert hashlib.sha256(attachment.get_content()).hexdigest() == report.sha256
            assert "East" in message["Subject"]
        assert {(d.channel, d.recipient) for d in deliveries} == {
            ("email", "bureau@example.org"),
            ("email", "reg.both@bureau.example"),
            ("portal", "reg.both"),
        }
        assert row.schedule_id == "SCH-R-1-1"
    finally:
        database.dispose()


@pytest.mark.slow
def test_a_regional_draft_waits_for_approval_told_to_every_covered_site(
    tmp_path, fresh_database_url
):
    from qms.checklists.language import Registry
    from qms.delivery.models import Delivery
    from qms.reports.keys import make_demo_keys

    registry = Registry.from_directory(Path(__file__).parent.parent / "records" / "checklists")
    settings = make_test_settings(tmp_path, fresh_database_url)
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            _region(session)
            service.add_schedule(session=session, actor=SYSTEM, spec=_spec(), now=MADE_AT)
        make_demo_keys(settings, site_name="Test Hospital")
        lines = run_due(database, DUE_2026, settings=settings, registry=registry).lines()
        assert "generated regional-annual:BJ-01:R-1:2026:en/v1" in lines, lines
        with database.transaction(write=False) as session:
            told = session.exec(select(Alert)).all()
            assert session.exec(select(Delivery)).all() == []  # not released: nothing leaves
        assert sorted((a.code, a.site_id) for a in told) == [
            ("report.regional_awaiting_approval", "BJ-01"),
            ("report.regional_awaiting_approval", "SH-01"),
        ]
        assert json.loads(told[0].params)["sites"] == ["BJ-01", "SH-01"]
    finally:
        database.dispose()


@pytest.mark.slow
def test_two_passes_at_once_make_the_regional_report_and_its_deliveries_once(
    tmp_path, fresh_database_url, monkeypatch
):
    import threading

    from qms.checklists.language import Registry
    from qms.delivery.models import Delivery
    from qms.reports.keys import make_demo_keys
    from qms.reports.models import ReportVersion

    registry = Registry.from_directory(Path(__file__).parent.parent / "records" / "checklists")
    settings = make_test_settings(tmp_path, fresh_database_url)
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            _region(session)
        make_demo_keys(settings, site_name="Test Hospital")
        monkeypatch.setenv("QMS_REPORT_PKCS12", str(tmp_path / "keys" / "signing.p12"))
        with database.transaction() as session:
            service.add_schedule(session=session, actor=SYSTEM,
                                 spec=_spec(regulators=["reg.both"], auto_release=True),
                                 now=MADE_AT)  # fmt: skip
        barrier = threading.Barrier(2)
        errors = []

        def worker(n: int) -> None:
            own = Database(fresh_database_url)
            try:
                barrier.wait()
                run_due(own, DUE_2026, settings=settings, registry=registry, by=f"worker {n}")
            except Exception as exc:  # pragma: no cover - shown by the assert
                errors.append(exc)
            finally:
                own.dispose()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        run_due(database, DUE_2026, settings=settings, registry=registry)
        with database.transaction(write=False) as session:
            reports = session.exec(select(ReportVersion)).all()
            deliveries = session.exec(select(Delivery)).all()
            assert verify(session).ok
        assert [r.id for r in reports] == ["regional-annual:BJ-01:R-1:2026:en/v1"]
        assert sorted((d.channel, d.recipient) for d in deliveries) == [
            ("email", "bureau@example.org"),
            ("portal", "reg.both"),
        ]
    finally:
        database.dispose()
