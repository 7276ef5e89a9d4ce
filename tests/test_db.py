"""SQLite writers of one process queue on a lock before BEGIN IMMEDIATE (qms.db)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from qms.db import Database


@pytest.fixture
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'writers.sqlite3'}")
    with db.transaction() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    yield db
    db.dispose()


def test_a_writer_waits_for_the_one_before_and_goes_as_soon_as_it_commits(database):
    first = database.session(write=True)
    first.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock from here
    went: list[float] = []

    def second():
        with database.transaction() as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            went.append(time.monotonic())

    other = threading.Thread(target=second)
    other.start()
    time.sleep(0.3)
    assert not went  # still waiting for the first writer
    released = time.monotonic()
    first.commit()
    first.close()
    other.join(timeout=10)
    assert went and went[0] - released < 0.1  # woken at once, not at a busy handler's next try
    with database.transaction(write=False) as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 2


def test_a_writer_that_fails_or_rolls_back_lets_the_next_one_write(database):
    with pytest.raises(RuntimeError):
        with database.transaction() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("refused")
    failed = database.session(write=True)
    with pytest.raises(Exception, match="no such table"):
        failed.execute(text("INSERT INTO missing VALUES (1)"))
    failed.rollback()
    failed.close()
    done = threading.Event()

    def writer():
        with database.transaction() as s:
            s.execute(text("INSERT INTO t VALUES (3)"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(timeout=5)
