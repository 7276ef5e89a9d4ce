"""`qms scheduler`: the process that runs what falls due, as leader or standby.

It first becomes the leader (`qms.scheduling.leader`), standing by until then; as
leader it runs an APScheduler 3.x `BlockingScheduler` with:

- the due pass every `tick_seconds` (claim and make what is due: `runner.run_due`),
  which catches up by itself because what is due comes from the registry; every
  `watch_seconds` (recorded, so a restart keeps the interval) the pass also raises the
  reminders, effectiveness checks and logger gaps that fell due (once each: what fell
  due while no scheduler ran is raised at the first pass after);
- the nightly ledger check and the nightly backup, at the configured local time;
- a leadership check every `poll_seconds`: a leader that lost its lock stops at once.

Every job is `coalesce=True`, `max_instances=1`, with an explicit `misfire_grace_time`:
a pass that could not start on time runs once late rather than many times. SIGTERM and
SIGINT stop the scheduler at once (`qms scheduler` exits without waiting for a pass that
is rendering a report: abandoning a pass is as safe as a kill -9); the next leader
finishes whatever was claimed.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from qms.runtime import Runtime
from qms.scheduling.leader import leadership_for

log = logging.getLogger("qms.scheduler")

# A due pass that could not start within this long of its time is skipped: the next
# one (tick_seconds later) computes the same due periods from the registry.
DUE_PASS_GRACE_SECONDS = 30
# A nightly job delayed by a long pass still runs if it can start within this window.
NIGHTLY_GRACE_SECONDS = 6 * 3600


@dataclass(frozen=True)
class SchedulerOptions:
    poll_seconds: float = 5.0  # how often a standby asks, and the leader checks
    tick_seconds: float = 60.0  # how often the leader looks for due periods
    watch_seconds: float = 900.0  # how often reminders and logger gaps are looked for
    nightly_at: str = "02:30"  # local time of the nightly check and backup
    backups_kept: int = 7
    nightly: bool = True


def run_scheduler(
    runtime: Runtime, options: SchedulerOptions, say: Callable[[str], None] = print
) -> int:
    """Stand by, lead, run jobs until stopped; the exit status (0 stopped, 3 lost the lock)."""
    from qms.scheduling.runner import run_due

    stop = threading.Event()
    leadership = leadership_for(runtime.settings.database_url, runtime.settings.instance_path)
    scheduler: BlockingScheduler | None = None
    lost = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not leadership.acquire(
        options.poll_seconds,
        on_wait=lambda: say("standing by: another qms scheduler leads"),
        should_stop=stop.is_set,
    ):
        leadership.release()
        return 0
    say(
        f"leading: running due reports every {options.tick_seconds:g}s, reminders and "
        f"logger gaps every {options.watch_seconds:g}s"
    )
    database = runtime.database

    def due_pass() -> None:
        if not leadership.held():
            return
        result = run_due(
            database,
            datetime.now(UTC),
            settings=runtime.settings,
            registry=runtime.registry,
            watch_every=timedelta(seconds=options.watch_seconds),
        )
        for line in result.lines():
            if line != "nothing due":
                say(line)

    def check_leadership() -> None:
        if not leadership.held():
            say("leadership lost: stopping (another scheduler takes over)")
            lost.set()
            scheduler.shutdown(wait=False)

    def nightly() -> None:
        from qms.backup import nightly_backup
        from qms.scheduling.nightly import nightly_verify

        run = nightly_verify(database)
        say(f"nightly verify: {'ok' if run.ok else 'FAILED'}, head {run.head_hash}")
        outcome = nightly_backup(runtime, keep=options.backups_kept)
        say(f"nightly backup: {outcome}")

    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    scheduler.add_job(
        due_pass,
        IntervalTrigger(seconds=options.tick_seconds, timezone=UTC),
        id="due-pass",
        next_run_time=datetime.now(UTC),
        misfire_grace_time=DUE_PASS_GRACE_SECONDS,
    )
    scheduler.add_job(
        check_leadership,
        IntervalTrigger(seconds=options.poll_seconds, timezone=UTC),
        id="leadership",
        misfire_grace_time=max(1, int(options.poll_seconds)),
    )
    if options.nightly:
        hour, minute = options.nightly_at.split(":")
        scheduler.add_job(
            nightly,
            CronTrigger(hour=int(hour), minute=int(minute), timezone=runtime.settings.zone),
            id="nightly",
            misfire_grace_time=NIGHTLY_GRACE_SECONDS,
        )
    try:
        scheduler.start()
    finally:
        leadership.release()
    say("stopped")
    return 3 if lost.is_set() else 0
