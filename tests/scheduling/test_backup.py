"""Backups taken while clients write restore and verify with the head they recorded."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlmodel import select

from qms.accounts.service import Actor
from qms.backup import Backup, BackupError, check_backup, restore, take_backup, verify_command
from qms.db import Database
from qms.runtime import Runtime
from qms.scheduling.models import Alert, JobRun
from qms.scheduling.service import ScheduleSpec, add_schedule
from tests.conftest import make_test_settings
from tests.scheduling.conftest import seed_site_with_schedule

pytestmark = pytest.mark.slow


def _writers(url: str, count: int, stop: threading.Event, written: list, errors: list):
    def write(n: int) -> None:
        own = Database(url)
        try:
            while not stop.is_set():
                with own.transaction() as session:
                    add_schedule(
                        session=session,
                        actor=Actor.system(f"writer {n}"),
                        spec=ScheduleSpec(
                            report_type="site-monthly",
                            site_id="SH-01",
                            day=1 + n % 28,
                            at="08:00",
                            recipients=[f"w{n}@example.org"],
                        ),
                        now=datetime.now(UTC),
                    )
                written.append(n)
        except Exception as exc:  # pragma: no cover - shown by the assert
            errors.append(exc)
        finally:
            own.dispose()

    return [threading.Thread(target=write, args=(n,)) for n in range(count)]


def _empty_target(backend: str, tmp_path: Path, empty_databases) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'restored' / 'qms.sqlite3'}"
    return empty_databases.new("postgresql", migrated=False)


def test_a_backup_taken_while_20_clients_write_restores_and_verifies(
    backend, tmp_path, fresh_database_url, empty_databases
):
    database = Database(fresh_database_url)
    seed_site_with_schedule(database)
    stop, written, errors = threading.Event(), [], []
    threads = _writers(fresh_database_url, 20, stop, written, errors)
    try:
        for t in threads:
            t.start()
        while len(written) < 40:
            threading.Event().wait(0.05)
        backup = take_backup(fresh_database_url, tmp_path / "copy")
        during = len(written)
        while len(written) < during + 20:  # the clients went on writing after the copy
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
        database.dispose()
    assert errors == []
    sidecar = json.loads(Path(str(tmp_path / "copy") + ".json").read_text())
    assert sidecar["head_hash"] == backup.head_hash and sidecar["database"] == backend

    target = _empty_target(backend, tmp_path, empty_databases)
    restore(Backup.read(tmp_path / "copy"), target)
    done = verify_command(target, backup.head_hash)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"head: record {backup.head_seq}, hash {backup.head_hash}" in done.stdout
    restored = Database(target)
    try:
        with restored.transaction(write=False) as session:
            count = session.execute(text("SELECT count(*) FROM ledger_entry")).scalar_one()
            assert count == backup.head_seq  # one snapshot: nothing after the head, no gap
    finally:
        restored.dispose()
    # The live database moved on; the head the backup recorded is still in its chain.
    live = verify_command(fresh_database_url, backup.head_hash)
    assert live.returncode == 0 and f"record {backup.head_seq}," not in live.stdout


def test_a_copy_that_was_changed_is_not_restored(tmp_path, fresh_database_url, backend):
    Database(fresh_database_url).dispose()
    backup = take_backup(fresh_database_url, tmp_path / "copy")
    with backup.path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BackupError, match="sha256 differs"):
        check_backup(backup, fresh_database_url)


def test_the_nightly_backup_keeps_n_checked_copies_and_alerts_when_one_does_not_verify(
    tmp_path, fresh_database_url, backend
):
    from qms.backup import nightly_backup

    database = Database(fresh_database_url)
    seed_site_with_schedule(database)
    runtime = Runtime(make_test_settings(tmp_path, fresh_database_url), database=database)
    try:
        for _ in range(3):
            outcome = nightly_backup(runtime, keep=2)
            assert "head" in outcome, outcome
        copies = sorted(p.name for p in (tmp_path / "backups").glob("nightly-*"))
        assert len([c for c in copies if not c.endswith(".json")]) == 2
        # Someone removes the append-only protection: the next copy restores but fails verify.
        with database.transaction() as session:
            if backend == "sqlite":
                session.execute(text("DROP TRIGGER schedule_refuse_update"))
            else:
                session.execute(text("DROP TRIGGER schedule_append_only ON schedule"))
        outcome = nightly_backup(runtime, keep=2)
        assert outcome.startswith("FAILED")
        with database.transaction(write=False) as session:
            alerts = session.exec(select(Alert)).all()
            assert [a.code for a in alerts] == ["backup.unverified"]
            assert "schedule" in json.loads(alerts[0].params)["error"]
            runs = session.exec(select(JobRun).order_by(JobRun.id)).all()
            assert [r.ok for r in runs] == [True, True, True, False]
        # A failure never removes the good copies.
        assert len(list((tmp_path / "backups").glob("nightly-*.json"))) == 3
    finally:
        database.dispose()


def test_qms_backup_writes_the_copy_and_prints_its_head(tmp_path, fresh_database_url):
    import os
    import subprocess
    import sys

    env = dict(os.environ, QMS_DATABASE_URL=fresh_database_url, QMS_INSTANCE_PATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "qms", "backup", str(tmp_path / "b"), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "head: record 0" in done.stdout and "restored and verified: ledger OK" in done.stdout
    again = subprocess.run(
        [sys.executable, "-m", "qms", "backup", str(tmp_path / "b")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    assert make_url(fresh_database_url)  # the live database is untouched by the check
