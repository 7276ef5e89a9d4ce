"""`qms report` as an operator runs it, and kill -9 at every point of a generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CRASH_POINTS = (
    "after-render",
    "mid-write",
    "after-fsync",
    "after-link",
    "after-row",
    "before-commit",
)


def _qms(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qms", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def installed(tmp_path, fresh_database_url):
    """A committed database with the demonstration data and demonstration keys."""
    env = dict(
        os.environ,
        QMS_DATABASE_URL=fresh_database_url,
        QMS_INSTANCE_PATH=str(tmp_path / "instance"),
    )
    env.pop("QMS_REPORT_CRASH_AT", None)
    for args in (("demo",), ("keys", "demo")):
        done = _qms(*args, env=env)
        assert done.returncode == 0, done.stderr
    return env


def _listed(env) -> list[tuple[str, bool]]:
    """(path, current) of every registered version (`qms demo` registers its October
    report: a test compares with what was there before it)."""
    done = _qms("report", "list", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return [(r["path"], r["current"]) for r in json.loads(done.stdout)]


def _report_files(env) -> list[Path]:
    folder = Path(env["QMS_INSTANCE_PATH"]) / "reports"
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


def test_generate_list_verify_and_a_flipped_byte(installed):
    env = installed
    before = _listed(env)
    done = _qms("report", "generate", "--type", "unit-dossier", "--unit", "K-2026-001", env=env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".pdf"
    assert [r for r in _listed(env) if r not in before] == [(str(path), True)]
    ok = _qms("report", "verify", str(path), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "current version" in ok.stdout
    flipped = bytearray(path.read_bytes())
    flipped[len(flipped) // 3] ^= 0x20
    bad_path = path.with_name("flipped.pdf")
    bad_path.write_bytes(bytes(flipped))
    bad = _qms("report", "verify", str(bad_path), env=env)
    assert bad.returncode != 0
    assert "FAIL registry" in bad.stdout


def test_site_monthly_from_the_command_line_audits_the_month(installed):
    from datetime import UTC, datetime

    month = datetime.now(UTC).strftime("%Y-%m")
    done = _qms(
        "report", "generate", "--type", "site-monthly", "--site", "SH-01", "--period", month,
        "--lang", "zh", env=installed,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "audit run AUD-SH01-" in done.stdout
    path = done.stdout.strip().splitlines()[-1]
    assert _qms("report", "verify", path, env=installed).returncode == 0


def test_an_unknown_report_type_is_one_line_and_non_zero(installed):
    done = _qms("report", "generate", "--type", "weekly", "--site", "SH-01", env=installed)
    assert done.returncode != 0
    assert "unknown report type" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_at_any_point_leaves_no_row_and_no_file(installed, point):
    env = dict(installed, QMS_REPORT_CRASH_AT=point)
    listed_before, files_before = _listed(installed), _report_files(installed)
    done = _qms("report", "generate", "--type", "unit-dossier", "--unit", "K-2026-001", env=env)
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr)
    # The next report command sweeps what the crash left; nothing was registered.
    assert _listed(installed) == listed_before
    assert _report_files(installed) == files_before
    # And the ledger is whole: the crash appended nothing half-way.
    assert _qms("verify", env=installed).returncode == 0
