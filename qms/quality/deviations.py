"""Deviations: opened by hand, their workflow as signed events, the state derived from them.

Workflow: open -> investigation -> CAPA required, or no CAPA (with a rationale) -> closed.
Every change is a `DeviationEvent`, signed (password or fresh session) and chained; the
state (status, classification, owner, due date, investigation) is computed from the
opening row and the events in ledger order, never stored. Closing is approved by a
quality officer other than the owner; a due date moves only when an extension request
(with a reason) is approved by a quality officer other than the one who asked and the
owner. Who sees what: quality officers every deviation of their sites; ward and pharmacy
staff those of their sites (their units); regulators only confirmed ones (opened or
taken into investigation by a quality officer), with no patient reference; admins none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from qms.accounts.access import is_member, require
from qms.accounts.models import Site, User
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout
from qms.checklists.language import Registry
from qms.checklists.language.model import in_language
from qms.core import ledger
from qms.core.canonical import canonical_json
from qms.core.errors import Conflict, Denied, Invalid, NotFound
from qms.core.i18n import _, _l
from qms.quality.models import CLASSIFICATIONS, Capa, CapaEvent, Deviation, DeviationEvent
from qms.quality.opening import write_deviation
from qms.quality.parameters import site_parameters
from qms.records.models import Unit
from qms.records.signatures import Credential, PasswordEntry, authenticate_signer

OPEN, INVESTIGATION, CAPA_REQUIRED, NO_CAPA, CLOSED = (
    "open",
    "investigation",
    "capa_required",
    "no_capa",
    "closed",
)
STATUS_LABELS = {
    OPEN: _l("open"),
    INVESTIGATION: _l("investigation"),
    CAPA_REQUIRED: _l("CAPA required"),
    NO_CAPA: _l("no CAPA needed"),
    CLOSED: _l("closed"),
}
CLASSIFICATION_LABELS = {
    "critical": _l("critical"),
    "major": _l("major"),
    "minor": _l("minor"),
}
ACTION_LABELS = {
    "classified": _l("classification changed"),
    "assigned": _l("owner assigned"),
    "investigation_started": _l("investigation started"),
    "investigation_recorded": _l("investigation recorded"),
    "capa_required": _l("CAPA required"),
    "no_capa": _l("no CAPA needed"),
    "extension_requested": _l("extension requested"),
    "extension_approved": _l("extension approved"),
    "extension_rejected": _l("extension rejected"),
    "linked": _l("finding linked"),
    "closed": _l("closure approved"),
}
ROOT_CAUSE_METHODS = ("five_whys", "fishbone")
FISHBONE = ("people", "methods", "machines", "materials", "measurement", "environment")
INVESTIGATION_FIELDS = (
    "immediate_action",
    "patient_impact",
    "product_impact",
    "root_cause_method",
    "conclusion",
)


@dataclass(frozen=True)
class Signer:
    """How the person acting proves who they are for this signed change."""

    credential: Credential
    freshness_minutes: int = 5
    lockout: Lockout | None = None


@dataclass
class DeviationState:
    """What a deviation is now, computed from its opening and its events."""

    deviation: Deviation
    events: list[DeviationEvent]
    status: str = OPEN
    classification: str = ""
    owner_id: int | None = None
    due_at: datetime | None = None
    investigation: dict = field(default_factory=dict)
    pending_extension: DeviationEvent | None = None
    confirmed: bool = False  # by a quality officer (regulators see confirmed ones)
    closed_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.deviation.id

    @property
    def site_id(self) -> str:
        return self.deviation.site_id

    def overdue(self, now: datetime) -> bool:
        return self.status != CLOSED and self.due_at is not None and self.due_at < now

    def age_days(self, now: datetime) -> int:
        return max(0, (now - self.deviation.opened_at).days)


def derive(
    deviation: Deviation, events: Sequence[DeviationEvent], officers: set[int]
) -> DeviationState:
    """The state of a deviation from its history (events in ledger order).

    `officers` are the ids of the quality officers among the people named (for `confirmed`).
    """
    state = DeviationState(
        deviation=deviation,
        events=list(events),
        classification=deviation.classification,
        due_at=deviation.due_at,
        confirmed=deviation.source != "step" and deviation.opened_by_id in officers,
    )
    for event in events:
        details = json.loads(event.details)
        action = event.action
        if action == "classified":
            state.classification = details["classification"]
        elif action == "assigned":
            state.owner_id = details["owner_id"]
        elif action == "investigation_started":
            state.status = INVESTIGATION
            state.confirmed = state.confirmed or event.by_id in officers
        elif action == "investigation_recorded":
            state.investigation.update(details)
        elif action == "capa_required":
            state.status = CAPA_REQUIRED
        elif action == "no_capa":
            state.status = NO_CAPA
        elif action == "extension_requested":
            state.pending_extension = event
        elif action == "extension_approved":
            state.due_at = datetime.fromisoformat(details["due_at"])
            state.pending_extension = None
        elif action == "extension_rejected":
            state.pending_extension = None
        elif action == "closed":
            state.status = CLOSED
            state.closed_at = event.at
    return state


# --- who sees what ------------------------------------------------------------------------


def title_in(deviation: Deviation, registry: Registry, lang: str | None) -> str:
    """A deviation's title in the reader's language.

    A deviation opened by a finding (a stored step's or an audit's) is stored with its
    rule's id as its title: a code, shown as what the rule says in the reader's language,
    from the checklist the rule belongs to. A title someone typed is shown as typed, and
    so is a rule no checklist of this installation knows any more."""
    rule_id = deviation.rule
    if not rule_id or deviation.title != rule_id:
        return deviation.title
    try:
        says = registry.get(rule_id.split(".", 1)[0]).rule(rule_id).says
    except KeyError:
        return deviation.title
    return in_language(says, lang) or deviation.title


def audience(user: User) -> str | None:
    """officer (runs the quality system), staff (ward, pharmacy; admins read as staff),
    regulator, or None (no role that reads records or reports)."""
    granted = permissions_of(user.role)
    if Permission.AUDIT in granted:
        return "officer"
    if Permission.LOG_STEPS in granted or Permission.VIEW_RECORDS in granted:
        # Admins see the units and step records of their sites: their deviations and CAPA too.
        return "staff"
    if Permission.VIEW_REPORTS in granted and Permission.VIEW_RECORDS not in granted:
        return "regulator"
    return None


def _officer_ids(session: Session, ids: set[int | None]) -> set[int]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return set()
    rows = session.exec(select(User.id, User.role).where(col(User.id).in_(wanted)))
    return {i for i, role in rows if Permission.AUDIT in permissions_of(role)}


def states_of(session: Session, deviations: Sequence[Deviation]) -> list[DeviationState]:
    """The states of many deviations, in three queries."""
    if not deviations:
        return []
    ids = [d.id for d in deviations]
    events: dict[str, list[DeviationEvent]] = {i: [] for i in ids}
    for start in range(0, len(ids), 1000):
        for event in session.exec(
            select(DeviationEvent)
            .where(col(DeviationEvent.deviation_id).in_(ids[start : start + 1000]))
            .order_by(col(DeviationEvent.ledger_seq))
        ):
            events[event.deviation_id].append(event)
    people = {d.opened_by_id for d in deviations} | {
        e.by_id for evs in events.values() for e in evs
    }
    officers = _officer_ids(session, people)
    return [derive(d, events[d.id], officers) for d in deviations]


def may_see(session: Session, user: User, state: DeviationState) -> bool:
    seen_by = audience(user)
    if seen_by is None or not is_member(session, user, state.site_id):
        return False
    return seen_by != "regulator" or state.confirmed


def get_deviation(session: Session, user: User, deviation_id: str) -> DeviationState:
    """A deviation this person may see; another site's (or one hidden) answers as missing."""
    deviation = session.get(Deviation, deviation_id)
    if deviation is not None:
        (state,) = states_of(session, [deviation])
        if may_see(session, user, state):
            return state
    raise NotFound(_("there is no deviation %(deviation)s", deviation=deviation_id))


def deviations_of(
    session: Session, user: User, site_id: str, *, status: str | None = None
) -> list[DeviationState]:
    """A site's deviations this person may see, newest first."""
    if audience(user) is None:
        raise Denied(_("your role does not see deviations"))
    if not is_member(session, user, site_id):
        raise NotFound(_("there is no site %(site)s", site=site_id))
    rows = session.exec(
        select(Deviation)
        .where(Deviation.site_id == site_id)
        .order_by(col(Deviation.ledger_seq).desc())
    ).all()
    states = [s for s in states_of(session, rows) if may_see(session, user, s)]
    if status is not None:
        states = [s for s in states if s.status == status]
    return states


def recurrence(session: Session, state: DeviationState) -> list[Deviation]:
    """Earlier deviations of the same rule at the same site in the recurrence period."""
    deviation = state.deviation
    if deviation.rule is None:
        return []
    months = site_parameters(session, deviation.site_id)["recurrence_months"]
    since = deviation.opened_at - timedelta(days=round(months * 30.44))
    return list(
        session.exec(
            select(Deviation)
            .where(
                Deviation.site_id == deviation.site_id,
                Deviation.rule == deviation.rule,
                col(Deviation.ledger_seq) < deviation.ledger_seq,
                Deviation.opened_at >= since,
            )
            .order_by(col(Deviation.ledger_seq).desc())
        )
    )


# --- opening by hand ------------------------------------------------------------------------


def open_deviation(
    *,
    session: Session,
    by: User,
    site_id: str,
    title: str,
    description: str,
    classification: str,
    units: Sequence[str] = (),
    records: Sequence[str] = (),
    signer: Signer,
    now: datetime,
) -> Deviation:
    """Open a deviation for an event the records do not show (a dropped bag...)."""
    require(session, by, Permission.AUDIT, action=_l("open deviations"))
    if session.get(Site, site_id) is None:
        raise NotFound(_("there is no site %(site)s", site=site_id))
    require(session, by, Permission.AUDIT, site_id, action=_l("open deviations"))
    _classification(classification)
    title = (title or "").strip()
    if not title:
        raise Invalid(_("a deviation needs a title: what happened, in a few words"))
    if not (description or "").strip():
        raise Invalid(_("a deviation needs a description of what happened"))
    _sign(session, by, signer, now)
    return write_deviation(
        session=session,
        site_id=site_id,
        source="manual",
        classification=classification,
        title=title[:200],
        description=description.strip(),
        units=_unit_ids(session, site_id, units),
        records=[r.strip() for r in records if r.strip()],
        findings=[],
        opened_by=by,
        now=now,
    )


def _unit_ids(session: Session, site_id: str, units: Sequence[str]) -> list[str]:
    ids = [u.strip() for u in units if u and u.strip()]
    if not ids:
        return []
    found = set(session.exec(select(Unit.id).where(col(Unit.id).in_(ids), Unit.site_id == site_id)))
    missing = [u for u in ids if u not in found]
    if missing:
        raise Invalid(
            _("site %(site)s has no unit %(units)s", site=site_id, units=_(", ").join(missing))
        )
    return ids


# --- the workflow ----------------------------------------------------------------------------


def record_event(
    *,
    session: Session,
    by: User,
    deviation_id: str,
    action: str,
    signer: Signer,
    now: datetime,
    reason: str | None = None,
    details: dict | None = None,
) -> DeviationEvent:
    """One signed change of a deviation, checked against its state (the caller commits).

    Actions: classified {classification}, assigned {owner}, investigation_started,
    investigation_recorded {immediate_action, patient_impact, product_impact,
    root_cause_method, whys | fishbone, conclusion}, capa_required, no_capa (reason),
    extension_requested {due_at} (reason), extension_approved / extension_rejected,
    linked {run, finding}, closed.
    """
    ledger.lock(session)  # the state is read and changed under the lock
    state = get_deviation(session, by, deviation_id)
    require(session, by, Permission.AUDIT, state.site_id, action=_l("change deviations"))
    reason = (reason or "").strip() or None
    details = dict(details or {})
    doc = _checked(session, state, by, action, reason, details, now)
    _sign(session, by, signer, now)
    count = session.exec(
        select(func.count())
        .select_from(DeviationEvent)
        .where(DeviationEvent.deviation_id == deviation_id)
    ).one()
    event = DeviationEvent(
        id=f"{deviation_id}/{count + 1}",
        deviation_id=deviation_id,
        action=action,
        at=now,
        by_id=by.id,
        method=signer_method(signer),
        reason=reason,
        details=canonical_json(doc),
    )
    return ledger.write(session, event)


def open_capas_of(session: Session, deviation_id: str) -> list[str]:
    """The CAPAs linked to a deviation that are not closed yet."""
    linked = [
        c.id
        for c in session.exec(select(Capa).where(col(Capa.deviations).contains(deviation_id)))
        if deviation_id in json.loads(c.deviations)
    ]
    if not linked:
        return []
    closed = set(
        session.exec(
            select(CapaEvent.capa_id).where(
                col(CapaEvent.capa_id).in_(linked), CapaEvent.change == "closed"
            )
        )
    )
    return [c for c in linked if c not in closed]


def signer_method(signer: Signer) -> str:
    return "password" if isinstance(signer.credential, PasswordEntry) else "session"


def _sign(session: Session, by: User, signer: Signer, now: datetime) -> str:
    return authenticate_signer(
        session=session,
        user=by,
        credential=signer.credential,
        freshness_minutes=signer.freshness_minutes,
        now=now,
        lockout=signer.lockout,
    )


def _classification(value: str) -> str:
    if value not in CLASSIFICATIONS:
        raise Invalid(
            _(
                "a classification is one of %(choices)s, not %(value)s",
                choices=_(", ").join(str(CLASSIFICATION_LABELS[c]) for c in CLASSIFICATIONS),
                value=repr(value),
            )
        )
    return value


def _need_reason(reason: str | None, what: str) -> None:
    if not reason:
        raise Invalid(_("%(what)s needs a reason", what=what))


def _not_closed(state: DeviationState) -> None:
    if state.status == CLOSED:
        raise Conflict(_("deviation %(deviation)s is closed", deviation=state.id))


def _checked(
    session: Session,
    state: DeviationState,
    by: User,
    action: str,
    reason: str | None,
    details: dict,
    now: datetime,
) -> dict:
    """The event's details once the action is allowed in this state by this person."""
    if action not in ACTION_LABELS:
        raise Invalid(_("unknown change %(action)s", action=repr(action)))
    if action != "linked":
        _not_closed(state)
    if action == "classified":
        new = _classification(details.get("classification", ""))
        if new == state.classification:
            raise Conflict(_("the deviation is already %(class)s", **{"class": new}))
        _need_reason(reason, _("changing the classification"))
        return {"classification": new, "was": state.classification}
    if action == "assigned":
        owner = session.exec(
            select(User).where(User.username == (details.get("owner") or "").strip())
        ).first()
        if owner is None or not owner.active:
            raise Invalid(_("there is no active user %(user)s", user=repr(details.get("owner"))))
        if Permission.AUDIT not in permissions_of(owner.role) or not is_member(
            session, owner, state.site_id
        ):
            raise Invalid(
                _(
                    "the owner of a deviation is a quality officer of site %(site)s",
                    site=state.site_id,
                )
            )
        return {"owner_id": owner.id, "owner": owner.username}
    if action == "investigation_started":
        if state.status != OPEN:
            raise Conflict(_("the investigation has already started"))
        if state.owner_id is None:
            raise Conflict(_("assign an owner before the investigation starts"))
        return {}
    if action == "investigation_recorded":
        if state.status not in (INVESTIGATION, OPEN):
            raise Conflict(_("the investigation is over: its conclusion is recorded"))
        doc = {k: str(details[k]).strip() for k in INVESTIGATION_FIELDS if details.get(k)}
        method = doc.get("root_cause_method")
        if method is not None and method not in ROOT_CAUSE_METHODS:
            raise Invalid(_("a root cause is found by five whys or a fishbone"))
        whys = [str(w).strip() for w in details.get("whys", []) if str(w).strip()]
        if whys:
            doc["whys"] = whys[:5]
        bones = {
            k: str(v).strip()
            for k, v in (details.get("fishbone") or {}).items()
            if k in FISHBONE and str(v).strip()
        }
        if bones:
            doc["fishbone"] = bones
        if not doc:
            raise Invalid(_("nothing to record: fill in at least one part of the investigation"))
        return doc
    if action in ("capa_required", "no_capa"):
        if state.status not in (INVESTIGATION, CAPA_REQUIRED, NO_CAPA):
            raise Conflict(_("start the investigation first"))
        if action == "no_capa":
            _need_reason(reason, _("deciding that no CAPA is needed"))
        return {}
    if action == "extension_requested":
        if state.pending_extension is not None:
            raise Conflict(_("an extension request is already waiting for approval"))
        _need_reason(reason, _("an extension request"))
        try:
            due = datetime.fromisoformat(str(details.get("due_at")))
        except ValueError:
            raise Invalid(_("give the new due date")) from None
        if due.tzinfo is None:
            raise Invalid(_("give the new due date")) from None
        if state.due_at is not None and due <= state.due_at:
            raise Invalid(_("an extension moves the due date later"))
        return {"due_at": due.isoformat(), "was": state.due_at.isoformat()}
    if action in ("extension_approved", "extension_rejected"):
        pending = state.pending_extension
        if pending is None:
            raise Conflict(_("no extension request is waiting"))
        if by.id in (pending.by_id, state.owner_id):
            raise Denied(
                _(
                    "an extension is approved by a quality officer other than the owner and the one who asked"
                )
            )
        if action == "extension_rejected":
            _need_reason(reason, _("rejecting an extension"))
        return {"request": pending.id, "due_at": json.loads(pending.details)["due_at"]}
    if action == "linked":  # written by a finding's review, which names both
        run, finding = details.get("run"), details.get("finding")
        if not run or not isinstance(finding, int):
            raise Invalid(_("a finding is linked from its audit run's review"))
        return {"run": str(run), "finding": finding}
    # closed: the approval of a quality officer other than the owner
    if state.status not in (CAPA_REQUIRED, NO_CAPA):
        raise Conflict(_("a deviation is closed after its CAPA decision"))
    if state.owner_id is None or by.id == state.owner_id:
        raise Denied(_("closing a deviation is approved by a quality officer other than its owner"))
    if state.status == CAPA_REQUIRED:
        open_capas = open_capas_of(session, state.id)
        if open_capas:
            raise Conflict(_("close its CAPA first: %(capas)s", capas=_(", ").join(open_capas)))
    return {}
