"""Report files under <instance>/reports/: written atomically, never left half-made.

A file is written to a `.partial` file beside it, fsynced, then renamed in one step
and the folder fsynced: a reader sees the whole file or none. Its registry row
is committed after the name exists; until then the generator holds a shared lock on
`reports/.lock`. A crash (kill -9) leaves a `.partial` file, or in that window a named file without a row:
`sweep` (run by every report command) removes such files, under the exclusive lock, so never one a live generator is
about to commit. A rolled-back transaction removes its files at once (`track`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy import event
from sqlmodel import Session, select

from qms.config import Settings

_FILES = "qms_report_files"  # session.info: files written in this transaction
_LOCK = "qms_report_lock"  # session.info: the open shared-lock fd
_CRASH_AT = "QMS_REPORT_CRASH_AT"  # tests: die (SIGKILL) at this point of a generation


def reports_dir(settings: Settings) -> Path:
    return settings.instance_path / "reports"


def crash_point(name: str) -> None:
    """Let the crash test kill this process at a named point (only when it asks)."""
    if os.environ.get(_CRASH_AT) == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """`path` holds `data` whole, or does not exist; it must not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        _write_all(fd, data)
        crash_point("mid-write")
        os.fsync(fd)
    finally:
        os.close(fd)
    crash_point("after-fsync")
    os.rename(partial, path)
    _fsync_dir(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def hold_generation_lock(session: Session, settings: Settings) -> None:
    """A shared lock on reports/.lock until this transaction ends (sweep waits for it)."""
    if _LOCK in session.info:
        return
    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_SH)
    session.info[_LOCK] = fd


def track(session: Session, path: Path) -> None:
    """Remove `path` if this transaction rolls back."""
    session.info.setdefault(_FILES, []).append(path)


def _release(session: Session) -> None:
    fd = session.info.pop(_LOCK, None)
    if fd is not None:
        os.close(fd)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    session.info.pop(_FILES, None)
    _release(session)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    for path in session.info.pop(_FILES, []):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    _release(session)


def sweep(session: Session, settings: Settings) -> list[Path]:
    """Remove report files with no committed registry row (left by a crash); the removed."""
    from qms.reports.models import ReportVersion

    folder = reports_dir(settings)
    if not folder.is_dir():
        return []
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a generation is under way: its file may be about to be committed
        known = set(session.exec(select(ReportVersion.file_name)).all())
        removed = []
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name == ".lock":
                continue
            relative = path.relative_to(folder).as_posix()
            if relative not in known:
                path.unlink()
                removed.append(path)
        return removed
    finally:
        os.close(fd)
