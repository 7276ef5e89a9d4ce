"""Audit-run benchmark: a site-month (300 units) and a region-year (20 sites, 5,000 units).

    .venv/bin/python bench/audit.py [--databases sqlite,postgresql] [--region-units 250]

Fills a fresh database with Kymriah units as bench/units.py does (records chained with
the ledger's own declarations: steps, signatures, statuses, corrections, freezer
readings), then times `qms.quality.audits.run_audit` (judge every unit in scope and
record the chained run) with the number of SQL statements it sends, next to a floor
measured in the same run: the batch loader and the judging function alone on the same
units (`load_units_by_id(...).judge(...)`, what any audit must at least do). The number
of statements is also shown for a tenth of the units, to show it does not grow with
them. The region-year audits each of 20 sites for the year (20 runs); peak RSS is the
process's. Targets (issue "Audits, deviations and CAPA"): site-month ≤ 1 s; region-year
≤ 15 s and ≤ 500 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.units as filler  # noqa: E402
from bench.ledger import new_database  # noqa: E402
from qms.accounts import service as accounts  # noqa: E402
from qms.checklists.language import Registry  # noqa: E402
from qms.core.models import LedgerEntry  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.quality import audits  # noqa: E402
from qms.records.loading import load_units_by_id  # noqa: E402
from qms.storage.models import READING  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)


class Statements:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args):
        self.count += 1


def setup_sites(database: Database, sites: list[str]) -> dict[str, dict[str, int]]:
    """The sites, and the bench's people at each (a user belongs to one site): site ->
    {username as bench/units.py names them: user id}; the first site's keep their names."""
    out: dict[str, dict[str, int]] = {}
    with database.transaction() as s:
        for site in sites:
            accounts.create_site(session=s, site_id=site, name=f"Bench hospital {site}")
        s.flush()
        system = accounts.Actor.system("bench")
        for n, site in enumerate(sites):
            out[site] = {}
            for username, role in filler.PEOPLE.items():
                user = accounts.create_user(
                    session=s,
                    actor=system,
                    username=username if n == 0 else f"{username}.{n}",
                    full_name=username.title(),
                    role=role,
                    password=filler.PASSWORD,
                    site_ids=[site],
                )
                s.flush()
                out[site][username] = user.id
    return out


def officer_of(sites: list[str], site: str) -> str:
    n = sites.index(site)
    return "liu.yang" if n == 0 else f"liu.yang.{n}"


def fill_sites(database: Database, people: dict, sites: list[str], units_per_site: int) -> None:
    """Each site's units (unit ids numbered apart); the freezers' readings once."""
    from qms.storage import service as storage

    with database.transaction() as s:
        for equipment in filler.FREEZERS:
            storage.register_equipment(
                session=s,
                actor=accounts.Actor.system("bench"),
                equipment_id=equipment,
                kind="ln2_vapour",
                site_id=sites[0],
            )
    chained = filler.ChainedFill(database, people[sites[0]])
    chained.usernames = {
        user_id: (name if n == 0 else f"{name}.{n}")
        for n, site in enumerate(sites)
        for name, user_id in people[site].items()
    }
    span = timedelta(hours=units_per_site)
    hour = (NOW - span - timedelta(days=3)).replace(minute=0, second=0)
    while hour < NOW:  # hourly readings, the odd one warm (an excursion)
        for n, equipment in enumerate(filler.FREEZERS):
            number = int(hour.timestamp() // 3600)
            warm = (number + 37 * n) % 500 == 0
            chained.add_chained(
                "reading",
                READING,
                {
                    "equipment_id": equipment,
                    "at": hour,
                    "temperature_c": -110.0 if warm else -162.0 + (number + n) % 3,
                    "recorded_at": hour,
                    "recorded_by": "logger",
                    "source": "logger",
                    "imported_at": None,
                    "imported_by": None,
                },
            )
        hour += timedelta(hours=1)
    for n, site in enumerate(sites):
        filler.SITE = site  # _one_unit registers at filler.SITE
        for i in range(units_per_site):
            registered = NOW - span + span * i / units_per_site
            filler._one_unit(chained, people[site], n * 100_000 + i, registered, NOW)
    chained.flush()


def timed(database: Database, work) -> tuple[float, int, object]:
    engine = database.engine
    with Statements(engine) as statements:
        started = time.perf_counter()
        result = work()
        elapsed = time.perf_counter() - started
    return elapsed, statements.count, result


def audit(database: Database, registry, officer_name: str, scope) -> tuple[float, int, dict]:
    def work():
        with database.transaction() as s:
            officer = accounts.get_user_by_username(session=s, username=officer_name)
            run = audits.run_audit(session=s, registry=registry, by=officer, scope=scope, now=NOW)
            return json.loads(run.counts)

    return timed(database, work)


def floor(database: Database, registry, scope) -> tuple[float, int, int]:
    """The loader and the judging function alone on the same units."""
    with database.transaction(write=False) as s:
        site = s.get(accounts.Site, scope.site_id)
        ids = audits.units_in_scope(s, scope, site.timezone, 2**31 - 1)

    def work():
        with database.transaction(write=False) as s:
            judged = load_units_by_id(s, ids).judge(registry, now=None, due=False)
            return sum(len(j.findings) for j in judged.values() if j)

    return timed(database, work)


def ledger_size(database: Database) -> int:
    with database.transaction(write=False) as s:
        return s.exec(select(func.count()).select_from(LedgerEntry)).one()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def site_month(backend: str, tmp: Path, registry, units: int, runs: int) -> None:
    url, drop = new_database(backend, tmp)
    try:
        migrate(url)
        database = Database(url)
        people = setup_sites(database, ["SH-01"])
        started = time.perf_counter()
        fill_sites(database, people, ["SH-01"], units)
        filled = time.perf_counter() - started
        month = audits.AuditScope(
            site_id="SH-01", date_from=(NOW - timedelta(days=31)).date(), date_to=NOW.date()
        )
        tenth = audits.AuditScope(
            site_id="SH-01",
            date_from=(NOW - timedelta(hours=units // 10)).date(),
            date_to=NOW.date(),
        )
        audit(database, registry, "liu.yang", month)  # warm caches (and the checklists)
        audits_made, floors = [], []
        for _ in range(runs):  # alternated, so that a busy machine weighs on both alike
            audits_made.append(audit(database, registry, "liu.yang", month))
            floors.append(floor(database, registry, month))
        a_time = statistics.median(t for t, _q, _c in audits_made)
        f_time = statistics.median(t for t, _q, _c in floors)
        _t, a_queries, counts = audits_made[-1]
        _t, f_queries, f_findings = floors[-1]
        _t, small_queries, small = audit(database, registry, "liu.yang", tenth)
        print(
            f"[{backend}] site-month: {counts['units']} units, {counts['records']} step records "
            f"({ledger_size(database)} ledger records, filled in {filled:.1f} s), "
            f"{counts['findings']} findings; median of {runs} runs each"
        )
        print(
            f"  audit run      {a_time * 1000:8.0f} ms  {a_queries:3d} statements  (target ≤ 1000 ms)"
        )
        print(
            f"  floor (judge)  {f_time * 1000:8.0f} ms  {f_queries:3d} statements  ({f_findings} findings)"
        )
        print(
            f"  statements for {small['units']} units: {small_queries}; for {counts['units']}: "
            f"{a_queries}"
        )
        database.dispose()
    finally:
        drop()


def region_year(backend: str, tmp: Path, registry, units_per_site: int) -> None:
    url, drop = new_database(backend, tmp)
    sites = [f"SH-{n:02d}" for n in range(1, 21)]
    try:
        migrate(url)
        database = Database(url)
        people = setup_sites(database, sites)
        started = time.perf_counter()
        fill_sites(database, people, sites, units_per_site)
        filled = time.perf_counter() - started
        year_from = (NOW - timedelta(days=365)).date()
        scopes = [
            audits.AuditScope(site_id=site, date_from=year_from, date_to=NOW.date())
            for site in sites
        ]
        rss_before = peak_rss_mb()
        total, statements, units, records, findings = 0.0, [], 0, 0, 0
        for scope in scopes:
            officer = officer_of(sites, scope.site_id)
            elapsed, queries, counts = audit(database, registry, officer, scope)
            total += elapsed
            statements.append(queries)
            units += counts["units"]
            records += counts["records"]
            findings += counts["findings"]
        floor_total = 0.0
        for scope in scopes:
            f_time, _q, _n = floor(database, registry, scope)
            floor_total += f_time
        print(
            f"[{backend}] region-year: {len(sites)} sites, {units} units, {records} step records "
            f"({ledger_size(database)} ledger records, filled in {filled:.1f} s), {findings} findings"
        )
        print(f"  20 audit runs  {total:8.2f} s   (target ≤ 15 s)")
        print(f"  floor (judge)  {floor_total:8.2f} s")
        print(
            f"  statements per run: {min(statements)}–{max(statements)}; peak RSS "
            f"{peak_rss_mb():.0f} MB (before the runs {rss_before:.0f} MB; target ≤ 500 MB)"
        )
        database.dispose()
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite")
    parser.add_argument("--site-units", type=int, default=300)
    parser.add_argument("--region-units", type=int, default=250, help="units per site")
    parser.add_argument("--skip-region", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="site-month runs (median shown)")
    args = parser.parse_args()
    registry = Registry.from_directory()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.databases.split(","):
            site_month(backend, Path(tmp), registry, args.site_units, args.runs)
            if not args.skip_region:
                region_year(backend, Path(tmp), registry, args.region_units)


if __name__ == "__main__":
    main()
