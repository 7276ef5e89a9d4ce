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
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from qms.accounts.service import Actor
from qms.core import ledger
from qms.core.canonical import canonical_time
from qms.core.clock import CLOCK_SKEW, zone_of
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _, ngettext
from qms.db import utcnow
from qms.storage.models import READING, Equipment, Reading
from qms.storage.service import HIGHEST_C, LOWEST_C, _require

_json_text = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes
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
    if tz.key in ("UTC", "Etc/UTC"):
        tz = UTC  # the same zone; times in it need no conversion below
    out = ParsedLog()
    sample = text[:2048]
    delimiter = max((",", ";", "\t"), key=sample.count)
    seen: dict[datetime, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        if not row or not "".join(row).strip():
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
        key = at if at.tzinfo is UTC else at.astimezone(UTC)
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
    readings = sorted(_checked(readings))
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
    stored = {moment.astimezone(UTC) for moment in stored}
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
    sqlite = session.connection().dialect.name == "sqlite"
    return ledger.write_many(
        session,
        Reading,
        reading_items(equipment_id, readings, now=now, by=actor.name, sqlite=sqlite),
        columns=READING_COLUMNS,
        constants=reading_constants(equipment_id, now=now, by=actor.name, sqlite=sqlite),
    )


def _checked(readings: Iterable[tuple[datetime, float]]) -> Iterator[tuple[datetime, float]]:
    """Each reading as (aware UTC time, finite float in the possible range), in one pass."""
    for at, temperature in readings:
        if at.tzinfo is None or at.utcoffset() is None:
            raise Invalid(_("the time of the reading must carry a UTC offset"))
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise Invalid(
                _("the temperature must be a number, not %(value)s", value=repr(temperature))
            )
        celsius = float(temperature)
        if not math.isfinite(celsius) or not LOWEST_C <= celsius <= HIGHEST_C:
            raise Invalid(
                _(
                    "%(value)s °C is not a possible reading (check the sensor or the number typed)",
                    value=temperature,
                )
            )
        yield (at if at.tzinfo is UTC else at.astimezone(UTC)), celsius


# The columns `reading_items` gives, in order, for each reading (the database assigns `id`;
# `reading_constants` gives the others once for the whole file).
READING_COLUMNS = ("at", "temperature_c")


def reading_constants(equipment_id: str, *, now: datetime, by: str, sqlite: bool) -> dict:
    """The columns every logger reading of one file shares, as `ledger.write_many` takes them."""
    return {
        "equipment_id": equipment_id,
        "recorded_at": _stored_time(canonical_time(now)) if sqlite else now,
        "recorded_by": by,
        "source": "logger",
        "imported_at": None,
        "imported_by": None,
    }


def reading_items(
    equipment_id: str,
    readings: Iterable[tuple[datetime, float]],
    *,
    now: datetime,
    by: str,
    sqlite: bool,
) -> Iterator[tuple[str, str, tuple]]:
    """(ref, canonical JSON, (time, temperature)) of each logger reading, for
    `ledger.write_many` (the other columns are `reading_constants`).

    The body is `READING.body` of the same row, written from a template made once per file
    (the time twice and the temperature are all that change); readings are UTC-aware
    (`import_log` checks). The first row is also rendered the general way and must agree,
    so a change to the declaration cannot silently diverge from this renderer. The time
    goes to the database as text: SQLite's stored form, or on PostgreSQL the canonical
    ISO 8601 text itself (which a timestamptz reads as the same instant)."""
    equipment = _json_text(equipment_id)
    recorded = canonical_time(now)
    head = '{"at":"'
    middle = '","equipment":' + equipment + ',"id":' + equipment[:-1] + "@"
    tail = (
        '","imported_at":null,"imported_by":null,"recorded_at":"'
        + recorded
        + '","recorded_by":'
        + _json_text(by)
        + ',"source":"logger","temperature_c":'
    )
    end = ',"type":"reading","v":2}'
    checked = False
    for at, temperature in readings:
        if at.year < 1000:  # isoformat pads the year, strftime may not: the general way
            text = canonical_time(at)
        else:
            text = at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        number = repr(int(temperature)) if temperature.is_integer() else repr(temperature)
        ref = equipment_id + "@" + text
        body = head + text + middle + text + tail + number + end
        if not checked:
            row = {"equipment_id": equipment_id, "at": at, "temperature_c": temperature}
            row.update(recorded_at=now, recorded_by=by, source="logger")
            row.update(imported_at=None, imported_by=None)
            if READING.body(row, _no_users) != ("reading", ref, body):
                raise RuntimeError("the reading template disagrees with its declaration")
            checked = True
        yield ref, body, (_stored_time(text) if sqlite else text, temperature)


def _stored_time(canonical: str) -> str:
    """A canonical UTC time as SQLite stores it (`UTCDateTime`: naive UTC, SQLAlchemy's
    "YYYY-MM-DD HH:MM:SS.ffffff" text)."""
    return canonical[:10] + " " + canonical[11:-1]


def _no_users(user_id: int) -> str:
    raise TypeError("a reading names no user ids")


def gap_limit(session: Session, site_id: str) -> timedelta:
    """The longest silence of a logger at a site: the quality officer's site setting
    (`qms.scheduling.settings`, "logger_gap_minutes"), 30 minutes unless set."""
    from qms.scheduling.settings import logger_gap_minutes

    return timedelta(minutes=logger_gap_minutes(session, site_id))


def gaps(times: list[datetime], longest: timedelta) -> list[tuple[datetime, datetime]]:
    """Stretches between consecutive readings longer than `longest` (the logger was silent)."""
    return [(a, b) for a, b in zip(times, times[1:], strict=False) if b - a > longest]
