"""Audit runs: judge every unit of a scope with the engine, and keep what was found.

A run judges the units of a site (optionally of some products and wards, with a step
performed in a period, or a list of units) through the batch loader and the one judging
function the unit pages use (`records.loading`, `checklists.judging.judge_many`), as
`qms evaluate` judges a file: as at each unit's last record, with the unit's own status.
It stores, chained: who, when, the scope, the checklist versions in force (digest, rules
digest, parameters), the site's quality parameters, the ledger head it covers (records
chained after that head are left out even if they arrive while the run reads), counts,
and the findings as codes and parameters. The number of queries does not depend on the
number of units (but for one more per 1,000 units, the databases' parameter limit).

`assess_scope` reads; `record_run` writes; `run_audit` does both in one session. A
command runs them in two (a read transaction, then a short write), so that a long audit
does not hold SQLite's write lock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlmodel import Session, col, select

from qms.accounts.access import is_member, require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission
from qms.accounts.service import Actor
from qms.checklists.facts import KINDS, SEVERITIES, Finding
from qms.checklists.judging import UnitCase
from qms.core import ledger
from qms.core.anchors import anchor
from qms.core.canonical import canonical_json
from qms.core.clock import zone_of
from qms.core.errors import Invalid, NotFound
from qms.core.i18n import _, _l
from qms.quality.models import AUDIT_KINDS, AuditRun, FindingReview
from qms.quality.numbers import allocate
from qms.quality.parameters import site_parameters
from qms.records.loading import _ward_of, load_units_by_id, step_facts
from qms.records.models import StepRecord, Unit

AUDIT_KIND_LABELS = {
    "routine": _l("routine"),
    "for_cause": _l("for cause"),
    "inspection_readiness": _l("inspection readiness"),
    "effectiveness": _l("effectiveness check"),
}


@dataclass(frozen=True)
class AuditScope:
    """What a run judges: a site's units, narrowed by any of the rest (None/empty: all)."""

    site_id: str
    date_from: date | None = None  # performed dates, in the site's zone, inclusive
    date_to: date | None = None
    checklists: tuple[str, ...] = ()
    wards: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    kind: str = "routine"
    capa: str | None = None  # the CAPA whose effectiveness this run checks

    def to_json(self) -> dict:
        doc = {
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "checklists": sorted(self.checklists),
            "wards": sorted(self.wards),
            "units": sorted(self.units),
        }
        if self.capa is not None:
            doc["capa"] = self.capa
        return doc

    @classmethod
    def of_run(cls, run: AuditRun) -> AuditScope:
        doc = json.loads(run.scope)
        return cls(
            site_id=run.site_id,
            date_from=date.fromisoformat(doc["from"]) if doc.get("from") else None,
            date_to=date.fromisoformat(doc["to"]) if doc.get("to") else None,
            checklists=tuple(doc.get("checklists", ())),
            wards=tuple(doc.get("wards", ())),
            units=tuple(doc.get("units", ())),
            kind=run.kind,
            capa=doc.get("capa"),
        )


@dataclass
class AuditResult:
    """What judging a scope found, before it is recorded."""

    scope: AuditScope
    covers: tuple[int, str]  # the ledger head (seq, hash) the run covers
    units: list[str]
    records: int
    not_judged: list[str]  # units whose checklist version is not installed
    findings: list[Finding]
    checklists: list[dict]
    parameters: dict[str, int]
    counts: dict = field(default_factory=dict)


def finding_key(doc: dict) -> tuple:
    """What makes two runs' findings the same finding (new / resolved between runs)."""
    return (doc["unit"], doc["rule"], doc["code"], tuple(doc["steps"]), tuple(doc["record_ids"]))


def count_findings(findings: Sequence[Finding]) -> dict:
    return {
        "findings": len(findings),
        "by_severity": {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES},
        "by_kind": {k: n for k in KINDS if (n := sum(1 for f in findings if f.kind == k))},
        "by_rule": dict(sorted(Counter(f.rule for f in findings).items())),
        "units_with_findings": len({f.unit for f in findings}),
    }


def assess_scope(*, session: Session, registry, by: User | Actor, scope: AuditScope) -> AuditResult:
    """Judge every unit in scope as the unit pages do (nothing is written)."""
    require(session, by, Permission.AUDIT, action=_l("run audits"))
    site = session.get(Site, scope.site_id)
    if site is None:
        raise NotFound(_("there is no site %(site)s", site=scope.site_id))
    require(session, by, Permission.AUDIT, scope.site_id, action=_l("run audits"))
    if scope.kind not in AUDIT_KINDS:
        raise Invalid(
            _(
                "an audit is one of %(kinds)s, not %(kind)s",
                kinds=_(", ").join(str(AUDIT_KIND_LABELS[k]) for k in AUDIT_KINDS),
                kind=repr(scope.kind),
            )
        )
    if scope.date_from and scope.date_to and scope.date_from > scope.date_to:
        raise Invalid(_("the period of an audit ends on or after the day it starts"))
    covers = ledger.head(session)
    ids = units_in_scope(session, scope, site.timezone, covers[0])
    batch = load_units_by_id(session, ids)
    # Records chained after the head read first are not covered: leave them out.
    for loaded in batch.units:
        if any(r.ledger_seq > covers[0] for r in loaded.records):
            loaded.records = [r for r in loaded.records if r.ledger_seq <= covers[0]]
            loaded.case = UnitCase(
                unit=loaded.case.unit, steps=tuple(step_facts(loaded.records, batch.usernames))
            )
    judged = batch.judge(registry, now=None, due=False)
    findings = [f for unit_id in ids if (j := judged.get(unit_id)) for f in j.findings]
    not_judged = [u.row.id for u in batch.units if judged.get(u.row.id) is None]
    versions = sorted({(u.row.checklist_id, u.row.checklist_version) for u in batch.units})
    checklists = [_checklist_in_force(registry, cid, version) for cid, version in versions]
    records = sum(len(u.records) for u in batch.units)
    result = AuditResult(
        scope=scope,
        covers=covers,
        units=[u.row.id for u in batch.units],
        records=records,
        not_judged=not_judged,
        findings=findings,
        checklists=checklists,
        parameters=site_parameters(session, scope.site_id),
    )
    result.counts = {
        "units": len(result.units),
        "records": records,
        "not_judged": len(not_judged),
        **count_findings(findings),
    }
    return result


def record_run(
    *, session: Session, by: User | Actor, result: AuditResult, now: datetime
) -> AuditRun:
    """Chain a run from what `assess_scope` found (the caller commits)."""
    require(session, by, Permission.AUDIT, result.scope.site_id, action=_l("run audits"))
    site = session.get(Site, result.scope.site_id)
    run = AuditRun(
        id=allocate(session, AuditRun, "AUD", site.id, now, site.timezone),
        site_id=site.id,
        kind=result.scope.kind,
        scope=canonical_json(result.scope.to_json()),
        at=now,
        by_id=by.id,
        checklists=canonical_json(result.checklists),
        parameters=canonical_json(result.parameters),
        covers=canonical_json({"seq": result.covers[0], "hash": result.covers[1]}),
        counts=canonical_json(result.counts),
        findings=canonical_json([f.to_record() for f in result.findings]),
    )
    ledger.write(session, run)
    anchor(
        session,
        source="audit",
        source_ref=run.id,
        head_seq=result.covers[0],
        head_hash=result.covers[1],
    )
    return run


def run_audit(
    *, session: Session, registry, by: User | Actor, scope: AuditScope, now: datetime
) -> AuditRun:
    """Judge a scope and record the run, in one session (a write session on SQLite)."""
    result = assess_scope(session=session, registry=registry, by=by, scope=scope)
    return record_run(session=session, by=by, result=result, now=now)


# --- reading runs ------------------------------------------------------------------------


@dataclass
class RunFinding:
    """One finding of a run, with its reviews (latest last) and whether it is new."""

    index: int
    doc: dict  # Finding.to_record()
    reviews: list[FindingReview]
    new: bool | None = None  # against the previous run of the same scope; None: no previous

    @property
    def finding(self) -> Finding:
        return Finding.from_record(self.doc)

    @property
    def decision(self) -> FindingReview | None:
        return self.reviews[-1] if self.reviews else None


@dataclass
class RunView:
    run: AuditRun
    scope: AuditScope
    findings: list[RunFinding]
    counts: dict
    checklists: list[dict]
    parameters: dict
    covers: dict  # {"seq", "hash"}
    previous: AuditRun | None = None
    resolved: list[dict] = field(default_factory=list)  # findings of the previous run gone now


def visible_run(session: Session, by: User | Actor, run_id: str) -> AuditRun:
    """A run the person may see (another site's is answered as missing)."""
    require(session, by, Permission.AUDIT, action=_l("read audit runs"))
    run = session.get(AuditRun, run_id)
    if run is None or not sees_site(session, by, run.site_id):
        raise NotFound(_("there is no audit run %(run)s", run=run_id))
    return run


def load_run(session: Session, by: User | Actor, run_id: str) -> RunView:
    """A run, its findings with their reviews, and what changed since the previous run."""
    run = visible_run(session, by, run_id)
    reviews: dict[int, list[FindingReview]] = {}
    for review in session.exec(
        select(FindingReview)
        .where(FindingReview.run_id == run.id)
        .order_by(col(FindingReview.ledger_seq))
    ):
        reviews.setdefault(int(review.finding), []).append(review)
    docs = json.loads(run.findings)
    previous = previous_run(session, run)
    before = {finding_key(d) for d in json.loads(previous.findings)} if previous else None
    now_keys = {finding_key(d) for d in docs}
    findings = [
        RunFinding(
            index=i,
            doc=doc,
            reviews=reviews.get(i, []),
            new=None if before is None else finding_key(doc) not in before,
        )
        for i, doc in enumerate(docs)
    ]
    resolved = (
        [d for d in json.loads(previous.findings) if finding_key(d) not in now_keys]
        if previous
        else []
    )
    return RunView(
        run=run,
        scope=AuditScope.of_run(run),
        findings=findings,
        counts=json.loads(run.counts),
        checklists=json.loads(run.checklists),
        parameters=json.loads(run.parameters),
        covers=json.loads(run.covers),
        previous=previous,
        resolved=resolved,
    )


def previous_run(session: Session, run: AuditRun) -> AuditRun | None:
    """The latest earlier run of the same site and scope."""
    return session.exec(
        select(AuditRun)
        .where(
            AuditRun.site_id == run.site_id,
            AuditRun.scope == run.scope,
            col(AuditRun.ledger_seq) < run.ledger_seq,
        )
        .order_by(col(AuditRun.ledger_seq).desc())
        .limit(1)
    ).first()


def runs_of(
    session: Session, by: User | Actor, site_id: str, *, limit: int = 100
) -> list[AuditRun]:
    """A site's runs, newest first."""
    require(session, by, Permission.AUDIT, site_id, action=_l("read audit runs"))
    return list(
        session.exec(
            select(AuditRun)
            .where(AuditRun.site_id == site_id)
            .order_by(col(AuditRun.ledger_seq).desc())
            .limit(limit)
        )
    )


def run_findings(run: AuditRun, registry=None) -> list[Finding]:
    """A run's findings, rebuilt from their codes and parameters (English messages, with
    the checklists' step titles when the registry is given)."""
    versions = {c["id"]: c["version"] for c in json.loads(run.checklists)}
    checklists: dict[str, object] = {}
    if registry is not None:
        for checklist_id, version in versions.items():
            try:
                checklists[checklist_id] = registry.get(checklist_id, version)
            except KeyError:
                checklists[checklist_id] = None
    docs = json.loads(run.findings)
    return [
        Finding.from_record(d, checklist=checklists.get(d["rule"].split(".", 1)[0])) for d in docs
    ]


def run_json(run: AuditRun, registry=None) -> dict:
    """A run as `qms audit run --format json` prints it: the findings in the contract
    format of `qms evaluate`, plus the run's id and the head it covers."""
    covers = json.loads(run.covers)
    counts = json.loads(run.counts)
    return {
        "run": run.id,
        "site": run.site_id,
        "kind": run.kind,
        "scope": json.loads(run.scope),
        "head": {"seq": covers["seq"], "hash": covers["hash"]},
        "checklists": json.loads(run.checklists),
        "counts": counts,
        "units": counts["units"],
        "findings": [f.to_json() for f in run_findings(run, registry)],
    }


# --- the pieces --------------------------------------------------------------------------


def sees_site(session: Session, by: User | Actor, site_id: str) -> bool:
    """Whether `by` belongs to the site (the system sees every site)."""
    if isinstance(by, Actor):
        if by.id is None:
            return True
        by = session.get(User, by.id)
    return by is not None and is_member(session, by, site_id)


def _day_start(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone_of(zone))


def units_in_scope(session: Session, scope: AuditScope, zone: str, head_seq: int) -> list[str]:
    """The ids of the units in scope, in id order (one query)."""
    units = select(Unit.id).where(Unit.site_id == scope.site_id, Unit.ledger_seq <= head_seq)
    if scope.checklists:
        units = units.where(col(Unit.checklist_id).in_(scope.checklists))
    if scope.wards:
        units = units.where(_ward_of(session).in_(scope.wards))
    if scope.units:
        units = units.where(col(Unit.id).in_(scope.units))
    if scope.date_from or scope.date_to:
        performed = select(StepRecord.unit_id).where(StepRecord.ledger_seq <= head_seq)
        if scope.date_from:
            performed = performed.where(
                StepRecord.performed_at >= _day_start(scope.date_from, zone)
            )
        if scope.date_to:
            performed = performed.where(
                StepRecord.performed_at < _day_start(scope.date_to + timedelta(days=1), zone)
            )
        units = units.where(col(Unit.id).in_(performed))
    return list(session.exec(units.order_by(col(Unit.id))))


def _checklist_in_force(registry, checklist_id: str, version: str) -> dict:
    try:
        checklist = registry.get(checklist_id, version)
    except KeyError:
        return {"id": checklist_id, "version": version, "installed": False}
    return {
        "id": checklist.id,
        "version": checklist.version,
        "digest": checklist.digest,
        "rules_digest": checklist.rules_digest,
        "site": checklist.site,
        "parameters": {name: p.value for name, p in sorted(checklist.parameters.items())},
        "installed": True,
    }


def parse_dates(date_from: str | None, date_to: str | None) -> tuple[date | None, date | None]:
    """Dates as a person types them (YYYY-MM-DD); a bad one is `Invalid`."""
    out = []
    for text in (date_from, date_to):
        if not text:
            out.append(None)
            continue
        try:
            out.append(date.fromisoformat(text.strip()))
        except ValueError:
            raise Invalid(
                _("%(text)s is not a date: write it as YYYY-MM-DD", text=repr(text))
            ) from None
    return out[0], out[1]


def scope_units(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
