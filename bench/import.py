"""Benchmark of `qms import`: ledger records written per second, against the bulk fill.

    .venv/bin/python bench/import.py [--units 3000] [--databases sqlite,postgresql]

Builds one interchange file of N units from the compliant examples of every shipped
checklist (tests/checklists/examples/<checklist>/compliant.jsonl: each copy gets its own
unit and record ids; equipment and readings once), imports it into a fresh database
through the real importer (`--create-missing-users`, as another site's file needs), and
prints the time and the ledger records per second next to a floor measured in the same
run on the same kind of database: the chained bulk fill of bench/ledger.py (canonical
JSON, hashes and typed rows inserted in batches, no checks) for the same number of
records. Target: 3,000 units (about 113,000 records) in at most 30 s, within 3x the fill.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ledger import fill, new_database, setup_people  # noqa: E402
from sqlmodel import func, select  # noqa: E402

from qms.accounts import service as accounts  # noqa: E402
from qms.checklists.language import Registry  # noqa: E402
from qms.core.models import LedgerEntry  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.records.importer import import_interchange  # noqa: E402

EXAMPLES = ROOT / "tests" / "checklists" / "examples"
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # after every example's dates


def interchange_lines(n_units: int) -> list[str]:
    templates: list[tuple[dict, list[dict]]] = []
    shared: dict[tuple, dict] = {}  # equipment and readings, once each
    for path in sorted(EXAMPLES.glob("*/compliant.jsonl")):
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        for doc in docs:
            if doc["type"] == "equipment":
                shared.setdefault(("equipment", doc["id"]), doc)
            elif doc["type"] == "reading":
                shared.setdefault(("reading", doc["equipment"], doc["at"]), doc)
        for unit in (d for d in docs if d["type"] == "unit"):
            steps = [d for d in docs if d["type"] == "step" and d["unit"] == unit["id"]]
            templates.append((unit, steps))
    lines = [json.dumps(doc) for key, doc in shared.items() if key[0] == "equipment"]
    for n in range(n_units):
        unit, steps = templates[n % len(templates)]
        uid = f"{unit['id']}-{n}"
        lines.append(json.dumps({**unit, "id": uid}))
        for step in steps:
            copy = {**step, "unit": uid}
            for key in ("id", "corrects"):
                if copy.get(key):
                    copy[key] = copy[key].replace(unit["id"], uid, 1)
            lines.append(json.dumps(copy))
    lines += [json.dumps(doc) for key, doc in shared.items() if key[0] == "reading"]
    return lines


def timed_import(
    backend: str, tmp: Path, lines: list[str], registry: Registry
) -> tuple[float, int]:
    url, drop = new_database(backend, tmp)
    try:
        migrate(url)
        database = Database(url)
        sites = sorted({json.loads(line)["site"] for line in lines if '"site"' in line})
        with database.transaction() as s:
            for site in sites:
                accounts.create_site(session=s, site_id=site, name=f"Bench hospital {site}")
        started = time.perf_counter()
        with database.transaction() as s:
            import_interchange(
                session=s,
                registry=registry,
                lines=lines,
                source="bench.jsonl",
                actor=accounts.Actor.system("bench"),
                create_missing_users=True,
                now=NOW,
            )
        elapsed = time.perf_counter() - started
        with database.transaction(write=False) as s:
            records = s.exec(select(func.count()).select_from(LedgerEntry)).one()
        database.dispose()
        return elapsed, records
    finally:
        drop()


def timed_fill(backend: str, tmp: Path, records: int) -> float:
    url, drop = new_database(backend, tmp)
    try:
        migrate(url)
        database = Database(url)
        people = setup_people(database)
        started = time.perf_counter()
        fill(database, people, records)
        elapsed = time.perf_counter() - started
        database.dispose()
        return elapsed
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=3000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    registry = Registry.from_directory()
    lines = interchange_lines(args.units)
    print(f"interchange file: {args.units} units, {len(lines)} lines")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.databases.split(","):
            seconds, records = timed_import(backend, Path(tmp), lines, registry)
            floor = timed_fill(backend, Path(tmp), records)
            print(
                f"[{backend}] qms import: {records:,} ledger records in {seconds:.1f} s "
                f"= {records / seconds:,.0f} records/s; chained bulk fill of as many: "
                f"{floor:.1f} s = {records / floor:,.0f} records/s; import / fill = {seconds / floor:.1f}x"
            )


if __name__ == "__main__":
    main()
