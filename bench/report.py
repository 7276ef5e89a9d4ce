"""Report benchmark: a site monthly report for 300 units (about 9,000 ledger records), and a
regional annual report for 20 sites, 5,000 units (about 150,000 ledger records).

    .venv/bin/python bench/report.py [--units 300] [--runs 3] [--database sqlite|postgresql]
        [--report site-monthly|regional-annual|both] [--sites 20] [--regional-units 5000]

Fills a fresh database with a month of Kymriah units in realistic shapes (bench/units.py's
generator: records, signatures, corrections, statuses, hourly freezer readings), makes
demonstration keys, then times what `qms report generate --type site-monthly` does, step by
step: the audit run of the month, the report's data, the rendering (WeasyPrint, in its
child process, started as the command starts it: before the audit, so that it loads
meanwhile; "of which rendering" runs from the HTML handed to its PDF), the signature, the
registration. Next to it, the floor measured in the same run: the same child process,
started and handed plain pages of text at once (`render.render_pdf`), as many pages as
the report has, with no attachment and no signature. Prints the figures, the target (≤ 5 s end to
end, within 2× of the floor) and the children's peak RSS; with --runs, the medians (each
run registers one more version of the report, as a regeneration does).

The regional annual report: a fresh database with `--sites` sites in one region, each
with its share of `--regional-units` Kymriah units spread over the year (bench/units.py's
unit shapes) and two freezers logging every twelve hours; then times what `qms report generate
--type regional-annual` does: one audit run of the year per site, the data, the rendering,
the signature, the registration (target ≤ 60 s end to end, peak RSS ≤ 1 GB), next to the
floor of plain pages as above.

Before each generation a `qms verify` anchor is recorded as the nightly verify leaves one,
so the report checks the ledger since it (see qms/reports/ledgercheck.py); with
QMS_REPORT_VERIFY=full the report verifies the whole ledger instead (set it to compare).
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
    parser.add_argument(
        "--report", default="both", choices=["site-monthly", "regional-annual", "both"]
    )
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--regional-units", type=int, default=5000)
    parser.add_argument("--regional-runs", type=int, default=1)
    args = parser.parse_args()
    if args.report in ("site-monthly", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = new_database(args.database, Path(tmp))
            try:
                run(url, Path(tmp), args.units, args.runs)
            finally:
                drop()
    if args.report in ("regional-annual", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url, drop = new_database(args.database, Path(tmp))
            try:
                run_regional(url, Path(tmp), args.sites, args.regional_units, args.regional_runs)
            finally:
                drop()


def anchor_a_verify(database: Database) -> None:
    """What the nightly `qms verify` leaves when it passes: an anchor of the head."""
    from qms.core import ledger
    from qms.core.anchors import anchor

    with database.transaction(write=True) as s:
        seq, digest = ledger.head(s)
        anchor(s, source="verify", head_seq=seq, head_hash=digest)


CHILD_PEAKS_KB: list[int] = []  # each rendering child's own peak RSS (VmHWM)


def _watch_peak(pid: int) -> None:
    """Follow a child's VmHWM in /proc until it exits. RUSAGE_CHILDREN cannot tell it: a
    child forked (vfork) from this process counts this process's RSS as its own until it
    execs, so it reports the bench's fill instead of WeasyPrint."""
    peak = 0
    while True:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if command and b"render_child" not in command:
                time.sleep(0.005)  # not yet exec'd: the memory is still this process's
                continue
            if not command:
                break  # a zombie: exited, not yet reaped
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.02)
    CHILD_PEAKS_KB.append(peak)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (load changes it little)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_renders():
    """Time each rendering, from the HTML handed to the child (`PendingRender.submit`) to
    its PDF (`result`): the child starts earlier, while the data is read; follow each
    child's peak RSS; returns the list of times and the plain `render_pdf` the floor uses."""
    import threading

    renders: list[float] = []
    start, submit, result = (
        render.PendingRender.__init__,
        render.PendingRender.submit,
        render.PendingRender.result,
    )

    def watched_start(self):
        start(self)
        threading.Thread(target=_watch_peak, args=(self._child.pid,), daemon=True).start()

    def timed_submit(self, *a, **k):
        self._bench_started = time.perf_counter()
        return submit(self, *a, **k)

    def timed_result(self):
        try:
            return result(self)
        finally:
            renders.append(time.perf_counter() - self._bench_started)

    render.PendingRender.__init__ = watched_start
    render.PendingRender.submit = timed_submit
    render.PendingRender.result = timed_result
    return renders, render.render_pdf


YEAR = "2026"
REGION_NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


def fill_region(database: Database, sites: int, units: int) -> tuple[list[str], int]:
    """`sites` sites in region BENCH, their units spread over the year; the ledger's size."""
    from datetime import timedelta

    from sqlalchemy import insert

    import bench.units as shapes
    from qms.accounts import service as accounts
    from qms.accounts.models import UserSite
    from qms.regions.service import create_region, place_site
    from qms.storage import service as storage
    from qms.storage.models import READING

    site_ids = [f"S-{n + 1:02d}" for n in range(sites)]
    freezers = {site: [f"{site}-LN2-{k}" for k in range(2)] for site in site_ids}
    shapes.SITE, shapes.FREEZERS = site_ids[0], freezers[site_ids[0]]
    people = setup_site(database)
    with database.transaction() as s:
        create_region(session=s, region_id="BENCH", name="Bench region", actor_id=None,
                      actor_name="bench")  # fmt: skip
        system = Actor.system("bench")
        for site in site_ids[1:]:
            accounts.create_site(session=s, site_id=site, name=f"Bench hospital {site}")
            s.flush()
            for code, name in (("HEM", "Haematology ward"), ("CTU", "Cell therapy unit")):
                accounts.create_ward(session=s, site_id=site, code=code, name=name)
            for equipment in freezers[site]:
                storage.register_equipment(
                    session=s, actor=system, equipment_id=equipment, kind="ln2_vapour",
                    site_id=site,
                )  # fmt: skip
            s.execute(insert(UserSite), [{"user_id": i, "site_id": site} for i in people.values()])
        for site in site_ids:
            place_site(session=s, region_id="BENCH", site_id=site, actor_id=None,
                       actor_name="bench")  # fmt: skip
    start = datetime(2026, 1, 2, 8, 0, tzinfo=UTC)
    span = timedelta(days=330)
    per_site = units // sites
    for n, site in enumerate(site_ids):
        shapes.SITE, shapes.FREEZERS = site, freezers[site]
        chained = shapes.ChainedFill(database, people)
        at = start
        while at < start + span:
            for k, equipment in enumerate(freezers[site]):
                number = int((at - start).total_seconds() // 3600)
                warm = (number + 37 * k + n) % 700 == 0
                chained.add_chained(
                    "reading",
                    READING,
                    {
                        "equipment_id": equipment,
                        "at": at,
                        "temperature_c": -110.0 if warm else -162.0 + (number + k) % 3,
                        "recorded_at": at,
                        "recorded_by": "logger",
                        "source": "logger",
                        "imported_at": None,
                        "imported_by": None,
                    },
                )
            at += timedelta(hours=12)
        for i in range(per_site):
            registered = start + span * i / per_site + timedelta(minutes=7 * n)
            shapes._one_unit(chained, people, n * per_site + i, registered, REGION_NOW)
        chained.flush()
    with database.transaction(write=False) as s:
        records = s.exec(select(func.count()).select_from(LedgerEntry)).one()
    return site_ids, records


def run_regional(url: str, tmp: Path, sites: int, units: int, runs: int) -> None:
    import os

    from qms.quality.audits import assess_scope, record_run

    migrate(url)
    database = Database(url)
    started = time.perf_counter()
    site_ids, records = fill_region(database, sites, units)
    print(
        f"filled {sites} sites, {units} units, {records} ledger records in "
        f"{time.perf_counter() - started:.1f} s"
    )
    settings = Settings(instance_path=tmp / "instance", database_url=url)
    make_demo_keys(settings, site_name="Bench hospital")
    registry = Registry.from_directory()
    system = Actor.system("bench")
    renders, original = timed_renders()
    samples, floors = [], []
    cpus, floor_cpus = [], []
    for _ in range(runs):
        anchor_a_verify(database)
        times: dict[str, float] = {}
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        renderer = render.start_render()  # as `qms report generate`: before the audits
        run_ids = {}
        judged = findings = 0
        for site in site_ids:
            with database.transaction(write=False) as s:
                result = assess_scope(
                    session=s, registry=registry, by=system, scope=service.year_scope(site, YEAR)
                )
            with database.transaction(write=True) as s:
                run_ids[site] = record_run(session=s, by=system, result=result, now=REGION_NOW).id
            judged += result.counts["records"]
            findings += len(result.findings)
        times[f"audit runs of the year ({sites} sites)"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        with database.transaction(write=False) as s:
            prepared = service.prepare_report(
                session=s,
                settings=settings,
                who=system,
                report_type="regional-annual",
                scope="BENCH",
                period=YEAR,
                audit_run_ids=run_ids,
                renderer=renderer,
            )
        t2 = time.perf_counter()
        with database.transaction(write=True) as s:
            row = service.register_report(session=s, settings=settings, prepared=prepared)
        t3 = time.perf_counter()
        times["data + render + sign (prepare_report)"] = t2 - t1
        times["  of which rendering (child process)"] = renders[-1]
        times["register (atomic file + registry row)"] = t3 - t2
        times["end to end"] = t3 - t0
        cpus.append(cpu_seconds() - c0)
        samples.append(times)
        pages = page_count(prepared.pdf)
        c4 = cpu_seconds()
        t4 = time.perf_counter()
        original(plain_pages(pages), base_url=tmp.as_uri() + "/", attachments=[], xmp=b"")
        floors.append(time.perf_counter() - t4)
        floor_cpus.append(cpu_seconds() - c4)
    median = {name: statistics.median(t[name] for t in samples) for name in samples[0]}
    floor = statistics.median(floors)
    child_mb = max(CHILD_PEAKS_KB, default=0) / 1024
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from qms.reports import pdf as report_pdf

    attachments = {name: len(blob) for name, blob in report_pdf.attachments(prepared.pdf).items()}
    check = os.environ.get("QMS_REPORT_VERIFY", "since-anchor")
    print(
        f"regional annual report: {sites} sites, {judged} step records judged ({records} "
        f"ledger records in all), {findings} findings; {pages} pages, {row.size / 1e6:.2f} MB "
        f"(report.json {attachments.get('report.json', 0) / 1e6:.1f} MB, report.csv "
        f"{attachments.get('report.csv', 0) / 1e6:.1f} MB); ledger check: {check}; "
        f"median of {runs} runs"
    )
    for name, value in median.items():
        target = "   (target <= 60 s)" if name == "end to end" else ""
        print(f"  {name:<42} {value:6.2f} s{target}")
    print(
        f"floor: WeasyPrint rendering {pages} plain pages in the same child process: "
        f"{floor:.2f} s; report rendering / floor = "
        f"{median['  of which rendering (child process)'] / floor:.2f}x, "
        f"end to end / floor = {median['end to end'] / floor:.2f}x"
    )
    _print_cpu(cpus, floor_cpus)
    print(
        f"peak RSS: child processes (WeasyPrint) {child_mb:.0f} MB, this process (fill, "
        f"audits, data, signing) {self_mb:.0f} MB   (target <= 1024 MB)"
    )


def _print_cpu(cpus: list[float], floor_cpus: list[float]) -> None:
    cpu, floor_cpu = statistics.median(cpus), statistics.median(floor_cpus)
    print(
        f"CPU time (this process and its children; little changed by load): end to end "
        f"{cpu:.2f} s, floor {floor_cpu:.2f} s, end to end / floor = {cpu / floor_cpu:.2f}x"
    )


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
    renders, original = timed_renders()
    cpus, floor_cpus = [], []
    for _ in range(runs):
        anchor_a_verify(database)
        times: dict[str, float] = {}
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        renderer = render.start_render()  # as `qms report generate`: before the audit
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
                renderer=renderer,
            )
        t2 = time.perf_counter()
        with database.transaction(write=True) as s:
            row = service.register_report(session=s, settings=settings, prepared=prepared)
        t3 = time.perf_counter()
        times["data + render + sign (prepare_report)"] = t2 - t1
        times["  of which rendering (child process)"] = renders[-1]
        times["register (atomic file + registry row)"] = t3 - t2
        times["end to end"] = t3 - t0
        cpus.append(cpu_seconds() - c0)
        samples.append(times)
        pages = page_count(prepared.pdf)
        c4 = cpu_seconds()
        t4 = time.perf_counter()
        floor_pdf = original(
            plain_pages(pages), base_url=tmp.as_uri() + "/", attachments=[], xmp=b""
        )
        floors.append(time.perf_counter() - t4)
        floor_cpus.append(cpu_seconds() - c4)
    floor_pages = page_count(floor_pdf)
    peak_mb = max(CHILD_PEAKS_KB, default=0) / 1024
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
    _print_cpu(cpus, floor_cpus)
    print(f"peak RSS of the child processes: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
