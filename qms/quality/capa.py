"""CAPA: corrective and preventive actions for one or more deviations, and whether they worked.

A CAPA is its opening row plus signed, chained `CapaEvent`s; its state is derived. Each
action has an owner (any staff member of the site), a due date and evidence (text, and
files stored under the instance folder by their sha256, which the chained record
names). A quality officer other than the CAPA's owner approves its closure; the
effectiveness check falls due a site parameter's days later (90 by default). The check
re-runs the audit for the CAPA's rules at the site since closure (a chained run) and
shows whether a finding recurred; the checker records effective or not effective, and
not effective opens a new CAPA that follows this one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, func, select

from qms.accounts.access import is_member, require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission, permissions_of
from qms.core import ledger
from qms.core.canonical import canonical_json
from qms.core.clock import zone_of
from qms.core.errors import Conflict, Denied, Invalid, NotFound
from qms.core.i18n import _, _l
from qms.quality import audits
from qms.quality.deviations import (
    CLOSED,
    Signer,
    _sign,
    audience,
    get_deviation,
    signer_method,
)
from qms.quality.models import AuditRun, Capa, CapaEvent
from qms.quality.numbers import allocate
from qms.quality.parameters import site_parameters

OPEN, APPROVED, EFFECTIVE, NOT_EFFECTIVE = "open", "closed", "effective", "not_effective"
STATUS_LABELS = {
    OPEN: _l("open"),
    APPROVED: _l("closed, effectiveness check pending"),
    EFFECTIVE: _l("effective"),
    NOT_EFFECTIVE: _l("not effective"),
}
CHANGE_LABELS = {
    "action_added": _l("action added"),
    "evidence_added": _l("evidence added"),
    "action_done": _l("action done"),
    "closed": _l("closure approved"),
    "effectiveness_recorded": _l("effectiveness recorded"),
}
MAX_EVIDENCE_BYTES = 20 * 1024 * 1024


@dataclass
class ActionState:
    number: str
    title: str
    owner_id: int
    owner: str
    due_at: datetime
    evidence: list[dict] = field(default_factory=list)  # {"text", "files", "by", "at"}
    done_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        return self.done_at is None and self.due_at < now


@dataclass
class CapaState:
    capa: Capa
    events: list[CapaEvent]
    status: str = OPEN
    actions: dict[str, ActionState] = field(default_factory=dict)
    closed_at: datetime | None = None
    effectiveness_due: datetime | None = None
    effectiveness: dict | None = None  # {"effective", "run", "recurred", "next"}

    @property
    def id(self) -> str:
        return self.capa.id

    @property
    def deviations(self) -> list[str]:
        return json.loads(self.capa.deviations)

    @property
    def rules(self) -> list[str]:
        return json.loads(self.capa.rules)

    def check_due(self, now: datetime) -> bool:
        return (
            self.status == APPROVED
            and self.effectiveness_due is not None
            and (now >= self.effectiveness_due)
        )


def derive(capa: Capa, events: Sequence[CapaEvent], check_days: int) -> CapaState:
    state = CapaState(capa=capa, events=list(events))
    for event in events:
        details = json.loads(event.details)
        if event.change == "action_added":
            state.actions[event.action_no] = ActionState(
                number=event.action_no,
                title=details["title"],
                owner_id=details["owner_id"],
                owner=details["owner"],
                due_at=datetime.fromisoformat(details["due_at"]),
            )
        elif event.change == "evidence_added":
            state.actions[event.action_no].evidence.append(
                {**details, "by_id": event.by_id, "at": event.at}
            )
        elif event.change == "action_done":
            state.actions[event.action_no].done_at = event.at
        elif event.change == "closed":
            state.status = APPROVED
            state.closed_at = event.at
            state.effectiveness_due = event.at + timedelta(days=check_days)
        elif event.change == "effectiveness_recorded":
            state.status = EFFECTIVE if details["effective"] else NOT_EFFECTIVE
            state.effectiveness = details
    return state


def states_of(session: Session, capas: Sequence[Capa]) -> list[CapaState]:
    if not capas:
        return []
    ids = [c.id for c in capas]
    events: dict[str, list[CapaEvent]] = {i: [] for i in ids}
    for event in session.exec(
        select(CapaEvent).where(col(CapaEvent.capa_id).in_(ids)).order_by(col(CapaEvent.ledger_seq))
    ):
        events[event.capa_id].append(event)
    days = {
        site: site_parameters(session, site)["effectiveness_check_days"]
        for site in {c.site_id for c in capas}
    }
    return [derive(c, events[c.id], days[c.site_id]) for c in capas]


def get_capa(session: Session, user: User, capa_id: str) -> CapaState:
    """A CAPA this person may see (quality officers and staff of its site; regulators its
    status); another site's answers as missing."""
    capa = session.get(Capa, capa_id)
    if capa is None or audience(user) is None or not is_member(session, user, capa.site_id):
        raise NotFound(_("there is no CAPA %(capa)s", capa=capa_id))
    (state,) = states_of(session, [capa])
    return state


def capas_of(session: Session, user: User, site_id: str) -> list[CapaState]:
    if audience(user) is None:
        raise Denied(_("your role does not see CAPAs"))
    if not is_member(session, user, site_id):
        raise NotFound(_("there is no site %(site)s", site=site_id))
    rows = session.exec(
        select(Capa).where(Capa.site_id == site_id).order_by(col(Capa.ledger_seq).desc())
    ).all()
    return states_of(session, rows)


def capas_for(session: Session, deviation_id: str) -> list[CapaState]:
    """The CAPAs linked to a deviation."""
    rows = [
        c
        for c in session.exec(select(Capa).where(col(Capa.deviations).contains(deviation_id)))
        if deviation_id in json.loads(c.deviations)
    ]
    return states_of(session, rows)


# --- writing ---------------------------------------------------------------------------------


def open_capa(
    *,
    session: Session,
    by: User,
    site_id: str,
    title: str,
    description: str,
    deviations: Sequence[str],
    owner: str,
    signer: Signer,
    now: datetime,
    follows: str | None = None,
) -> Capa:
    """Open a CAPA for deviations of one site (owned by one of its quality officers)."""
    require(session, by, Permission.AUDIT, action=_l("open CAPAs"))
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(_("there is no site %(site)s", site=site_id))
    require(session, by, Permission.AUDIT, site_id, action=_l("open CAPAs"))
    title = (title or "").strip()
    if not title:
        raise Invalid(_("a CAPA needs a title"))
    ids = list(dict.fromkeys(d.strip() for d in deviations if d and d.strip()))
    if not ids:
        raise Invalid(_("a CAPA is linked to at least one deviation"))
    rules = set()
    for deviation_id in ids:
        state = get_deviation(session, by, deviation_id)
        if state.site_id != site_id:
            raise NotFound(_("there is no deviation %(deviation)s", deviation=deviation_id))
        if state.status == CLOSED and follows is None:
            raise Conflict(_("deviation %(deviation)s is closed", deviation=deviation_id))
        if state.deviation.rule:
            rules.add(state.deviation.rule)
    owner_user = _staff(session, owner, site_id, officer=True)
    _sign(session, by, signer, now)
    capa = Capa(
        id=allocate(session, Capa, "CAPA", site_id, now, site.timezone),
        site_id=site_id,
        title=title[:200],
        description=(description or "").strip(),
        deviations=canonical_json(ids),
        rules=canonical_json(sorted(rules)),
        owner_id=owner_user.id,
        follows_id=follows,
        opened_at=now,
        opened_by_id=by.id,
    )
    return ledger.write(session, capa)


def add_action(
    *,
    session: Session,
    by: User,
    capa_id: str,
    title: str,
    owner: str,
    due_at: datetime,
    signer: Signer,
    now: datetime,
) -> CapaEvent:
    ledger.lock(session)
    state = _for_officer(session, by, capa_id)
    _still_open(state)
    if not (title or "").strip():
        raise Invalid(_("an action needs a title: what is to be done"))
    if due_at.tzinfo is None or due_at <= now:
        raise Invalid(_("an action's due date is in the future"))
    owner_user = _staff(session, owner, state.capa.site_id, officer=False)
    number = str(len(state.actions) + 1)
    details = {
        "title": title.strip()[:200],
        "owner_id": owner_user.id,
        "owner": owner_user.username,
        "due_at": due_at.isoformat(),
    }
    return _write(session, by, state, "action_added", signer, now, number, None, details)


def add_evidence(
    *,
    session: Session,
    by: User,
    capa_id: str,
    action: str,
    text: str,
    files: Sequence[tuple[str, bytes]] = (),
    store: Path,
    signer: Signer,
    now: datetime,
) -> CapaEvent:
    """Evidence on an action, by its owner or a quality officer: text and files, each file
    kept under `store` (the instance folder's evidence/) by its sha256."""
    ledger.lock(session)
    state = get_capa(session, by, capa_id)
    item = _action(state, action)
    if by.id != item.owner_id:
        require(session, by, Permission.AUDIT, state.capa.site_id, action=_l("add evidence"))
    _still_open(state)
    if item.done_at is not None:
        raise Conflict(_("action %(n)s is done", n=action))
    text = (text or "").strip()
    if not text and not files:
        raise Invalid(_("evidence is a text, a file, or both"))
    stored = []
    for name, content in files:
        if len(content) > MAX_EVIDENCE_BYTES:
            raise Invalid(_("a file of evidence is at most 20 MB"))
        digest = hashlib.sha256(content).hexdigest()
        stored.append({"name": _safe_name(name), "sha256": digest, "bytes": len(content)})
    _sign(session, by, signer, now)
    for (_name, content), doc in zip(files, stored, strict=True):
        path = evidence_path(store, doc["sha256"])
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".part")
            temporary.write_bytes(content)
            temporary.replace(path)
    return _write(
        session,
        by,
        state,
        "evidence_added",
        signer,
        now,
        action,
        None,
        {"text": text, "files": stored},
    )


def complete_action(
    *, session: Session, by: User, capa_id: str, action: str, signer: Signer, now: datetime
) -> CapaEvent:
    ledger.lock(session)
    state = get_capa(session, by, capa_id)
    item = _action(state, action)
    if by.id != item.owner_id:
        require(session, by, Permission.AUDIT, state.capa.site_id, action=_l("complete actions"))
    _still_open(state)
    if item.done_at is not None:
        raise Conflict(_("action %(n)s is done", n=action))
    if not item.evidence:
        raise Invalid(_("an action is done when its evidence is recorded"))
    return _write(session, by, state, "action_done", signer, now, action, None, {})


def approve_closure(
    *,
    session: Session,
    by: User,
    capa_id: str,
    signer: Signer,
    now: datetime,
    reason: str | None = None,
) -> CapaEvent:
    """A quality officer other than the CAPA's owner approves its closure."""
    ledger.lock(session)
    state = _for_officer(session, by, capa_id)
    _still_open(state)
    if by.id == state.capa.owner_id:
        raise Denied(_("a CAPA's closure is approved by a quality officer other than its owner"))
    if not state.actions:
        raise Conflict(_("a CAPA without actions cannot be closed"))
    undone = [n for n, a in state.actions.items() if a.done_at is None]
    if undone:
        raise Conflict(_("actions not done yet: %(actions)s", actions=_(", ").join(undone)))
    return _write(session, by, state, "closed", signer, now, None, reason, {})


def prepare_effectiveness(
    *, session: Session, registry, by: User, capa_id: str, now: datetime
) -> AuditRun:
    """Re-run the audit for the CAPA's rules at its site since closure (a chained run)."""
    state = _for_officer(session, by, capa_id)
    if not state.check_due(now):
        raise Conflict(
            _("the effectiveness check of %(capa)s is not due yet", capa=state.id)
            if state.status == APPROVED
            else _("the effectiveness check comes after the CAPA is closed")
        )
    return _prepare(session, registry, by, state, now)


def _prepare(session: Session, registry, by, state: CapaState, now: datetime) -> AuditRun:
    site = session.get(Site, state.capa.site_id)
    zone = zone_of(site.timezone)
    scope = audits.AuditScope(
        site_id=site.id,
        date_from=state.closed_at.astimezone(zone).date(),
        date_to=now.astimezone(zone).date(),
        checklists=tuple(sorted({r.split(".", 1)[0] for r in state.rules})),
        kind="effectiveness",
        capa=state.id,
    )
    return audits.run_audit(session=session, registry=registry, by=by, scope=scope, now=now)


def effectiveness_runs(session: Session, state: CapaState) -> list[AuditRun]:
    """The runs prepared for this CAPA's effectiveness check, newest first."""
    rows = session.exec(
        select(AuditRun)
        .where(AuditRun.site_id == state.capa.site_id, AuditRun.kind == "effectiveness")
        .order_by(col(AuditRun.ledger_seq).desc())
    )
    return [r for r in rows if _prepares(state, r)]


def _prepares(state: CapaState, run: AuditRun) -> bool:
    """Whether a run is this CAPA's effectiveness check, made once the check was due."""
    return (
        run.kind == "effectiveness"
        and run.site_id == state.capa.site_id
        and json.loads(run.scope).get("capa") == state.id
        and state.effectiveness_due is not None
        and run.at >= state.effectiveness_due
    )


def _still_closed_unchecked(state: CapaState) -> None:
    if state.status == OPEN:
        raise Conflict(_("the effectiveness check comes after the CAPA is closed"))
    if state.status != APPROVED:
        raise Conflict(_("the effectiveness of %(capa)s is recorded already", capa=state.id))


def prepare_due(*, session: Session, registry, by, now: datetime) -> list[AuditRun]:
    """Prepare every effectiveness check due at `now` and not prepared yet (the command
    `qms audit effectiveness-due --now`, or the scheduler)."""
    require(session, by, Permission.AUDIT, action=_l("prepare effectiveness checks"))
    rows = session.exec(select(Capa).order_by(col(Capa.ledger_seq))).all()
    return [
        _prepare(session, registry, by, state, now)
        for state in states_of(session, rows)
        if state.check_due(now) and not effectiveness_runs(session, state)
    ]


def recurred(state: CapaState, run: AuditRun) -> list[dict]:
    """The findings of a run that are the CAPA's rules again."""
    return [d for d in json.loads(run.findings) if d["rule"] in state.rules]


def record_effectiveness(
    *,
    session: Session,
    by: User,
    capa_id: str,
    run_id: str,
    effective: bool,
    reason: str | None,
    signer: Signer,
    now: datetime,
) -> CapaEvent:
    """The checker's verdict, with the run it read; not effective opens a follow-up CAPA."""
    ledger.lock(session)
    state = _for_officer(session, by, capa_id)
    _still_closed_unchecked(state)
    if not (run_id or "").strip():  # no run named: the form, not a missing object
        raise Invalid(_("record the verdict from this CAPA's effectiveness run"))
    run = audits.visible_run(session, by, run_id)
    if not _prepares(state, run):
        raise Invalid(_("record the verdict from this CAPA's effectiveness run"))
    reason = (reason or "").strip() or None
    if not effective and reason is None:
        raise Invalid(_("a CAPA found not effective needs a reason"))
    found = recurred(state, run)
    details = {"effective": bool(effective), "run": run.id, "recurred": len(found)}
    if not effective:
        follow = open_capa(
            session=session,
            by=by,
            site_id=state.capa.site_id,
            title=state.capa.title,
            description=reason,  # why the one it follows was not effective
            deviations=state.deviations,
            owner=_username(session, state.capa.owner_id),
            signer=signer,
            now=now,
            follows=state.id,
        )
        details["next"] = follow.id
    return _write(session, by, state, "effectiveness_recorded", signer, now, None, reason, details)


def overdue_actions(
    session: Session, site_ids: Sequence[str], now: datetime
) -> list[tuple[CapaState, ActionState]]:
    """Actions not done past their due date at these sites."""
    rows = session.exec(select(Capa).where(col(Capa.site_id).in_(list(site_ids)))).all()
    return [
        (state, action)
        for state in states_of(session, rows)
        if state.status == OPEN
        for action in state.actions.values()
        if action.overdue(now)
    ]


def evidence_path(store: Path, sha256: str) -> Path:
    return store / sha256[:2] / sha256


# --- the pieces ------------------------------------------------------------------------------


def _write(session, by, state, change, signer, now, action_no, reason, details) -> CapaEvent:
    count = session.exec(
        select(func.count()).select_from(CapaEvent).where(CapaEvent.capa_id == state.id)
    ).one()
    event = CapaEvent(
        id=f"{state.id}/{count + 1}",
        capa_id=state.id,
        action_no=action_no,
        change=change,
        at=now,
        by_id=by.id,
        method=signer_method(signer),
        reason=reason,
        details=canonical_json(details),
    )
    if change not in ("evidence_added",):
        _sign(session, by, signer, now)
    return ledger.write(session, event)


def _for_officer(session: Session, by: User, capa_id: str) -> CapaState:
    state = get_capa(session, by, capa_id)
    require(session, by, Permission.AUDIT, state.capa.site_id, action=_l("change CAPAs"))
    return state


def _still_open(state: CapaState) -> None:
    if state.status != OPEN:
        raise Conflict(_("the CAPA %(capa)s is closed", capa=state.id))


def _action(state: CapaState, number: str) -> ActionState:
    item = state.actions.get(str(number))
    if item is None:
        raise NotFound(_("the CAPA %(capa)s has no action %(n)s", capa=state.id, n=number))
    return item


def _staff(session: Session, username: str, site_id: str, *, officer: bool) -> User:
    user = session.exec(select(User).where(User.username == (username or "").strip())).first()
    if user is None or not user.active or not is_member(session, user, site_id):
        raise Invalid(
            _(
                "there is no active user %(user)s at site %(site)s",
                user=repr(username),
                site=site_id,
            )
        )
    granted = permissions_of(user.role)
    if officer and Permission.AUDIT not in granted:
        raise Invalid(_("the owner of a CAPA is a quality officer"))
    if not officer and not (Permission.LOG_STEPS in granted or Permission.AUDIT in granted):
        raise Invalid(_("an action is owned by a member of staff (ward, pharmacy or quality)"))
    return user


def _username(session: Session, user_id: int) -> str:
    return session.get(User, user_id).username


def _safe_name(name: str) -> str:
    base = re.sub(r"[^\w.\- ]", "_", Path(name or "file").name).strip() or "file"
    return base[:120]
