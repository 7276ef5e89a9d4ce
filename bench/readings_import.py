"""Benchmark of a data-logger CSV import: 500,000 rows (one logger, about a year at one a minute).

    .venv/bin/python bench/readings_import.py [--rows 500000] [--backends sqlite,postgresql]

Times, on a fresh migrated database of each backend: parsing the CSV (`parse_log`), then
storing and chaining every reading (`import_log`, one ledger batch), and, in the same run
on the same database, the floor: one multi-row INSERT of the same (time, temperature)
pairs into a bare table with no ledger. The target is ≤ 30 s for parse + import.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger import SEAL, new_database, setup_people  # noqa: E402
from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, insert  # noqa: E402

from qms.accounts.service import Actor  # noqa: E402
from qms.core.verify import verify  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.storage.loggers import import_log, parse_log  # noqa: E402


def csv_text(rows: int) -> str:
    start = datetime(2025, 12, 1, tzinfo=UTC)
    lines = ["time,temperature_c"]
    for i in range(rows):
        at = start + timedelta(minutes=i)
        lines.append(f"{at:%Y-%m-%d %H:%M},{-160 + (i % 17) * 0.25:.2f}")
    return "\n".join(lines)


def run(backend: str, rows: int, tmp: Path) -> None:
    url, drop = new_database(backend, tmp)
    try:
        migrate(url)
        database = Database(url, seal_key=SEAL)  # entries are sealed, as in use
        setup_people(database)
        text = csv_text(rows)
        started = time.perf_counter()
        parsed = parse_log(text, unit="C", zone="UTC")
        parsed_at = time.perf_counter()
        assert not parsed.problems, parsed.problems[:3]
        with database.transaction() as s:
            count = import_log(
                session=s,
                actor=Actor.system("bench"),
                equipment_id="LN2-00",
                readings=parsed.readings,
                now=datetime.now(UTC),
            )
        done = time.perf_counter()
        # The floor: the same pairs inserted into a bare table, one multi-row INSERT.
        bare = Table(
            "bench_bare_reading",
            MetaData(),
            Column("id", Integer, primary_key=True),
            Column("equipment_id", String(64)),
            Column("at", DateTime(timezone=True)),
            Column("temperature_c", Float),
        )
        bare.create(database.engine)
        floor_start = time.perf_counter()
        with database.engine.begin() as conn:
            conn.execute(
                insert(bare),
                [
                    {"equipment_id": "LN2-00", "at": a, "temperature_c": t}
                    for a, t in parsed.readings
                ],
            )
        floor = time.perf_counter() - floor_start
        with database.transaction() as s:
            ok = verify(s, seal_key=SEAL).ok
        print(
            f"{backend:10} {count:>7} rows: parse {parsed_at - started:5.1f} s + import "
            f"{done - parsed_at:5.1f} s = {done - started:5.1f} s (target ≤ 30 s); "
            f"floor (bare multi-row INSERT, no ledger) {floor:5.1f} s; verify {'ok' if ok else 'FAILED'}"
        )
        database.engine.dispose()
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            run(backend, args.rows, Path(tmp))


if __name__ == "__main__":
    main()
