"""Test fixtures: every database test runs on SQLite and on PostgreSQL.

QMS_TEST_DATABASES chooses the backends (default "sqlite,postgresql"). Without a
reachable PostgreSQL the run stops with a message, unless QMS_TEST_DATABASES=sqlite
was set on purpose. Each test runs inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher
from sqlalchemy import make_url

from qms.accounts import passwords
from qms.config import Settings
from qms.db import Database, make_engine, migrate

ALL_BACKENDS = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "QMS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_POSTGRES_HINT = (
    "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "(or point QMS_TEST_POSTGRES_URL at a server), or run only SQLite with QMS_TEST_DATABASES=sqlite"
)


def _backends() -> tuple[str, ...]:
    raw = os.environ.get("QMS_TEST_DATABASES", ",".join(ALL_BACKENDS))
    chosen = tuple(b.strip() for b in raw.split(",") if b.strip())
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown or not chosen:
        raise pytest.UsageError(
            f"QMS_TEST_DATABASES={raw!r}: choose from {', '.join(ALL_BACKENDS)}"
        )
    return chosen


BACKENDS = _backends()


def _psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_configure(config: pytest.Config) -> None:
    if "postgresql" in BACKENDS:
        try:
            with psycopg.connect(_psycopg_url(POSTGRES_ADMIN_URL), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            pytest.exit(
                f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({str(exc).strip()}); {START_POSTGRES_HINT}",
                returncode=3,
            )


def pytest_report_header(config: pytest.Config) -> str:
    return f"databases: {', '.join(BACKENDS)}"


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    # Argon2id at production cost makes every user fixture slow; behaviour is the same.
    previous = passwords.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    passwords.use_hasher(previous)


_FILE_COPY: list[str] = []  # how CREATE DATABASE copies a template on this server


class EmptyDatabases:
    """Makes brand-new databases of a backend and drops them at the end of the run."""

    def __init__(self, tmp_dir: Path):
        self.tmp_dir = tmp_dir
        self._postgres: list[str] = []

    def new(self, backend: str, *, migrated: bool = True) -> str:
        name = f"qms_test_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            url = f"sqlite:///{self.tmp_dir / (name + '.sqlite3')}"
        else:
            with psycopg.connect(_psycopg_url(POSTGRES_ADMIN_URL), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._postgres.append(name)
            url = (
                make_url(POSTGRES_ADMIN_URL)
                .set(drivername="postgresql+psycopg", database=name)
                .render_as_string(hide_password=False)
            )
        if migrated:
            migrate(url)
        return url

    def copy_of(self, backend: str, url: str) -> str:
        """A new database holding what the database at `url` holds (no one may be connected
        to it): SQLite through its backup API, PostgreSQL as a template."""
        name = f"qms_test_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            target = self.tmp_dir / (name + ".sqlite3")
            source = sqlite3.connect(make_url(url).database)
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
            return f"sqlite:///{target}"
        template = make_url(url).database
        with psycopg.connect(_psycopg_url(POSTGRES_ADMIN_URL), autocommit=True) as conn:
            if not _FILE_COPY:
                _FILE_COPY.append(
                    " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
                )
            for attempt in range(50):  # a closed client's server process may linger a moment
                try:
                    # FILE_COPY: a file copy, not the whole database through the WAL (the
                    # default since PostgreSQL 15): a third of the time for the demo data.
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{_FILE_COPY[0]}')
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        self._postgres.append(name)
        return make_url(url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop this run's PostgreSQL databases, a few at once (each drop waits on the
        server's files and its sessions' ends: one by one, the last test of a worker took
        their sum as its teardown)."""
        if not self._postgres:
            return

        def drop(names: list[str]) -> None:
            with psycopg.connect(_psycopg_url(POSTGRES_ADMIN_URL), autocommit=True) as conn:
                for name in names:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        lanes = 4
        with ThreadPoolExecutor(lanes) as pool:
            for done in [pool.submit(drop, self._postgres[i::lanes]) for i in range(lanes)]:
                done.result()


@pytest.fixture(scope="session")
def empty_databases(tmp_path_factory) -> Iterator[EmptyDatabases]:
    databases = EmptyDatabases(tmp_path_factory.mktemp("databases"))
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def _shared_engines(empty_databases) -> Iterator[dict]:
    """One migrated database per backend for the whole run, made on first use."""
    engines: dict = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def only_on(*names: str):
    """Run a test on some backends alone (a behaviour one database has and the other lacks)."""
    return pytest.mark.parametrize("backend", [b for b in BACKENDS if b in names])


@pytest.fixture
def engine(backend, _shared_engines, empty_databases):
    if backend not in _shared_engines:
        _shared_engines[backend] = make_engine(empty_databases.new(backend))
    return _shared_engines[backend]


@pytest.fixture
def connection(engine):
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def database(connection) -> Database:
    return Database.bound_to(connection)


@pytest.fixture
def session(database):
    s = database.session()
    yield s
    s.close()


@pytest.fixture
def fresh_database_url(backend, empty_databases) -> str:
    """A migrated database of its own, for tests that must really commit (concurrency)."""
    return empty_databases.new(backend)


def make_test_settings(tmp_path: Path, database_url: str = "sqlite://", **changes) -> Settings:
    settings = Settings(
        instance_path=tmp_path,
        database_url=database_url,
        secret_key="test-secret-key",
        secure_cookies=False,
        testing=True,
    )
    return settings.with_(**changes) if changes else settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_test_settings(tmp_path)


@pytest.fixture
def app(settings, database):
    from qms.web.app import create_app

    return create_app(settings, database=database)


@pytest.fixture
def client(app):
    return app.test_client()


# --- factories ---------------------------------------------------------------------


@pytest.fixture
def make_site(session) -> Callable:
    from qms.accounts import service
    from qms.accounts.models import Site

    def make(site_id: str = "SH-01", name: str = "Test Hospital, Shanghai") -> Site:
        site = session.get(Site, site_id)
        if site is None:
            site = service.create_site(session=session, site_id=site_id, name=name)
            session.flush()
        return site

    return make


DEFAULT_PASSWORD = "correct-horse-battery"


@pytest.fixture
def make_user(session, make_site) -> Callable:
    from qms.accounts import service

    counter = iter(range(1, 10_000))

    def make(
        role: str = "nurse",
        *,
        username: str | None = None,
        sites=("SH-01",),
        password: str = DEFAULT_PASSWORD,
        full_name=None,
    ):
        for site_id in sites:
            make_site(site_id)
        username = username or f"{role.replace('_', '')}{next(counter)}"
        user = service.create_user(
            session=session,
            actor=service.Actor.system("test"),
            username=username,
            full_name=full_name or f"Test {username.title()}",
            role=role,
            password=password,
            site_ids=list(sites),
        )
        session.flush()
        return user

    return make


@pytest.fixture
def login(client, session) -> Callable:
    """Sign a user in through the real login form."""

    def do(user, password: str = DEFAULT_PASSWORD):
        session.commit()
        page = client.get("/login")
        token = _csrf_from(page.get_data(as_text=True))
        return client.post(
            "/login", data={"username": user.username, "password": password, "csrf_token": token}
        )

    return do


def _csrf_from(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


@pytest.fixture
def csrf_from() -> Callable[[str], str]:
    return _csrf_from
