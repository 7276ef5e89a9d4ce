"""Report benchmark: a site monthly report for 300 units (about 9,000 ledger records).

    .venv/bin/python bench/report.py [--units 300] [--runs 3] [--database sqlite|postgresql]

Fills a fresh database with a month of Kymriah units in realistic shapes (bench/units.py's
generator: records, signatures, corrections, statuses, hourly freezer readings), makes
demonstration keys, then times what `qms report generate --type site-monthly` does, step by
step: the audit run of the month, the report's data, the rendering (WeasyPrint, in its
child process), the signature, the registration. Next to it, the floor measured in the same
run: the same child process rendering plain pages of text, as many pages as the report
has, with no attachment and no signature. Prints the figures, the target (≤ 5 s end to
end, within 2× of the floor) and the children's peak RSS; with --runs, the medians (each
run registers one more version of the report, as a regeneration does).

The regional annual report is not built yet (see the reports issue's note): not measured.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import new_database  # noqa: E402
from bench.units import SITE, fill, setup_site  # noqa: E402
from qms.accounts.service import Actor  # noqa: E402
from qms.checklists.language import Registry  # noqa: E402
from qms.config import Settings  # noqa: E402
from qms.core.models import LedgerEntry  # noqa: E402
from qms.db import Database, migrate  # noqa: E402
from qms.reports import render, service  # noqa: E402
from qms.reports.keys import make_demo_keys  # noqa: E402

NOW = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)
PERIOD = "2026-10"


def plain_pages(pages: int) -> str:
    """An HTML document of `pages` A4 pages of plain paragraphs, in the report's font."""
    paragraph = "<p>" + "Plain text of the floor measurement, one line after another. " * 6 + "</p>"
    body = "".join(
        f"<section style='page-break-after: always'><h2>{n}</h2>{paragraph * 5}</section>"
        for n in range(pages)
    )
    return (
        "<html><head><style>html{font-family:'Noto Sans CJK SC';font-size:9pt}</style></head>"
        f"<body>{body}</body></html>"
    )


def page_count(content: bytes) -> int:
    import pikepdf

    with pikepdf.open(io.BytesIO(content)) as document:
        return len(document.pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=3, help="generations measured (medians shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = new_database(args.database, Path(tmp))
        try:
            run(url, Path(tmp), args.units, args.runs)
        finally:
            drop()


def run(url: str, tmp: Path, units: int, runs: int) -> None:
    migrate(url)
    database = Database(url)
    people = setup_site(database)
    started = time.perf_counter()
    fill(database, people, units, NOW)
    with database.transaction(write=False) as s:
        records = s.exec(select(func.count()).select_from(LedgerEntry)).one()
    print(
        f"filled {units} units, {records} ledger records in {time.perf_counter() - started:.1f} s"
    )
    settings = Settings(instance_path=tmp / "instance", database_url=url)
    make_demo_keys(settings, site_name="Bench hospital")
    registry = Registry.from_directory()
    system = Actor.system("bench")

    from qms.quality.audits import assess_scope, record_run

    samples: list[dict[str, float]] = []
    floors: list[float] = []
    original = render.render_pdf
    renders: list[float] = []

    def timed_render(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            renders.append(time.perf_counter() - t)

    service.render.render_pdf = timed_render
    for _ in range(runs):
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        with database.transaction(write=False) as s:
            result = assess_scope(
                session=s, registry=registry, by=system, scope=service.month_scope(SITE, PERIOD)
            )
        with database.transaction(write=True) as s:
            audit = record_run(session=s, by=system, result=result, now=NOW)
        times["audit run of the month"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        with database.transaction(write=False) as s:
            prepared = service.prepare_report(
                session=s,
                settings=settings,
                who=system,
                report_type="site-monthly",
                site_id=SITE,
                period=PERIOD,
                audit_run_id=audit.id,
            )
        t2 = time.perf_counter()
        with database.transaction(write=True) as s:
            row = service.register_report(session=s, settings=settings, prepared=prepared)
        t3 = time.perf_counter()
        times["data + render + sign (prepare_report)"] = t2 - t1
        times["  of which rendering (child process)"] = renders[-1]
        times["register (atomic file + registry row)"] = t3 - t2
        times["end to end"] = t3 - t0
        samples.append(times)
        pages = page_count(prepared.pdf)
        t4 = time.perf_counter()
        floor_pdf = original(
            plain_pages(pages), base_url=tmp.as_uri() + "/", attachments=[], xmp=b""
        )
        floors.append(time.perf_counter() - t4)
    floor_pages = page_count(floor_pdf)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    median = {name: statistics.median(t[name] for t in samples) for name in samples[0]}
    floor = statistics.median(floors)

    print(
        f"site monthly report: {result.counts['units']} units, {result.counts['records']} "
        f"step records judged ({records} ledger records in all), {len(result.findings)} "
        f"findings; {pages} pages, {row.size / 1e6:.2f} MB; median of {runs} runs"
    )
    for name, value in median.items():
        target = "   (target <= 5 s)" if name == "end to end" else ""
        print(f"  {name:<42} {value:6.2f} s{target}")
    print(
        f"floor: WeasyPrint rendering {floor_pages} plain pages in the same child process: "
        f"{floor:.2f} s; report rendering / floor = "
        f"{median['  of which rendering (child process)'] / floor:.2f}x, "
        f"end to end / floor = {median['end to end'] / floor:.2f}x   (target <= 2x)"
    )
    print(f"peak RSS of the child processes: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
