"""The `qms` command as an operator uses it: a fresh database, the first admin, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import select

from qms.accounts.models import Site, User
from qms.db import Database


def _qms(*args: str, env: dict, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qms", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path, backend, empty_databases):
    url = empty_databases.new(backend, migrated=False)
    return dict(os.environ, QMS_DATABASE_URL=url, QMS_INSTANCE_PATH=str(tmp_path / "instance"))


def test_init_db_twice_then_first_admin_then_demo(env):
    first = _qms("init-db", env=env)
    assert first.returncode == 0, first.stderr
    assert "database ready at revision" in first.stdout
    again = _qms("init-db", env=env)
    assert again.returncode == 0 and again.stdout.split(" (")[0] == first.stdout.split(" (")[0]

    created = _qms(
        "user",
        "create",
        "--username",
        "sun.hao",
        "--full-name",
        "Sun Hao",
        "--role",
        "admin",
        "--site",
        "SH-09",
        "--site-name",
        "Test hospital",
        "--password",
        "first-admin-pass",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    database = Database(env["QMS_DATABASE_URL"])
    try:
        with database.transaction(write=False) as session:
            admin = session.exec(select(User).where(User.username == "sun.hao")).one()
            assert admin.role == "admin" and session.get(Site, "SH-09").name == "Test hospital"
    finally:
        database.dispose()

    # demo refuses to mix demonstration users into a database that has users.
    demo = _qms("demo", env=env)
    assert demo.returncode == 0 and "not loaded" in demo.stdout


def test_errors_are_one_clear_line_and_non_zero(env):
    assert _qms("init-db", env=env).returncode == 0
    weak = _qms(
        "user",
        "create",
        "--username",
        "a.b",
        "--full-name",
        "A B",
        "--role",
        "admin",
        "--site",
        "SH-09",
        "--site-name",
        "X",
        "--password",
        "short",
        env=env,
    )
    assert weak.returncode != 0
    assert (
        weak.stderr.strip().splitlines()[-1]
        == "Error: the password must be at least 10 characters long"
    )
    no_site = _qms(
        "user",
        "create",
        "--username",
        "a.b",
        "--full-name",
        "A B",
        "--role",
        "admin",
        "--site",
        "NOPE",
        "--password",
        "long-enough-pass",
        env=env,
    )
    assert no_site.returncode != 0 and "site NOPE does not exist" in no_site.stderr
    assert "Traceback" not in weak.stderr + no_site.stderr


def test_unreachable_database_is_a_clear_error(tmp_path):
    env = dict(
        os.environ,
        QMS_DATABASE_URL="postgresql://postgres@127.0.0.1:1/qms",
        QMS_INSTANCE_PATH=str(tmp_path),
    )
    result = _qms("init-db", env=env)
    assert result.returncode != 0
    assert "cannot reach the database" in result.stderr and "Traceback" not in result.stderr


def test_bad_timezone_setting_is_a_clear_error(tmp_path):
    env = dict(os.environ, QMS_TIMEZONE="Mars/Olympus", QMS_INSTANCE_PATH=str(tmp_path))
    result = _qms("init-db", env=env)
    assert result.returncode != 0
    assert "QMS_TIMEZONE" in result.stderr and "Traceback" not in result.stderr


def test_flask_app_option_reaches_the_same_commands(env):
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "qms", "init-db"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database ready" in result.stdout


@pytest.mark.parametrize("command", [["verify"], ["export"], ["demo"], ["serve", "--port", "1"]])
def test_commands_on_a_database_never_initialised_say_to_run_init_db(env, command):
    result = _qms(*command, env=env)
    assert result.returncode != 0
    assert "qms init-db" in result.stderr and "Traceback" not in result.stderr
