"""Benchmark of what the scheduler watches: the logger-gap check and reminders.

    .venv/bin/python bench/watch.py [--days 7] [--backends sqlite,postgresql]

On a fresh migrated database of each backend with 10 loggers reading once a minute for
`--days` days (each with one 45-minute silence), times `flag_logger_gaps` (the first
pass raises the 10 gaps; the second, as every later watch, finds nothing new) and an idle
`remind_due_items`, next to the floor measured in the same run on the same database:
one plain SELECT of the same readings' times. The scheduler runs both every watch
interval (15 minutes unless `--watch-minutes` says otherwise).
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
from sqlalchemy import text  # noqa: E402

from qms.accounts.service import Actor  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.scheduling.reminders import GAP_LOOKBACK, flag_logger_gaps, remind_due_items  # noqa: E402
from qms.storage.loggers import import_log  # noqa: E402


def run(backend: str, days: int, tmp: Path) -> None:
    url, drop = new_database(backend, tmp)
    try:
        migrate(url)
        database = Database(url, seal_key=SEAL)
        setup_people(database)
        now = datetime(2026, 11, 20, tzinfo=UTC)
        start = now - timedelta(days=days)
        minutes = days * 24 * 60
        for n in range(10):
            silent = range(600 + 60 * n, 645 + 60 * n)  # one 45-minute silence each
            readings = [
                (start + timedelta(minutes=i), -180.0) for i in range(minutes) if i not in silent
            ]
            with database.transaction() as s:
                import_log(session=s, actor=Actor.system("bench"), equipment_id=f"LN2-{n:02d}",
                           readings=readings, now=now)  # fmt: skip
        rows = 10 * (minutes - 45)
        t0 = time.perf_counter()
        first = flag_logger_gaps(database, now)
        t1 = time.perf_counter()
        second = flag_logger_gaps(database, now)
        t2 = time.perf_counter()
        remind_due_items(database, now)
        t3 = time.perf_counter()
        with database.engine.connect() as conn:
            floor_start = time.perf_counter()
            conn.execute(
                text("SELECT equipment_id, at FROM reading WHERE source = 'logger' AND at >= :s"),
                {"s": now - GAP_LOOKBACK},
            ).fetchall()
            floor = time.perf_counter() - floor_start
        assert len(first) == 10 and second == [], (first, second)
        print(
            f"{backend}: {rows} logger readings over {days} days; "
            f"gap check first pass {t1 - t0:.3f}s (10 gaps raised), "
            f"next pass {t2 - t1:.3f}s (nothing new), idle reminders {t3 - t2:.3f}s; "
            f"floor (one SELECT of the readings' times) {floor:.3f}s; "
            f"next pass / floor = {(t2 - t1) / floor:.1f}x"
        )
        database.dispose()
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            run(backend, args.days, Path(tmp))


if __name__ == "__main__":
    main()
