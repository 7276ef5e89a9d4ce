"""The `qms` command as an operator uses it: a fresh database, the first admin, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import select

from qms.accounts.models import Site, User
from qms.cli import COMMAND_MODULES
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


def test_the_installation_seals_its_ledger_with_a_key_outside_the_database(env):
    assert _qms("init-db", env=env).returncode == 0
    assert _qms("demo", env=env).returncode == 0
    key = os.path.join(env["QMS_INSTANCE_PATH"], "ledger_key")
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    checked = _qms("verify", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "seals: every record since record 1 is sealed by this installation's key" in (
        checked.stdout
    )
    # Another installation's key (or a forger's) does not verify these records.
    other = _qms("verify", env=dict(env, QMS_LEDGER_KEY="17" * 32))
    assert other.returncode == 1
    assert "ledger FAILED: record 1 (" in other.stderr
    assert "seal does not match this installation's ledger key" in other.stderr
    bad = _qms("verify", env=dict(env, QMS_LEDGER_KEY="not-hex"))
    assert bad.returncode != 0
    assert "QMS_LEDGER_KEY must be at least 64 hexadecimal digits" in bad.stderr
    assert "Traceback" not in bad.stderr


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
        == "Error: the password must be at least 12 characters long"
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


# --- commands that are not the web app ------------------------------------------------

# Runs `qms ARGS...` as the console script does, then writes the names of the modules it
# loaded to the file named by QMS_TEST_MODULES_REPORT (outside the folder under test).
_REPORTING_QMS = """
import atexit, os, sys
def _report():
    with open(os.environ["QMS_TEST_MODULES_REPORT"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
atexit.register(_report)
sys.argv = ["qms", *sys.argv[1:]]
from qms.cli import main
main()
"""

PURE_COMMANDS = {
    "identify": ["identify", "=G12341765432170"],
    "checklist lint": ["checklist", "lint"],
    "checklist show": ["checklist", "show", "kymriah"],
    "evaluate": ["evaluate", "compliant.jsonl"],
}


def _tree(folder) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize("instance", ["unset", "absent"])
@pytest.mark.parametrize("command", PURE_COMMANDS)
def test_pure_commands_write_nothing_and_load_no_flask(tmp_path, command, instance):
    from tests.checklists.casebook import EXAMPLES_DIR

    folder = tmp_path / "empty"
    folder.mkdir()
    example = (EXAMPLES_DIR / "kymriah" / "compliant.jsonl").read_text(encoding="utf-8")
    (folder / "compliant.jsonl").write_text(example, encoding="utf-8")
    before = _tree(folder)
    report = tmp_path / "modules.txt"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QMS_INSTANCE_PATH", "QMS_DATABASE_URL", "QMS_SECRET_KEY", "QMS_SITE_FILE")
    }
    env["QMS_TEST_MODULES_REPORT"] = str(report)
    absent = tmp_path / "no-such-instance"
    if instance == "absent":
        env["QMS_INSTANCE_PATH"] = str(absent)
    result = subprocess.run(
        [sys.executable, "-c", _REPORTING_QMS, *PURE_COMMANDS[command]],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()  # the command did its work
    assert _tree(folder) == before
    assert not absent.exists()
    loaded = set(report.read_text().split())
    assert "qms.cli" in loaded  # the report comes from the command that ran
    assert not {"flask", "sqlalchemy", "sqlmodel"} & loaded, sorted(
        m for m in loaded if m.split(".")[0] in ("flask", "sqlalchemy", "sqlmodel")
    )


def test_every_command_module_is_listed_with_its_commands():
    from pathlib import Path

    import qms
    from qms.cli import load_commands

    package = Path(qms.__file__).parent
    found = {
        ".".join(("qms", *path.relative_to(package).with_suffix("").parts))
        for path in package.glob("*/cli.py")
    }
    assert set(COMMAND_MODULES) == found
    for module_name, names in COMMAND_MODULES.items():
        assert set(load_commands(module_name)) == set(names), module_name


def test_help_lists_every_command_without_building_the_app(tmp_path):
    env = dict(os.environ, QMS_INSTANCE_PATH=str(tmp_path / "instance"))
    result = _qms("--help", env=env)
    assert result.returncode == 0, result.stderr
    for names in COMMAND_MODULES.values():
        for name in names:
            assert f"  {name} " in result.stdout
    assert not (tmp_path / "instance").exists()


def test_the_web_app_keeps_one_secret_key_in_its_instance_folder(tmp_path):
    from qms.config import Settings
    from qms.web.app import create_app

    instance = tmp_path / "instance"
    settings = Settings.from_env({"QMS_INSTANCE_PATH": str(instance)})
    assert not instance.exists()  # reading the settings writes nothing
    first = create_app(settings.with_(database_url="sqlite://"))
    key = (instance / "secret_key").read_text().strip()
    assert first.config["SECRET_KEY"] == key and len(key) == 64
    second = create_app(settings.with_(database_url="sqlite://"))
    assert second.config["SECRET_KEY"] == key
    assert (instance / "ledger_key").exists()  # the ledger's seal key, beside it
    given = Settings.from_env(
        {
            "QMS_INSTANCE_PATH": str(tmp_path / "x"),
            "QMS_SECRET_KEY": "k",
            "QMS_LEDGER_KEY": "ab" * 32,
        }
    )
    app = create_app(given.with_(database_url="sqlite://"))
    assert app.config["SECRET_KEY"] == "k"
    assert app.extensions["qms_database"].seal_key == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "x").exists()  # both keys given: nothing written


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_records_the_checklists_in_force_and_serves(backend, empty_databases, tmp_path):
    import time
    import urllib.request

    from qms.core.trail import AuditTrailEntry

    url = empty_databases.new(backend)  # migrated, no checklist recorded yet
    env = dict(
        os.environ,
        QMS_DATABASE_URL=url,
        QMS_INSTANCE_PATH=str(tmp_path / "instance"),
        QMS_SECURE_COOKIES="0",
    )
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "qms", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "qms serve did not answer"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    database = Database(url)
    try:
        with database.transaction(write=False) as session:
            entries = session.exec(
                select(AuditTrailEntry).where(AuditTrailEntry.entity == "checklist_version")
            ).all()
    finally:
        database.dispose()
    assert entries and {e.actor_name for e in entries} == {"system (qms serve)"}
    assert "kymriah 2026.1" in {e.entity_id for e in entries}
    assert (tmp_path / "instance" / "secret_key").is_file()  # the web app made its key


def test_serve_refuses_an_older_schema(backend, empty_databases, tmp_path):
    from alembic import command

    from qms.db import alembic_config

    url = empty_databases.new(backend, migrated=False)
    command.upgrade(alembic_config(url), "0002")
    env = dict(os.environ, QMS_DATABASE_URL=url, QMS_INSTANCE_PATH=str(tmp_path / "instance"))
    result = _qms("serve", "--port", str(_free_port()), env=env)
    assert result.returncode != 0
    assert "the database schema is at 0002" in result.stderr and "qms init-db" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broken_site_file_is_one_clear_error(env, tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text("nonsense: [\n", encoding="utf-8")
    result = _qms("init-db", env=dict(env, QMS_SITE_FILE=str(site_file)))
    assert result.returncode != 0
    assert f"{site_file}:2: not valid YAML" in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: the checklists in force have 1 problem(s)")
    )
    assert "Traceback" not in result.stderr
