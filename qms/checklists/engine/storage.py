"""Storage rules: the equipment's readings while a unit was in it, with any tolerance and MKT."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import timedelta

from qms.checklists.engine.context import _EPOCH, _Check, _Cond, _Ctx, _emit
from qms.checklists.facts import StepFacts
from qms.checklists.language import Checklist, Rule, StorageSpec
from qms.checklists.mkt import mean_kinetic_temperature
from qms.checklists.quantities import format_duration, format_number, format_quantity

# The steps whose records bound a stay in storage: what every storage rule measures.
STORAGE_IN, STORAGE_OUT = "storage_in", "storage_out"


def storage_can_change(prior: Sequence[StepFacts], new: StepFacts) -> bool:
    """Whether adding `new` to the unit's (effective) records `prior` can change what a
    storage rule finds, as `check_step` judges (without `now`): only a record of storage
    in or out, or any record while a stay is still open (its end is the unit's latest
    record). When it cannot, the live check needs no readings: the storage findings
    before and after the new record are the same, so none is added."""
    if new.step in (STORAGE_IN, STORAGE_OUT):
        return True
    outs = [r.at for r in prior if r.step == STORAGE_OUT]
    return any(not any(out >= rec.at for out in outs) for rec in prior if rec.step == STORAGE_IN)


def _compile_storage(rule: Rule, spec: StorageSpec, cond: _Cond | None, cl: Checklist) -> _Check:
    low, high = spec.min, spec.max
    up_to, tolerate_for, mkt_max = spec.tolerate_up_to, spec.tolerate_for, spec.mkt_max
    tolerant = up_to is not None and tolerate_for is not None and mkt_max is not None
    limit = spec.limit_text
    if tolerant:
        limit += f" (above {format_number(high or 0)} °C tolerated up to {format_number(up_to)} °C for ≤ {format_duration(tolerate_for)} if MKT ≤ {format_number(mkt_max)} °C)"
    steps = (STORAGE_IN, STORAGE_OUT)

    def check(ctx: _Ctx) -> None:
        if ctx.readings is None:
            return
        ins = ctx.by_step.get(STORAGE_IN)
        if not ins:
            return
        outs = ctx.by_step.get(STORAGE_OUT) or []
        for rec in ins:
            if cond is not None and not cond(ctx, (rec,)):
                continue
            equipment = rec.fields.get("equipment")
            if not isinstance(equipment, str):
                continue
            series = ctx.readings.series(equipment)
            if series is None:
                continue
            # Times as distances from one UTC instant, as the series has them.
            when = ctx.when
            start = when[id(rec)]
            taken_out = next((o for o in outs if when[id(o)] >= start), None)
            end = when[id(taken_out)] if taken_out is not None else None
            if end is None:
                # Still in storage as far as the records say: up to `now`, else up to the
                # unit's last record (an audit without `now` cannot know more).
                if ctx.now is not None:
                    end = ctx.now - _EPOCH
                else:
                    end = max(start, when[id(ctx.records[-1])])
            times, temps = series
            # The reading in effect when the unit went in counts, then every reading until out.
            i0 = max(bisect_right(times, start) - 1, 0)
            i1 = bisect_right(times, end)
            if i0 >= i1 or times[i0] > end:
                continue
            period_temps = temps[i0:i1]
            warmest = max(period_temps)
            coldest = min(period_temps)
            if (high is None or warmest <= high) and (low is None or coldest >= low):
                continue  # the usual case: nothing to weigh
            held = []
            for i in range(i0, i1):
                begin = max(times[i], start)
                stop = min(times[i + 1], end) if i + 1 < len(times) else end
                held.append(max(stop - begin, timedelta(0)))
            stored_for = end - start
            reasons = []
            too_cold = [t for t in period_temps if low is not None and t < low]
            too_warm_time = sum(
                (
                    h
                    for t, h in zip(period_temps, held, strict=True)
                    if high is not None and t > high
                ),
                timedelta(0),
            )
            if too_cold:
                reasons.append({"code": "storage.below_min", "coldest_c": coldest, "min_c": low})
            if high is not None and warmest > high:
                above_for = format_duration(too_warm_time)
                if not tolerant:
                    reasons.append(
                        {
                            "code": "storage.above_max",
                            "warmest_c": warmest,
                            "max_c": high,
                            "above_for": above_for,
                        }
                    )
                else:
                    if warmest > up_to:
                        reasons.append(
                            {
                                "code": "storage.above_tolerated",
                                "warmest_c": warmest,
                                "up_to_c": up_to,
                            }
                        )
                    if too_warm_time > tolerate_for:
                        reasons.append(
                            {
                                "code": "storage.too_long_above",
                                "above_for": above_for,
                                "max_c": high,
                                "tolerate_for": format_duration(tolerate_for),
                            }
                        )
                    weights = [h.total_seconds() for h in held]
                    mkt = mean_kinetic_temperature(period_temps, weights)
                    if mkt > mkt_max + 1e-9:
                        reasons.append(
                            {
                                "code": "storage.mkt_exceeded",
                                "mkt_c": round(mkt, 2),
                                "mkt_max_c": mkt_max,
                            }
                        )
            if not reasons:
                continue
            actual_parts = [f"max {format_quantity(warmest, '°C')}"] if high is not None else []
            if low is not None:
                actual_parts.append(f"min {format_quantity(coldest, '°C')}")
            params = {
                "rule": rule.id,
                "equipment": equipment,
                "stored_for": format_duration(stored_for),
                "reasons": reasons,
            }
            concerned = (rec, taken_out) if taken_out is not None else (rec,)
            actual = ", ".join(actual_parts)
            _emit(ctx, cl, rule, steps, "storage.excursion", params, limit, actual, concerned)

    return check
