"""Database engines, sessions, the metadata naming convention and the UTC time type.

SQLite is the embedded default, PostgreSQL the shared one; both run the same code and
the same migrations. Writes on SQLite take the database lock at BEGIN (BEGIN
IMMEDIATE) so that a read-then-append, like the ledger's, cannot fail half-way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import DateTime, Engine, MetaData, event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

from qms.paths import MIGRATIONS_DIR

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Set before any table is declared: every model module imports this one.
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

SQLITE_BUSY_TIMEOUT_MS = 30_000
# session.info: the key the ledger seals entries with (see Database.seal_key).
SEAL_KEY = "qms_seal_key"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored as UTC on every backend.

    Naive datetimes are refused: a time without an offset is ambiguous in a record.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: record times must carry an offset")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept postgresql:// URLs and use the psycopg 3 driver for them."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, issue BEGIN, so savepoints and BEGIN IMMEDIATE work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # The writers of this process queue here before BEGIN IMMEDIATE: SQLite's busy handler
    # polls, sleeping up to 100 ms between tries, so writers of one web server that meet
    # at the database lock would wait in those sleeps long after it is free (a p99 of
    # seconds at 10 clients); a lock wakes the next one at once. Other processes still
    # meet at SQLite's lock and its busy timeout. Held from the first write BEGIN until
    # the connection goes back to the pool (after its commit or rollback).
    writers = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        if conn.get_execution_options().get("qms_write"):
            record = conn.connection._connection_record
            if record is not None and not record.info.get(_WRITER):
                record.info[_WRITER] = writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        if record is not None and record.info.pop(_WRITER, False):
            writers.release()

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_connection, record, _exception):
        if record is not None and record.info.pop(_WRITER, False):
            writers.release()


_WRITER = "qms_sqlite_writer"  # a pool record's info: this connection holds `writers`


class Database:
    """The application's handle on one database: makes sessions.

    `Database.bound_to(connection)` serves tests: every session joins the test's
    outer transaction through a savepoint, so a commit in a view stays rollback-able.
    """

    def __init__(
        self,
        url: str,
        *,
        engine: Engine | None = None,
        connection: Connection | None = None,
        seal_key: bytes | None = None,
    ):
        self.url = normalise_url(url)
        # The ledger seals each entry with this key (qms.core.ledger); None writes unsealed
        # entries (tests that do not concern sealing).
        self.seal_key = seal_key
        self.engine = (
            engine
            if engine is not None
            else (None if connection is not None else make_engine(self.url))
        )
        self._connection = connection

    @classmethod
    def bound_to(cls, connection: Connection, *, seal_key: bytes | None = None) -> Database:
        return cls(
            connection.engine.url.render_as_string(hide_password=False),
            connection=connection,
            seal_key=seal_key,
        )

    @property
    def bound(self) -> bool:
        """Whether every session shares one outer connection (tests): then work that opens
        a connection of its own would not see that connection's uncommitted writes."""
        return self._connection is not None

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    def session(self, *, write: bool = False) -> Session:
        if self._connection is not None:
            session = Session(
                bind=self._connection,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        else:
            bind = self.engine.execution_options(qms_write=True) if write else self.engine
            session = Session(bind=bind, expire_on_commit=False)
        if self.seal_key is not None:
            session.info[SEAL_KEY] = self.seal_key
        return session

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session that commits when the block ends normally and rolls back otherwise."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def alembic_config(url: str, connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(
    url: str, *, connection: Connection | None = None, seal_key: bytes | None = None
) -> None:
    """Bring the schema to the newest migration; safe to run again. A migration that
    chains existing rows (0011, equipment) seals them with `seal_key`, as the app would."""
    config = alembic_config(url, connection)
    config.attributes[SEAL_KEY] = seal_key
    command.upgrade(config, "head")


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
