"""Benchmark of the rule engine: step records evaluated per second on one core.

    .venv/bin/python bench/engine.py [--units 20000] [--seed 1] [--rounds 3]

Synthetic units are made from the compliant examples of every shipped checklist
(tests/checklists/examples/<checklist>/compliant.jsonl): each copy gets its own ids, its
times moved by whole days, and about a third get a violation (a record moved in time,
a number doubled, a record dropped, or a witness equal to the performer). Storage readings
are shared, as in a real audit, through one ReadingIndex.

The floor, measured in the same run on the same units: building the same facts (each
unit's records made again, as a loader would) and touching every field of every record,
without any rule. The engine's rate is printed next to it with the ratio, so that a
loaded machine (the figures move with the load) still shows what the rules cost.

Target: at least 300,000 step records/s on an idle core.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qms.checklists.engine import ReadingIndex, evaluate  # noqa: E402
from qms.checklists.facts import StepFacts, UnitFacts  # noqa: E402
from qms.checklists.language import Registry  # noqa: E402
from qms.records.interchange import read_interchange  # noqa: E402

EXAMPLES = ROOT / "tests" / "checklists" / "examples"


def templates(registry: Registry):
    out = []
    for checklist in registry:
        path = EXAMPLES / checklist.id / "compliant.jsonl"
        ix = read_interchange(path.read_text(encoding="utf-8").splitlines(), source=str(path))
        for unit in ix.units:
            out.append((checklist, unit, ix.steps_of(unit.id), ix.readings))
    return out


def violate(steps, rnd: random.Random):
    steps = list(steps)
    i = rnd.randrange(len(steps))
    s = steps[i]
    what = rnd.randrange(4)
    if what == 0:
        steps[i] = dataclasses.replace(
            s, at=s.at + timedelta(minutes=rnd.choice((-90, -20, 45, 300)))
        )
    elif what == 1:
        numbers = {
            k: v * 2
            for k, v in s.fields.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        steps[i] = dataclasses.replace(s, fields={**s.fields, **numbers})
    elif what == 2:
        del steps[i]
    else:
        steps[i] = dataclasses.replace(s, witness=s.by)
    return steps


def build(registry: Registry, n_units: int, seed: int):
    rnd = random.Random(seed)
    base = templates(registry)
    units, readings = [], []
    for _, _, _, rs in base:
        readings.extend(rs)
    for n in range(n_units):
        checklist, unit, steps, _ = base[n % len(base)]
        uid = f"{unit.id}-{n}"
        copy = dataclasses.replace(unit, id=uid)
        records = [
            dataclasses.replace(s, unit=uid, record_id=f"{uid}-{k}") for k, s in enumerate(steps)
        ]
        if rnd.random() < 0.33:
            records = violate(records, rnd)
        rnd.shuffle(records)  # callers need not sort
        units.append((checklist, copy, records))
    return units, ReadingIndex(readings)


def floor(units) -> float:
    """Seconds to build the same facts again and touch every field, without rules."""
    start = time.process_time()
    touched = 0
    for _, unit, steps in units:
        UnitFacts(
            unit.id,
            unit.checklist,
            unit.site,
            unit.profile,
            unit.coi_id,
            unit.patient,
            unit.attributes,
            unit.checklist_version,
            unit.status,
        )
        for s in steps:
            rec = StepFacts(
                s.unit,
                s.step,
                s.at,
                s.by,
                s.witness,
                s.fields,
                s.by_role,
                s.witness_role,
                s.record_id,
                s.corrects,
                s.reason,
                s.recorded_at,
                s.recorded_by,
            )
            for value in rec.fields.values():
                touched += value is not None
    elapsed = time.process_time() - start
    assert touched  # the loop did the work
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    registry = Registry.from_directory()
    units, readings = build(registry, args.units, args.seed)
    records = sum(len(r) for _, _, r in units)
    products = sorted({c.id for c, _, _ in units})
    # Warm up once per checklist and profile so compilation is not timed (it happens once).
    for checklist, unit, steps in units[:50]:
        evaluate(checklist, unit, steps, readings)
    kinds: Counter[str] = Counter()
    for checklist, unit, steps in units:
        for finding in evaluate(checklist, unit, steps, readings):
            kinds[finding.kind] += 1
    # Best of three rounds, engine and floor interleaved, so that both see the same load;
    # CPU time of this process (on a shared machine wall time measures the others too).
    elapsed = base = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        for checklist, unit, steps in units:
            evaluate(checklist, unit, steps, readings)
        elapsed = min(elapsed, time.process_time() - start)
        base = min(base, floor(units))
    print(
        f"products: {', '.join(products)}; {len(units)} units, {records} step records ({records / len(units):.1f} per unit)"
    )
    print(
        f"findings: {sum(kinds.values())} ({', '.join(f'{k} {v}' for k, v in kinds.most_common())})"
    )
    print(
        f"evaluated in {elapsed:.2f} s on one core: {records / elapsed:,.0f} step records/s ({len(units) / elapsed:,.0f} units/s)"
    )
    print(
        f"floor (same facts built, every field touched, no rules): {records / base:,.0f} step records/s;"
        f" the engine runs at {base / elapsed:.1%} of the floor ({elapsed / base:.1f}x its time)"
    )


if __name__ == "__main__":
    main()
