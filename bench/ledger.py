"""Ledger benchmark: `qms verify` throughput and append latency under concurrent writers.

    .venv/bin/python bench/ledger.py [--records 300000] [--writers 8] [--appends 50]
                                     [--databases sqlite,postgresql]

For each database: fill a fresh one with a synthetic chain (units, step records,
signatures, readings in realistic proportions, written with the ledger's own
declarations), time `ledger.verify` (chain only, then chain + typed rows), then let several
writers (threads, each with its own connection) append readings through the real
service and report the latency of each committed append (p50/p95) and the total rate.
PostgreSQL is reached through QMS_BENCH_POSTGRES_URL (default: the test server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qms.accounts import service as accounts  # noqa: E402
from qms.core import ledger  # noqa: E402
from qms.core.canonical import canonical_json, chain_hash  # noqa: E402
from qms.core.models import LedgerEntry  # noqa: E402
from qms.core.verify import VerifyReport, verify  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.records.models import SIGNATURE, STEP_RECORD, UNIT, Signature, StepRecord, Unit  # noqa: E402
from qms.storage import service as storage  # noqa: E402
from qms.storage.models import READING, Reading  # noqa: E402

POSTGRES_URL = os.environ.get(
    "QMS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEAL = bytes.fromhex("5e" * 32)  # the installation's ledger key: entries are sealed, as in use
STEPS = ("receipt", "identity_check", "thaw_end", "infusion_end")


def new_database(backend: str, tmp: Path) -> tuple[str, callable]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return url, lambda: None
    name = f"qms_bench_{uuid.uuid4().hex[:10]}"
    admin = (
        make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    url = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False), drop


def setup_people(database: Database) -> dict[str, int]:
    with database.transaction() as s:
        accounts.create_site(session=s, site_id="SH-01", name="Bench hospital")
        s.flush()
        system = accounts.Actor.system("bench")
        ids = {}
        for username in ("li.na", "wang.wei"):
            user = accounts.create_user(
                session=s,
                actor=system,
                username=username,
                full_name=username.title(),
                role="nurse",
                password="bench-password-2026",
                site_ids=["SH-01"],
            )
            s.flush()
            ids[username] = user.id
        for n in range(10):
            storage.register_equipment(
                session=s,
                actor=system,
                equipment_id=f"LN2-{n:02d}",
                kind="ln2_vapour",
                site_id="SH-01",
            )
    return ids


def fill(database: Database, people: dict[str, int], records: int) -> int:
    """Write `records` chained entries with their typed rows, in bulk, like the services would."""
    with database.transaction(write=False) as s:  # after what setup chained (the devices)
        seq, previous = ledger.head(s)
    batch: dict[str, list[dict]] = {
        "ledger": [],
        "unit": [],
        "step": [],
        "signature": [],
        "reading": [],
    }
    tables = {
        "ledger": LedgerEntry.__table__,
        "unit": Unit.__table__,
        "step": StepRecord.__table__,
        "signature": Signature.__table__,
        "reading": Reading.__table__,
    }

    def chain(kind: str, ref: str, content: dict) -> int:
        nonlocal previous, seq
        body = canonical_json(content)
        seq += 1
        digest = chain_hash(previous, body)
        batch["ledger"].append(
            {
                "seq": seq,
                "kind": kind,
                "ref": ref,
                "content": body,
                "prev_hash": previous,
                "hash": digest,
                "seal": ledger.seal_of(SEAL, digest),
            }
        )
        previous = digest
        return seq

    def flush() -> None:
        with database.transaction() as s:
            for key in ("ledger", "unit", "step", "signature", "reading"):
                if batch[key]:
                    s.execute(insert(tables[key]), batch[key])
                    batch[key] = []

    names = {user_id: name for name, user_id in people.items()}

    def add(key: str, declaration, row: dict) -> None:
        """Chain a typed row with the content its declaration derives, as ledger.write does."""
        content = declaration.content(row, names.__getitem__)
        row["ledger_seq"] = chain(content["type"], str(content["id"]), content)
        batch[key].append(row)

    unit_no = 0
    reading_no = 0
    while seq < records:
        unit_no += 1
        unit_id = f"U-{unit_no}"
        at = T0 + timedelta(minutes=unit_no)
        patient = f"P-{unit_no:06d}"
        add(
            "unit",
            UNIT,
            {
                "id": unit_id,
                "site_id": "SH-01",
                "checklist_id": "testcart",
                "checklist_version": "1.0",
                "profile": None,
                "coi_id": f"COI{unit_no:010d}",
                "patient_ref": patient,
                "attributes": canonical_json({"age_years": 30 + unit_no % 40}),
                "registered_at": at,
                "registered_by_id": people["li.na"],
                "imported_at": None,
                "imported_by": None,
            },
        )
        for n, step in enumerate(STEPS, start=1):
            record_id = f"{unit_id}#{n}"
            performed = at + timedelta(minutes=5 * n)
            fields = (
                {"temperature_c": 20.5 + n}
                if step != "identity_check"
                else {"product_patient_id": patient, "wristband_patient_id": patient}
            )
            witness = "wang.wei" if step == "identity_check" else None
            add(
                "step",
                STEP_RECORD,
                {
                    "id": record_id,
                    "unit_id": unit_id,
                    "step": step,
                    "fields": canonical_json(fields),
                    "performed_at": performed,
                    "recorded_at": performed + timedelta(seconds=30),
                    "performed_by_id": people["li.na"],
                    "performed_by_role": "nurse",
                    "witness_id": people["wang.wei"] if witness else None,
                    "witness_role": "nurse" if witness else None,
                    "recorded_by_id": people["li.na"],
                    "meaning": "performed",
                    "checklist_id": "testcart",
                    "checklist_version": "1.0",
                    "corrects_id": None,
                    "reason": None,
                    "findings": "[]",
                    "imported_at": None,
                    "imported_by": None,
                },
            )
            add(
                "signature",
                SIGNATURE,
                {
                    "id": f"{record_id}/1",
                    "record_id": record_id,
                    "signer_id": people["li.na"],
                    "printed_name": "Li.Na",
                    "meaning": "performed",
                    "signed_at": performed + timedelta(seconds=30),
                    "method": "session",
                    "imported_at": None,
                    "imported_by": None,
                },
            )
        for _ in range(6):  # storage readings outnumber step records
            reading_no += 1
            measured = T0 + timedelta(seconds=reading_no)
            add(
                "reading",
                READING,
                {
                    "equipment_id": f"LN2-{reading_no % 10:02d}",
                    "at": measured,
                    "temperature_c": -150 - (reading_no % 7) * 0.5,
                    "recorded_at": measured,
                    "recorded_by": "logger",
                    "source": "logger",
                    "imported_at": None,
                    "imported_by": None,
                },
            )
        if len(batch["ledger"]) >= 20_000:
            flush()
    flush()
    return seq


def time_verify(database: Database, *, check_rows: bool) -> tuple[float, VerifyReport]:
    started = time.perf_counter()
    with database.transaction(write=False) as s:
        # As `qms verify` runs it: typed rows in parallel, seals checked.
        report = verify(s, check_rows=check_rows, parallel=True, seal_key=SEAL)
    return time.perf_counter() - started, report


def appends(url: str, writers: int, per_writer: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        database = Database(url, seal_key=SEAL)
        mine = []
        try:
            barrier.wait()
            for n in range(per_writer):
                started = time.perf_counter()
                with database.transaction() as s:
                    storage.record_reading(
                        session=s,
                        actor=accounts.Actor.system(f"bench writer {index}"),
                        equipment_id=f"LN2-{index % 10:02d}",
                        at=T0 + timedelta(days=30, seconds=index * 100_000 + n),
                        temperature_c=-150.0,
                        source="logger",
                    )
                mine.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.dispose()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return latencies, elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=50, help="appends per writer")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.databases.split(","):
            url, drop = new_database(backend, Path(tmp))
            try:
                migrate(url)
                database = Database(url)
                people = setup_people(database)
                started = time.perf_counter()
                written = fill(database, people, args.records)
                print(
                    f"[{backend}] filled {written} ledger records in {time.perf_counter() - started:.1f}s"
                )
                for check_rows in (False, True):
                    time_verify(database, check_rows=check_rows)  # warm the cache
                    elapsed, report = time_verify(database, check_rows=check_rows)
                    assert report.ok, report.problems[:3]
                    what = "chain + typed rows" if check_rows else "chain only        "
                    print(
                        f"[{backend}] qms verify, {what}: {report.records} records in {elapsed:.2f}s "
                        f"= {report.records / elapsed:,.0f} records/s"
                    )
                latencies, elapsed = appends(url, args.writers, args.appends)
                total = len(latencies)
                print(
                    f"[{backend}] appends: {args.writers} concurrent writers x {args.appends}: "
                    f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p95 {percentile(latencies, 0.95) * 1000:.1f} ms, "
                    f"mean {statistics.mean(latencies) * 1000:.1f} ms, {total / elapsed:,.0f} appends/s overall"
                )
                _, report = time_verify(database, check_rows=True)
                assert report.ok and report.records == written + total, (
                    "chain broken by the writers"
                )
                print(
                    f"[{backend}] after the writers: {report.records} records, chain OK, head {report.head_hash[:16]}…"
                )
                database.dispose()
            finally:
                drop()


if __name__ == "__main__":
    main()
