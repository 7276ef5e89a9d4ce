"""Backups that are known to restore: a consistent copy with the ledger head it holds.

`take_backup` writes a consistent copy of the database: SQLite's online backup API
(one step, so one snapshot, while writers go on in WAL mode), or `pg_dump` in the
custom format on a snapshot exported from a repeatable-read transaction, from which
the head is read too, so the head recorded is exactly the one the copy holds. Beside
the copy, `<copy>.json` records the database kind, the head (seq and hash), the time
and the copy's sha256.

`check_backup` restores a copy into a scratch database and runs `qms verify --expect
<head>` on it (the real command, in a child process). `nightly_backup` (the
scheduler's) takes one into `<instance>/backups`, checks it, records a `JobRun`,
keeps the newest N good ones, and alerts quality officers on any failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url

from qms.core.canonical import GENESIS
from qms.db import is_sqlite, normalise_url

NIGHTLY_PREFIX = "nightly-"


class BackupError(RuntimeError):
    """A backup could not be taken or did not restore and verify (one clear line)."""


@dataclass(frozen=True)
class Backup:
    file: str
    database: str  # sqlite | postgresql
    head_seq: int
    head_hash: str
    taken_at: str  # ISO UTC
    sha256: str

    @property
    def path(self) -> Path:
        return Path(self.file)

    @classmethod
    def read(cls, path: Path) -> Backup:
        sidecar = Path(str(path) + ".json")
        if not sidecar.is_file():
            raise BackupError(f"{path} has no {sidecar.name} beside it (the head it holds)")
        return cls(**json.loads(sidecar.read_text()))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _libpq_url(url: str) -> str:
    return (
        make_url(normalise_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )


def default_path(instance: Path, database_url: str, prefix: str = "qms-") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    suffix = ".sqlite3" if is_sqlite(database_url) else ".dump"
    return instance / "backups" / f"{prefix}{stamp}{suffix}"


def take_backup(database_url: str, path: Path) -> Backup:
    """Write a consistent copy of the database to `path` (and `path.json`)."""
    path = Path(path)
    if path.exists():
        raise BackupError(f"{path} exists already; choose a new file")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    if is_sqlite(database_url):
        seq, head = _sqlite_backup(database_url, partial)
        kind = "sqlite"
    else:
        seq, head = _pg_dump(database_url, partial)
        kind = "postgresql"
    os.replace(partial, path)
    backup = Backup(
        file=str(path),
        database=kind,
        head_seq=seq,
        head_hash=head,
        taken_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sha256=_sha256(path),
    )
    Path(str(path) + ".json").write_text(json.dumps(asdict(backup), indent=2) + "\n")
    return backup


def _head(cursor) -> tuple[int, str]:
    cursor.execute("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
    row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _sqlite_backup(database_url: str, target: Path) -> tuple[int, str]:
    source_file = make_url(database_url).database
    if not source_file or source_file == ":memory:" or not Path(source_file).is_file():
        raise BackupError(f"there is no SQLite database file at {source_file}")
    source = sqlite3.connect(source_file, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # pages=-1: the whole database in one step, one snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
        return _head(copy.cursor())
    finally:
        copy.close()
        source.close()


def pg_dump_version() -> tuple[int, str]:
    """The major version of the pg_dump on PATH and its banner."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        raise BackupError(
            "pg_dump and pg_restore are not on PATH; install the PostgreSQL client "
            "(apt-get install postgresql-client) of the server's version"
        )
    banner = subprocess.run(
        ["pg_dump", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    match = re.search(r"(\d+)(?:\.\d+)?", banner)
    if match is None:
        raise BackupError(f"cannot read pg_dump's version from {banner!r}")
    return int(match.group(1)), banner


def _pg_dump(database_url: str, target: Path) -> tuple[int, str]:
    import psycopg

    client_major, banner = pg_dump_version()
    with psycopg.connect(_libpq_url(database_url)) as connection:
        server = int(connection.execute("SHOW server_version_num").fetchone()[0]) // 10000
        if client_major < server:
            raise BackupError(
                f"{banner} cannot dump a PostgreSQL {server} server; install the client of "
                f"version {server} or newer"
            )
        # The snapshot pg_dump copies is the one the head is read from.
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        seq, head = _head(connection.cursor())
        done = subprocess.run(
            [
                "pg_dump",
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--file={target}",
                f"--dbname={_libpq_url(database_url)}",
            ],
            capture_output=True,
            text=True,
        )
        connection.execute("COMMIT")
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1]}")
    return seq, head


# --- restoring and checking ----------------------------------------------------------


def restore(backup: Backup, target_url: str) -> None:
    """Restore a copy into an empty database (a new SQLite file, an empty PostgreSQL one)."""
    if _sha256(backup.path) != backup.sha256:
        raise BackupError(f"{backup.file} is not the file that was written (sha256 differs)")
    if backup.database == "sqlite":
        target = Path(make_url(target_url).database)
        if target.exists():
            raise BackupError(f"{target} exists already; restore into a new file")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup.path, target)
        return
    pg_dump_version()
    done = subprocess.run(
        [
            "pg_restore",
            "--exit-on-error",
            "--no-owner",
            f"--dbname={_libpq_url(target_url)}",
            str(backup.path),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip().splitlines()[-1]}")


def verify_command(database_url: str, expect: str) -> subprocess.CompletedProcess:
    """`qms verify --expect HEAD` on a database, as an operator would run it (an empty
    ledger's head, the genesis hash, is no record to expect)."""
    env = dict(os.environ, QMS_DATABASE_URL=database_url)
    expecting = ["--expect", expect] if expect != GENESIS else []
    return subprocess.run(
        [sys.executable, "-m", "qms", "verify", *expecting],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )


def check_backup(backup: Backup, database_url: str) -> str:
    """Restore into a scratch database and verify it expects the recorded head.

    Returns the verify command's last line; raises `BackupError` when it fails."""
    if backup.database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="qms-restore-") as scratch:
            url = f"sqlite:///{Path(scratch) / 'restored.sqlite3'}"
            restore(backup, url)
            return _expect_head(backup, url)
    import psycopg

    name = f"qms_restore_{uuid.uuid4().hex[:12]}"
    admin = _libpq_url(database_url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = (
        make_url(normalise_url(database_url))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    try:
        restore(backup, url)
        return _expect_head(backup, url)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _expect_head(backup: Backup, url: str) -> str:
    done = verify_command(url, backup.head_hash)
    lines = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0:
        last = lines[-1] if lines else f"qms verify exited {done.returncode}"
        raise BackupError(last.removeprefix("Error: "))
    if f"record {backup.head_seq}, hash {backup.head_hash}" not in done.stdout:
        raise BackupError(
            f"the restored head is not record {backup.head_seq}, hash {backup.head_hash}"
        )
    return lines[-1]


# --- the nightly job ------------------------------------------------------------------


def nightly_backup(runtime, *, keep: int) -> str:
    """Take, check and record a nightly backup; keep the newest `keep`; alert on failure."""
    from qms.db import utcnow
    from qms.scheduling import alerts
    from qms.scheduling.models import JobRun

    settings = runtime.settings
    folder = settings.instance_path / "backups"
    path = default_path(settings.instance_path, settings.database_url, NIGHTLY_PREFIX)
    backup: Backup | None = None
    try:
        backup = take_backup(settings.database_url, path)
        checked = check_backup(backup, settings.database_url)
        error = None
    except (BackupError, OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
    with runtime.database.transaction() as session:
        session.add(
            JobRun(
                kind="backup",
                at=utcnow(),
                ok=error is None,
                head_seq=backup.head_seq if backup else None,
                head_hash=backup.head_hash if backup else None,
                details=json.dumps({"file": str(path), "error": error}),
            )
        )
        if error is not None:
            code = alerts.BACKUP_FAILED if backup is None else alerts.BACKUP_UNVERIFIED
            alerts.raise_alert(session, code, file=path.name, error=error)
    if error is not None:
        return f"FAILED: {error}"
    removed = prune(folder, keep)
    return f"{path.name}, head {backup.head_hash} ({checked}); removed {len(removed)} old"


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove the oldest nightly copies beyond `keep` (each with its .json)."""
    copies = sorted(
        p for p in folder.glob(f"{NIGHTLY_PREFIX}*") if not p.name.endswith((".json", ".part"))
    )
    removed = copies[:-keep] if len(copies) > keep else []
    for old in removed:
        old.unlink(missing_ok=True)
        Path(str(old) + ".json").unlink(missing_ok=True)
    return removed
