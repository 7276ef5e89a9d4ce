"""Which scheduler process leads: one leader, the others stand by and take over.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own
(never a pooled one, so no other work can release it); when the leader dies its
connection closes and the server releases the lock, and the next standby to ask gets
it. TCP keepalives on that connection bound how long a leader cut off by the network
goes unnoticed. On SQLite (one machine) the leader holds an exclusive `flock` on
`<instance>/scheduler.lock`, which the kernel releases when the process dies, even by
`kill -9`.

Standbys ask every `poll_seconds`; the leader checks it still holds the lock as often,
and stops leading (its process exits) the moment it does not, so two never work at once
for longer than one poll.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from qms.db import is_sqlite, normalise_url

# pg_advisory_lock key of the scheduler's leadership (ledger appends use 7_347_002).
SCHEDULER_LOCK_KEY = 7_347_003


class Leadership:
    """Try to become the leader (`try_acquire`), wait for it (`acquire`), check it (`held`)."""

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def held(self) -> bool:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def acquire(
        self,
        poll_seconds: float,
        *,
        on_wait: Callable[[], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Block until this process leads (True) or `should_stop()` says so (False)."""
        waited = False
        while not should_stop():
            if self.try_acquire():
                return True
            if not waited and on_wait is not None:
                on_wait()
            waited = True
            time.sleep(poll_seconds)
        return False


class PostgresLeadership(Leadership):
    def __init__(self, url: str, key: int = SCHEDULER_LOCK_KEY):
        self.key = key
        self._engine = create_engine(
            normalise_url(url),
            poolclass=NullPool,
            connect_args={
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "application_name": "qms scheduler",
            },
        )
        self._connection = None

    def try_acquire(self) -> bool:
        if self._connection is None:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        got = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar_one()
        return bool(got)

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            count = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND objid = :key AND granted"
                ),
                {"key": self.key},
            ).scalar_one()
        except Exception:
            return False  # the connection is gone, and with it the lock
        return count > 0

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                self._connection.close()
            except Exception:
                pass
            self._connection = None
        self._engine.dispose()


class FileLeadership(Leadership):
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        # A flock is released only by its holder or its death; the file must still be ours.
        if self._fd is None:
            return False
        try:
            return os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leadership_for(database_url: str, instance_path: Path) -> Leadership:
    if is_sqlite(database_url):
        return FileLeadership(instance_path / "scheduler.lock")
    if make_url(normalise_url(database_url)).get_backend_name() == "postgresql":
        return PostgresLeadership(database_url)
    raise ValueError(f"no leader election for {make_url(database_url).get_backend_name()}")
