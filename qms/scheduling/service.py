"""Schedules and their runs: add or change a schedule, list them, claim what is due.

Services take a keyword-only `session`, check who may act with
`qms.accounts.access.require`, and never commit. Claiming is race-free: it runs under
the ledger's lock (PostgreSQL's advisory lock, SQLite's write transaction), reads what
is claimed, and chains one `ScheduleRun` per due (schedule, period); the primary key and
the unique (schedule, period) constraint refuse a second one whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time

from sqlmodel import Session, col, select

from qms.accounts.access import require
from qms.accounts.models import Site, User, UserSite
from qms.accounts.roles import Permission, Role
from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.errors import Conflict, Denied, Invalid, NotFound
from qms.core.i18n import LANGUAGES, _, _l
from qms.scheduling.models import (
    ACTIVE,
    APPROVAL,
    AUTOMATIC,
    RETIRED,
    Schedule,
    ScheduleChange,
    ScheduleRegion,
    ScheduleRun,
)
from qms.scheduling.periods import (
    CADENCES,
    MONTHLY,
    YEARLY,
    Cadence,
    Due,
    due_periods,
    is_period,
    period_of,
)

# Quality officers and administrators keep schedules (both manage what is in force).
MANAGE_SCHEDULES = Permission.AUDIT | Permission.MANAGE_CHECKLISTS

SITE_MONTHLY = "site-monthly"
REGIONAL_ANNUAL = "regional-annual"
# The report types a schedule can ask for, and the cadence each has unless told.
REPORT_CADENCES = {SITE_MONTHLY: MONTHLY, REGIONAL_ANNUAL: YEARLY}
# The (report type, cadence) pairs a generator exists for today: a site monthly report
# covers a month, a regional annual report a year. A schedule for any other pair is
# refused when it is made (a quarterly or yearly site report: not built).
GENERATORS = {(SITE_MONTHLY, MONTHLY), (REGIONAL_ANNUAL, YEARLY)}
EDITED = "edited"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# The language codes a command line may use for the catalogs' codes.
LANGUAGE_ALIASES = {"zh": "zh_CN", "zh-CN": "zh_CN", "zh_CN": "zh_CN", "en": "en"}


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule asks for (the input of `add_schedule` and `change_schedule`)."""

    report_type: str
    site_id: str | None  # a regional schedule's is its region's first site unless given
    day: int
    at: str  # "HH:MM" in the site's zone
    cadence: str | None = None  # the report type's own unless given
    language: str | None = None  # the site's language unless given
    recipients: Sequence[str] = ()
    regulators: Sequence[str] = ()
    auto_release: bool = False
    first_period: str | None = None  # the period running when the schedule is made
    region_id: str | None = None  # the region of a regional report


def this_process() -> str:
    """Who claims a run: the host and process id (what an inspector needs to trace it)."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def add_schedule(
    *, session: Session, actor: Actor | User, spec: ScheduleSpec, now: datetime
) -> Schedule:
    """Make a new schedule (its version 1): `SCH-<site>-N`, or `SCH-<region>-N`."""
    scope = spec.region_id if spec.report_type == REGIONAL_ANNUAL else spec.site_id
    for site_id in _scope_sites(session, spec):
        require(session, actor, MANAGE_SCHEDULES, site_id, action=_l("manage schedules"))
    ledger.lock(session)  # the next schedule number is decided under the lock
    prefix = f"SCH-{scope}-"
    taken = set(
        session.exec(
            select(Schedule.schedule_id).where(
                col(Schedule.schedule_id).startswith(prefix, autoescape=True)
            )
        ).all()
    )
    number = len(taken) + 1
    while f"{prefix}{number}" in taken:
        number += 1
    row, region_id = _build(session, actor, spec, f"{prefix}{number}", 1, ACTIVE, now)
    _record(session, row, region_id)
    return row


def change_schedule(
    *,
    session: Session,
    actor: Actor | User,
    schedule_id: str,
    spec: ScheduleSpec | None = None,
    retire: bool = False,
    reason: str | None = None,
    now: datetime,
) -> Schedule:
    """A new version of a schedule (edited, or retired) and a `ScheduleChange` saying who,
    when and why: the old version stays as it was recorded."""
    current = current_schedule(session=session, actor=actor, schedule_id=schedule_id)
    for site_id in covered_sites(session, current) or [current.site_id]:
        require(session, actor, MANAGE_SCHEDULES, site_id, action=_l("manage schedules"))
    reason = (reason or "").strip()
    if not reason:
        raise Invalid(
            _("retiring a schedule needs a reason")
            if retire
            else _("a change of a schedule needs a reason")
        )
    ledger.lock(session)
    current = current_schedule(session=session, actor=actor, schedule_id=schedule_id)
    if current.status == RETIRED:
        raise Conflict(
            _(
                "schedule %(schedule)s is retired; make a new schedule instead",
                schedule=schedule_id,
            )
        )
    if spec is None:
        spec = spec_of(current, region_of(session, current))
    if spec.report_type != current.report_type:
        raise Invalid(_("a schedule keeps its report type; make a new one for another report"))
    if current.report_type == REGIONAL_ANNUAL:
        if spec.region_id != region_of(session, current):
            raise Invalid(_("a schedule stays with its region; make a new one for another region"))
    elif spec.site_id != current.site_id:
        raise Invalid(_("a schedule stays with its site; make a new one for another site"))
    row, region_id = _build(
        session,
        actor,
        spec,
        schedule_id,
        current.version + 1,
        RETIRED if retire else ACTIVE,
        now,
        first_period=current.first_period if spec.first_period is None else None,
        check_generator=not retire,
    )
    if not retire and _columns(row) == _columns(current):
        raise Invalid(_("nothing to change: the schedule already says this"))
    _record(session, row, region_id)
    ledger.write(
        session,
        ScheduleChange(
            id=row.id,
            schedule_id=schedule_id,
            version=row.version,
            change=RETIRED if retire else EDITED,
            reason=reason,
            at=now,
            by_id=actor.id,
            by=row.created_by,
        ),
    )
    return row


def retire_schedule(
    *, session: Session, actor: Actor | User, schedule_id: str, reason: str, now: datetime
) -> Schedule:
    """Retire a schedule: nothing falls due after `now` (periods owed before still are)."""
    return change_schedule(
        session=session, actor=actor, schedule_id=schedule_id, retire=True, reason=reason, now=now
    )


def changes_of(session: Session, schedule_ids: Iterable[str]) -> dict[str, ScheduleChange]:
    """The change record of each version after the first, by schedule version id."""
    ids = list(schedule_ids)
    if not ids:
        return {}
    rows = session.exec(select(ScheduleChange).where(ScheduleChange.schedule_id.in_(ids))).all()
    return {row.id: row for row in rows}


def spec_of(schedule: Schedule, region_id: str | None = None) -> ScheduleSpec:
    """What a version asks for (give the region of a regional one: `region_of`)."""
    return ScheduleSpec(
        report_type=schedule.report_type,
        site_id=schedule.site_id,
        day=schedule.day,
        at=schedule.at_time,
        cadence=schedule.cadence,
        language=schedule.language,
        recipients=tuple(json.loads(schedule.recipients)),
        regulators=tuple(json.loads(schedule.regulators)),
        auto_release=schedule.release == AUTOMATIC,
        first_period=schedule.first_period,
        region_id=region_id,
    )


_COMPARED = ("report_type", "cadence", "day", "at_time", "language", "recipients",
             "regulators", "release", "first_period")  # fmt: skip


def _columns(row: Schedule) -> tuple:
    return tuple(getattr(row, name) for name in _COMPARED)


def _record(session: Session, row: Schedule, region_id: str | None) -> None:
    """Chain a version, and beside it the region of a regional one."""
    ledger.write(session, row)
    if region_id is not None:
        ledger.write(
            session,
            ScheduleRegion(id=row.id, schedule_id=row.schedule_id, region_id=region_id),
        )


def _scope_sites(session: Session, spec: ScheduleSpec) -> list[str]:
    """The sites a schedule covers: its site, or every site of its region (now)."""
    if spec.report_type != REGIONAL_ANNUAL:
        if spec.region_id:
            raise Invalid(_("only a regional report is made for a region"))
        if not spec.site_id:
            raise Invalid(_("a %(type)s schedule needs a site", type=spec.report_type))
        if session.get(Site, spec.site_id) is None:
            raise NotFound(_("no site %(site)s", site=spec.site_id))
        return [spec.site_id]
    from qms.regions.models import Region
    from qms.regions.service import sites_of_region

    if not spec.region_id:
        raise Invalid(_("a regional annual schedule needs a region"))
    if session.get(Region, spec.region_id) is None:
        raise NotFound(_("there is no region %(region)s", region=spec.region_id))
    sites = sites_of_region(session, spec.region_id)
    if not sites:
        raise Invalid(_("the region %(region)s has no sites", region=spec.region_id))
    return sites


def _build(
    session: Session,
    actor: Actor | User,
    spec: ScheduleSpec,
    schedule_id: str,
    version: int,
    status: str,
    now: datetime,
    first_period: str | None = None,
    check_generator: bool = True,
) -> tuple[Schedule, str | None]:
    """The version a spec asks for, checked, and its region (None for a site's report)."""
    if spec.report_type not in REPORT_CADENCES:
        raise Invalid(
            _(
                "a schedule cannot make %(type)s reports; choose one of: %(choices)s",
                type=spec.report_type,
                choices=", ".join(REPORT_CADENCES),
            )
        )
    sites = _scope_sites(session, spec)
    # A regional schedule's times are in the zone of a site of its region: the one named,
    # else the region's first (the site its reports are filed under).
    site = session.get(Site, spec.site_id if spec.site_id in sites else sites[0])
    cadence = spec.cadence or REPORT_CADENCES[spec.report_type]
    if cadence not in CADENCES:
        raise Invalid(
            _(
                "unknown cadence %(cadence)s; choose one of: %(choices)s",
                cadence=cadence,
                choices=", ".join(CADENCES),
            )
        )
    if check_generator and (spec.report_type, cadence) not in GENERATORS:
        raise Invalid(
            _(
                "no generator makes %(type)s reports for %(cadence)s periods yet; "
                "a schedule can make: %(choices)s",
                type=spec.report_type,
                cadence=cadence,
                choices=", ".join(f"{t} ({c})" for t, c in sorted(GENERATORS)),
            )
        )
    if not 1 <= spec.day <= 31:
        raise Invalid(_("the day of the month must be between 1 and 31"))
    if not _TIME.match(spec.at or ""):
        raise Invalid(_("the time of day must be HH:MM, e.g. 08:00"))
    language = LANGUAGE_ALIASES.get(spec.language or site.language)
    if language not in LANGUAGES:
        raise Invalid(
            _(
                "unknown language %(language)s; choose one of: %(choices)s",
                language=spec.language,
                choices=", ".join(LANGUAGES),
            )
        )
    recipients = sorted({address.strip() for address in spec.recipients if address.strip()})
    for recipient in recipients:
        if "@" in recipient:
            if not _EMAIL.match(recipient):
                raise Invalid(_("%(address)s is not an email address", address=recipient))
        else:  # a regulator's account: mailed at the address it has when the report leaves
            if session.exec(select(User.id).where(User.username == recipient)).first() is None:
                raise Invalid(
                    _(
                        "%(recipient)s is not an email address (nor a regulator's username)",
                        recipient=recipient,
                    )
                )
            account = _check_regulator(session, recipient, sites)
            if not account.email:
                raise Invalid(
                    _(
                        "%(username)s has no email address: give one on the account, or "
                        "name the address",
                        username=recipient,
                    )
                )
    regulators = sorted(set(spec.regulators))
    for username in regulators:
        _check_regulator(session, username, sites)
    if not recipients and not regulators:
        raise Invalid(_("a schedule needs at least one recipient: an email address or a regulator"))
    if spec.auto_release and not site_key_configured(site.id) and check_generator:
        raise Invalid(
            _(
                "automatic release needs a signing key configured for site %(site)s; "
                "without one a quality officer approves each report",
                site=site.id,
            )
        )
    first = spec.first_period or first_period
    if first is None:
        first = period_of(cadence, now.astimezone(_zone(site)).date())
    if not is_period(cadence, first):
        raise Invalid(
            _(
                "%(period)s is not a %(cadence)s period (e.g. 2026-10, 2026-Q4, 2026)",
                period=first,
                cadence=cadence,
            )
        )
    user_id = actor.id
    name = actor.name if isinstance(actor, Actor) else f"{actor.full_name} ({actor.username})"
    row = Schedule(
        id=f"{schedule_id}/{version}",
        schedule_id=schedule_id,
        version=version,
        report_type=spec.report_type,
        site_id=site.id,
        cadence=cadence,
        day=spec.day,
        at_time=spec.at,
        language=language,
        recipients=json.dumps(recipients),
        regulators=json.dumps(regulators),
        release=AUTOMATIC if spec.auto_release else APPROVAL,
        first_period=first,
        status=status,
        created_at=now,
        created_by_id=user_id,
        created_by=name,
    )
    return row, (spec.region_id if spec.report_type == REGIONAL_ANNUAL else None)


def site_key_configured(site_id: str) -> bool:
    """Whether a signing key is configured for sealing reports without a person: a key
    named by QMS_REPORT_PKCS12 (the demonstration key in the instance folder is not)."""
    return bool(os.environ.get("QMS_REPORT_PKCS12"))


def _check_regulator(session: Session, username: str, site_ids: Sequence[str]) -> User:
    """An active regulator of every site the schedule covers (the reports' own rule: a
    report of several sites is read only by someone of each of them)."""
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None or not user.active:
        raise Invalid(_("%(username)s is not an active user", username=username))
    if user.role != Role.REGULATOR:
        raise Invalid(_("%(username)s is not a regulator", username=username))
    for site_id in site_ids:
        if session.get(UserSite, (user.id, site_id)) is None:
            raise Invalid(
                _(
                    "%(username)s does not belong to site %(site)s",
                    username=username,
                    site=site_id,
                )
            )
    return user


def _zone(site: Site):
    from qms.core.clock import zone_of

    return zone_of(site.timezone)


# --- reading -------------------------------------------------------------------------


def _latest(rows: Iterable[Schedule]) -> list[Schedule]:
    newest: dict[str, Schedule] = {}
    for row in rows:
        known = newest.get(row.schedule_id)
        if known is None or row.version > known.version:
            newest[row.schedule_id] = row
    return sorted(newest.values(), key=lambda s: (s.site_id, s.schedule_id))


def list_schedules(
    *, session: Session, actor: Actor | User, site_ids: Iterable[str] | None = None
) -> list[Schedule]:
    """The version in force of each schedule at the sites asked for (all the actor's)."""
    require(session, actor, MANAGE_SCHEDULES, action=_l("see schedules"))
    query = select(Schedule)
    if site_ids is not None:
        query = query.where(Schedule.site_id.in_(list(site_ids)))
    rows = _latest(session.exec(query).all())
    if actor.id is None:
        return rows
    from qms.accounts.access import member_site_ids

    own = member_site_ids(session, actor.id)
    covered = covered_sites_of(session, rows)
    # A regional schedule is someone's only if every site of its region is theirs.
    return [row for row in rows if set(covered[row.id] or [row.site_id]) <= own]


def regions_of(session: Session, version_ids: Iterable[str]) -> dict[str, str]:
    """The region of each regional schedule version among `version_ids`."""
    ids = list(version_ids)
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        found.update(
            session.exec(
                select(ScheduleRegion.id, ScheduleRegion.region_id).where(
                    col(ScheduleRegion.id).in_(ids[start : start + 500])
                )
            ).all()
        )
    return found


def region_of(session: Session, schedule: Schedule) -> str | None:
    return regions_of(session, [schedule.id]).get(schedule.id)


def covered_sites_of(session: Session, schedules: Iterable[Schedule]) -> dict[str, list[str]]:
    """The sites each version covers now: its site, or every site of its region."""
    from qms.regions.models import RegionSite

    rows = list(schedules)
    regions = regions_of(session, [r.id for r in rows if r.report_type == REGIONAL_ANNUAL])
    members: dict[str, list[str]] = {}
    if regions:
        for site_id, region_id in session.exec(
            select(RegionSite.site_id, RegionSite.region_id)
            .where(col(RegionSite.region_id).in_(sorted(set(regions.values()))))
            .order_by(col(RegionSite.site_id))
        ).all():
            members.setdefault(region_id, []).append(site_id)
    return {r.id: members.get(regions[r.id], []) if r.id in regions else [r.site_id] for r in rows}


def covered_sites(session: Session, schedule: Schedule) -> list[str]:
    return covered_sites_of(session, [schedule])[schedule.id]


def current_schedule(*, session: Session, actor: Actor | User, schedule_id: str) -> Schedule:
    rows = session.exec(select(Schedule).where(Schedule.schedule_id == schedule_id)).all()
    if not rows:
        raise NotFound(_("no schedule %(schedule)s", schedule=schedule_id))
    schedule = _latest(rows)[0]
    try:
        require(session, actor, MANAGE_SCHEDULES, action=_l("see schedules"))
        for site_id in covered_sites(session, schedule) or [schedule.site_id]:
            require(session, actor, MANAGE_SCHEDULES, site_id, action=_l("see schedules"))
    except Denied:
        # Another site's schedule answers exactly like a missing one.
        raise NotFound(_("no schedule %(schedule)s", schedule=schedule_id)) from None
    return schedule


def schedule_history(*, session: Session, actor: Actor | User, schedule_id: str) -> list[Schedule]:
    current_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return list(
        session.exec(
            select(Schedule).where(Schedule.schedule_id == schedule_id).order_by(Schedule.version)
        ).all()
    )


def runs_of(*, session: Session, schedule_ids: Iterable[str]) -> list[ScheduleRun]:
    ids = list(schedule_ids)
    if not ids:
        return []
    return list(
        session.exec(
            select(ScheduleRun)
            .where(ScheduleRun.schedule_id.in_(ids))
            .order_by(ScheduleRun.schedule_id, ScheduleRun.period)
        ).all()
    )


def cadence_of(schedule: Schedule, site_timezone: str) -> Cadence:
    """The pure function's view of a schedule's version in force (a retired one owes
    what fell due before its retirement, the time its retired version was recorded)."""
    hours, minutes = schedule.at_time.split(":")
    return Cadence(
        schedule_id=schedule.schedule_id,
        cadence=schedule.cadence,
        day=schedule.day,
        at=time(int(hours), int(minutes)),
        timezone=site_timezone,
        first_period=schedule.first_period,
        until=schedule.created_at if schedule.status == RETIRED else None,
    )


def in_force(session: Session) -> tuple[list[Schedule], list[Cadence]]:
    """Every schedule's version in force and its cadence (in its site's zone)."""
    schedules = _latest(session.exec(select(Schedule)).all())
    zones = dict(session.exec(select(Site.id, Site.timezone)).all())
    return schedules, [cadence_of(s, zones[s.site_id]) for s in schedules]


def what_is_due(session: Session, now: datetime) -> list[Due]:
    """What `due_periods` says is due now, from the schedules and the registry rows."""
    _, cadences = in_force(session)
    claimed = session.exec(select(ScheduleRun.schedule_id, ScheduleRun.period)).all()
    return due_periods(cadences, [tuple(row) for row in claimed], now)


def claim_due(
    *, session: Session, actor: Actor, now: datetime, claimed_at: datetime, by: str | None = None
) -> list[ScheduleRun]:
    """Chain one run for each due (schedule, period) not yet claimed; the caller commits.

    Under the ledger's lock, so that two schedulers (or a cron `run-due` beside one)
    never claim the same period: the second sees the first one's rows."""
    require(session, actor, MANAGE_SCHEDULES, action=_l("run schedules"))
    ledger.lock(session)
    schedules, _ = in_force(session)
    versions = {s.schedule_id: s.id for s in schedules}
    claimed = []
    for due in what_is_due(session, now):
        run = ScheduleRun(
            id=f"{due.schedule_id}:{due.period}",
            schedule_id=due.schedule_id,
            schedule_version=versions[due.schedule_id],
            period=due.period,
            due_at=due.due_at,
            claimed_at=claimed_at,
            claimed_by=by or this_process(),
        )
        ledger.write(session, run)
        claimed.append(run)
    return claimed
