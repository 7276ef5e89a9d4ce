"""One pass of the scheduler: claim what is due, then do the work each claim asks for.

`run_due(database, now)` is what `qms schedule run-due --now T` and the scheduler's
job call. Claiming commits on its own (a `ScheduleRun` per due period, decided under
the ledger's lock); the work after it is driven by what is recorded, not by memory, so
a process killed at any moment leaves claims that the next pass finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from qms.accounts.service import Actor
from qms.db import Database, utcnow
from qms.scheduling import service
from qms.scheduling.models import ScheduleRun

SCHEDULER = "system (scheduler)"


@dataclass
class PassResult:
    claimed: list[ScheduleRun] = field(default_factory=list)

    def lines(self) -> list[str]:
        if not self.claimed:
            return ["nothing due"]
        return [
            f"claimed {run.schedule_id} period {run.period} (due {run.due_at:%Y-%m-%d %H:%M} UTC)"
            for run in self.claimed
        ]


def run_due(database: Database, now: datetime, *, by: str | None = None) -> PassResult:
    """Claim every period due by `now` (once each, whoever else runs), then finish them."""
    result = PassResult()
    with database.transaction() as session:
        result.claimed = service.claim_due(
            session=session, actor=Actor.system(SCHEDULER), now=now, claimed_at=utcnow(), by=by
        )
    return result
