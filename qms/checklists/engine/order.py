"""Order rules: each record of a step follows its turn of the steps that must come before it."""

from __future__ import annotations

from qms.checklists.engine.context import _Check, _Ctx, _emit
from qms.checklists.language import Checklist, OrderSpec, Rule
from qms.checklists.quantities import format_duration


def _compile_order(rule: Rule, spec: OrderSpec, cl: Checklist) -> _Check:
    """Each record of a step must follow its turn of the earlier step.

    Repeating steps go in turn (bags): the 2nd infusion start follows the 2nd thaw end
    (or the last one, if the earlier step was done fewer times). A step done once
    follows every record of the earlier step: disposal after the last infusion end.
    """
    seq = spec.steps
    repeats = {s: cl.steps[s].repeats for s in seq}

    # Which steps each recorded later step is compared with depends only on which steps
    # were recorded: worked out once per set of recorded steps.
    turns: dict[frozenset[str], tuple[tuple[int, str, str | None], ...]] = {}

    def turns_for(recorded: frozenset[str]) -> tuple[tuple[int, str, str | None], ...]:
        out = []
        for j in range(1, len(seq)):
            later = seq[j]
            if later not in recorded:
                continue
            # Compare with the nearest earlier step that was recorded at all; steps never
            # recorded are reported once, as missing (and here only if none was recorded).
            pred = None
            for i in range(j - 1, -1, -1):
                if seq[i] in recorded:
                    pred = seq[i]
                    break
            out.append((j, later, pred))
        if len(turns) > 256:
            turns.clear()
        found = turns[recorded] = tuple(out)
        return found

    def check(ctx: _Ctx) -> None:
        by_step = ctx.by_step
        when = ctx.when
        recorded = ctx.recorded
        found = turns.get(recorded)
        if found is None:
            found = turns_for(recorded)
        for j, later, pred in found:
            records = by_step[later]
            if pred is not None and when[id(by_step[pred][-1])] <= when[id(records[0])]:
                continue  # the usual case: every record of `later` after every one of `pred`
            for k, rec in enumerate(records):
                if pred is None:
                    names = ", ".join(seq[:j])
                    params = {"rule": rule.id, "before": list(seq[:j]), "later": later}
                    _emit(
                        ctx,
                        cl,
                        rule,
                        (*seq[:j], later),
                        "order.no_earlier",
                        params,
                        " before ".join(seq[: j + 1]),
                        f"no {names} before {later}",
                        (rec,),
                    )
                    continue
                earlier = by_step[pred]
                target = earlier[min(k, len(earlier) - 1)] if repeats[later] else earlier[-1]
                if when[id(target)] <= when[id(rec)]:
                    continue
                # From the context's distances: two times of one zone with summer time
                # subtract on their clocks (an hour out across a change), these do not.
                gap = format_duration(when[id(target)] - when[id(rec)])
                params = {"rule": rule.id, "earlier": pred, "later": later, "gap": gap}
                _emit(
                    ctx,
                    cl,
                    rule,
                    (pred, later),
                    "order.before",
                    params,
                    f"{pred} before {later}",
                    f"{pred} {gap} after {later}",
                    (target, rec),
                )

    return check
