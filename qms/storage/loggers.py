"""Data-logger CSV exports: read every line (naming each bad one), then store all or nothing.

A logger export is two columns, a time and a temperature (a header line is skipped;
`;` and tab separate as well as `,`). The unit of temperature and the zone of times
without an offset are asked once for the whole file. Nothing is stored when any line is
wrong; a good file is chained in one batch (`core.ledger.batch`): a year at one reading
a minute is 525,600 rows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.clock import CLOCK_SKEW, zone_of
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _, ngettext
from qms.db import utcnow
from qms.storage.models import Equipment, Reading
from qms.storage.service import HIGHEST_C, LOWEST_C, _require

UNITS = ("C", "F")
SHOWN_PROBLEMS = 50  # a page names this many bad lines, then says how many more


@dataclass
class ParsedLog:
    readings: list[tuple[datetime, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 7: ..." each
    lines: int = 0


def _time(text: str, zone: tzinfo) -> datetime:
    text = text.strip().replace("/", "-")
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def parse_log(text: str, *, unit: str, zone: str) -> ParsedLog:
    """Every reading of the export, or every problem with its line number."""
    if unit not in UNITS:
        raise Invalid(_("Choose the unit of temperature: °C or °F."))
    tz = zone_of(zone)
    out = ParsedLog()
    sample = text[:2048]
    delimiter = max((",", ";", "\t"), key=sample.count)
    seen: dict[datetime, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        out.lines += 1
        if len(row) < 2:
            out.problems.append(_("line %(line)s: needs a time and a temperature", line=number))
            continue
        stamp, value = row[0].strip(), row[1].strip()
        try:
            at = _time(stamp, tz)
        except ValueError:
            if number == 1:
                out.lines -= 1
                continue  # a header line
            out.problems.append(
                _("line %(line)s: %(value)s is not a date and time", line=number, value=repr(stamp))
            )
            continue
        try:
            reading = float(value.replace("−", "-").replace(",", "."))
        except ValueError:
            out.problems.append(
                _("line %(line)s: %(value)s is not a temperature", line=number, value=repr(value))
            )
            continue
        celsius = (reading - 32) * 5 / 9 if unit == "F" else reading
        if not math.isfinite(celsius) or not LOWEST_C <= celsius <= HIGHEST_C:
            out.problems.append(
                _(
                    "line %(line)s: %(value)s is not a possible temperature",
                    line=number,
                    value=value,
                )
            )
            continue
        key = at.astimezone(zone_of("UTC"))
        if key in seen:
            out.problems.append(
                _(
                    "line %(line)s: the time %(time)s is already on line %(first)s",
                    line=number,
                    time=stamp,
                    first=seen[key],
                )
            )
            continue
        seen[key] = number
        out.readings.append((key, round(celsius, 3)))
    if not out.readings and not out.problems:
        out.problems.append(_("the file holds no readings"))
    return out


def import_log(
    *,
    session: Session,
    actor: Actor,
    equipment_id: str,
    readings: Iterable[tuple[datetime, float]],
    now: datetime | None = None,
) -> int:
    """Store a parsed export as logger readings, all or nothing; returns how many."""
    now = now or utcnow()
    equipment = session.get(Equipment, equipment_id)
    if equipment is None:
        raise NotFound(_("there is no equipment %(equipment)s", equipment=equipment_id))
    _require(session, actor, equipment.site_id)
    readings = sorted(readings)
    if not readings:
        return 0
    future = [at for at, _t in readings if at > now + CLOCK_SKEW]
    if future:
        raise Invalid(
            _(
                "%(count)s readings are dated in the future (the first %(time)s): nothing was stored",
                count=len(future),
                time=future[0].isoformat(),
            )
        )
    ledger.lock(session)
    first, last = readings[0][0], readings[-1][0]
    stored = set(
        session.exec(
            select(Reading.at).where(
                Reading.equipment_id == equipment_id,
                col(Reading.at) >= first,
                col(Reading.at) <= last,
            )
        )
    )
    stored = {moment.astimezone(first.tzinfo) for moment in stored}
    clash = [at for at, _t in readings if at in stored]
    if clash:
        raise Invalid(
            ngettext(
                "%(num)d reading of this file is already recorded (%(time)s): nothing was stored",
                "%(num)d readings of this file are already recorded (the first %(time)s): "
                "nothing was stored",
                len(clash),
                time=clash[0].isoformat(),
            )
        )
    with ledger.batch(session):
        for at, temperature in readings:
            ledger.write(
                session,
                ledger.new_row(
                    session,
                    Reading,
                    equipment_id=equipment_id,
                    at=at,
                    temperature_c=temperature,
                    recorded_at=now,
                    recorded_by=actor.name,
                    source="logger",
                    imported_at=None,
                    imported_by=None,
                ),
            )
    return len(readings)


def gaps(times: list[datetime], longest: timedelta) -> list[tuple[datetime, datetime]]:
    """Stretches between consecutive readings longer than `longest` (the logger was silent)."""
    return [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a > longest]
