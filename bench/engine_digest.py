"""A digest of every finding and due item of the engine bench's units, to show that a change
made for speed changes no result.

    .venv/bin/python bench/engine_digest.py [--units 6000] [--seed 1]

The units are those of bench/engine.py (the same seed gives the same units), judged in
seven modes: complete, in progress, a partial unit (its first records in time only, in
progress), as at a time inside the unit (some records dated after it), as at a time two
days after its last record, without readings, and with every reading 8 °C warmer
(storage excursions); then the due items of the partial unit as at its middle and of the
whole unit two days after its last record. Each mode's SHA-256 is printed, then one over all of
them: run it before and after a change and compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine import build, templates  # noqa: E402

from qms.checklists.engine import ReadingIndex, due_next, evaluate  # noqa: E402
from qms.checklists.language import Registry  # noqa: E402


def _finding(f) -> str:
    return json.dumps(f.to_json(), ensure_ascii=False, default=str)


def _due(d) -> str:
    return json.dumps(
        [
            d.unit,
            d.step,
            d.rule,
            d.by.isoformat() if d.by else None,
            d.not_before.isoformat() if d.not_before else None,
            d.message,
            d.code,
            dict(d.params),
        ],
        ensure_ascii=False,
        default=str,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    registry = Registry.from_directory()
    units, readings = build(registry, args.units, args.seed)
    # The same readings 8 °C warmer, so that storage rules find excursions.
    warm = ReadingIndex(
        [
            dataclasses.replace(r, temperature_c=r.temperature_c + 8)
            for _, _, _, rs in templates(registry)
            for r in rs
        ]
    )
    digests: dict[str, hashlib._Hash] = {}
    counts: dict[str, int] = {}

    def add(mode: str, lines) -> None:
        h = digests.setdefault(mode, hashlib.sha256())
        for line in lines:
            h.update(line.encode())
            h.update(b"\n")
            counts[mode] = counts.get(mode, 0) + 1

    for checklist, unit, steps in units:
        if not steps:
            continue
        times = sorted(s.at for s in steps)
        middle, last = times[len(times) // 2], times[-1] + timedelta(days=2)
        partial = sorted(steps, key=lambda s: (s.at, s.record_id))[: max(1, len(steps) // 2)]
        add("complete", map(_finding, evaluate(checklist, unit, steps, readings, complete=True)))
        add(
            "in_progress",
            map(_finding, evaluate(checklist, unit, steps, readings, complete=False)),
        )
        add("partial", map(_finding, evaluate(checklist, unit, partial, readings, complete=False)))
        add(
            "as_at_middle",
            map(_finding, evaluate(checklist, unit, steps, readings, now=middle, complete=False)),
        )
        add("as_after_last", map(_finding, evaluate(checklist, unit, steps, readings, now=last)))
        add("no_readings", map(_finding, evaluate(checklist, unit, steps, None)))
        add("warm_readings", map(_finding, evaluate(checklist, unit, steps, warm)))
        add("due_middle", map(_due, due_next(checklist, unit, partial, now=middle)))
        add("due_after_last", map(_due, due_next(checklist, unit, steps, now=last)))
    total = hashlib.sha256()
    for mode, h in digests.items():
        print(f"{mode:15} {counts.get(mode, 0):7} {h.hexdigest()}")
        total.update(h.digest())
    print(f"{'all':15} {sum(counts.values()):7} {total.hexdigest()}")


if __name__ == "__main__":
    main()
