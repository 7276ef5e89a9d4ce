"""Rules whose conditions read a value that was not recorded: judged in every world it allows.

A condition test on a field that was not recorded (which component a Breyanzi record is,
how a Blincyto bag was stored) can neither pass nor fail. The rule is then judged in each
world the missing values allow (each such test passing or failing, record by record):

- a finding made in every world holds whatever the value: it is reported as it is;
- if the worlds agree, the rule is decided (nothing, or those findings, is reported);
- if they differ, the rule "cannot be shown to hold": one finding of the rule itself
  (code `rule.cannot_be_shown`) names the fields not recorded and carries the finding of
  its strictest world (`would`), e.g. a hold time judged against the shortest limit the
  missing storage condition could have chosen.

Without a missing value a rule runs once, exactly as before: the worlds cost nothing then.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

from qms.checklists.engine.context import _Check, _Ctx
from qms.checklists.engine.messages import render
from qms.checklists.facts import Finding
from qms.checklists.language import Checklist, Rule

# Beyond this many unknown tests in one rule and unit, only the two extreme worlds (every
# unknown test failing, every one passing) are tried.
MAX_EXACT = 6
CODE = "rule.cannot_be_shown"


def _assignments(keys: list[tuple[int, int]]):
    """Every non-empty set of keys assumed to pass (the empty set is the first run)."""
    if len(keys) > MAX_EXACT:
        yield frozenset(keys)
        return
    for size in range(1, len(keys) + 1):
        for chosen in combinations(keys, size):
            yield frozenset(chosen)


def _worlds(rule: Rule, check: _Check, cl: Checklist) -> _Check:
    def judged(ctx: _Ctx) -> None:
        out = ctx.out
        mark = len(out)
        seen: dict[tuple[int, int], str] = {}
        ctx.unknown = seen
        ctx.world = None
        try:
            check(ctx)
            if not seen:
                return
            first = out[mark:]
            del out[mark:]
            worlds = [first]
            tried = 0
            while tried < len(seen):
                # Trying a world may reach tests a failed one cut short: try again with them.
                keys = list(seen)
                tried = len(keys)
                worlds = [first]
                for assumed in _assignments(keys):
                    ctx.world = dict.fromkeys(assumed, True)
                    ctx.out = []
                    check(ctx)
                    worlds.append(ctx.out)
                if len(keys) > MAX_EXACT:
                    break
        finally:
            ctx.out = out
            ctx.unknown = None
            ctx.world = None
        common = Counter(worlds[0])
        for world in worlds[1:]:
            common &= Counter(world)
        kept = Counter(common)
        for finding in worlds[0]:
            if kept[finding] > 0:
                kept[finding] -= 1
                out.append(finding)
        if all(Counter(world) == common for world in worlds):
            return
        strictest = max(worlds, key=len)
        rest = Counter(strictest) - common
        would = next(f for f in strictest if rest[f] > 0)
        params = {
            "rule": rule.id,
            "missing": sorted(set(seen.values())),
            "would": {"code": would.code, "params": dict(would.params)},
        }
        out.append(
            Finding(
                ctx.unit.id,
                rule.kind,
                rule.id,
                rule.severity,
                would.steps,
                render(CODE, params, checklist=cl),
                would.limit,
                f"{would.actual}; cannot be shown to hold: {', '.join(params['missing'])} not recorded",
                CODE,
                params,
                would.record_ids,
            )
        )

    return judged
