"""The rule engine: one pure function from a checklist and a unit's records to findings.

The live check on a ward form, the audit run and `qms evaluate` all call `evaluate` (or
`check_step`, which is `evaluate` before and after one new record). A checklist is
compiled once per (checklist, profile) into closures over precomputed tables; a unit is
then indexed once (records by step, in time order) and every closure reads that index.

Time semantics (see docs/checklists.md, "What the engine reports and when"):
- `complete=True`: the unit is finished; every required step never done is missing, and
  a window left open (a thawed bag never infused) is a finding.
- `complete=False`: the unit is in progress; a required step is missing only once a step
  that must come after it (by the order rules) has been recorded.
- `now`: open windows whose maximum has passed by `now` are findings (overdue), storage
  is checked up to `now`, and records dated after `now` are flagged.
Findings never contain clock times, only durations, so that they do not depend on the
time zone the records were written in.
"""

from qms.checklists.engine.context import ReadingIndex
from qms.checklists.engine.due import due_next
from qms.checklists.engine.records import effective_records
from qms.checklists.engine.run import added_findings, check_step, describe_rules, evaluate
from qms.checklists.engine.steps import CLOCK_TOLERANCE
from qms.checklists.engine.storage import storage_can_change

__all__ = [
    "CLOCK_TOLERANCE",
    "ReadingIndex",
    "added_findings",
    "check_step",
    "describe_rules",
    "due_next",
    "effective_records",
    "evaluate",
    "storage_can_change",
]
