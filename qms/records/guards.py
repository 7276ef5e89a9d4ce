"""The checks every path that stores a record runs, with the same messages.

Who may record or correct a step (role, the checklist's step roles, site), who may
witness, the time (not in the future, not before registration), the field values
(typed and normalised), the reason a rule-breaking record needs, that the unit is open
and that a once-only step is not recorded twice. Each raises a `QmsError` subclass;
nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import has_request_context
from sqlmodel import Session

from qms.accounts.access import is_member, require, require_visible, role_name, role_names
from qms.accounts.models import User
from qms.accounts.roles import Permission, permissions_of
from qms.accounts.service import Lockout
from qms.checklists.engine.messages import render
from qms.checklists.facts import Finding, StepFacts
from qms.core.canonical import CanonicalError, normalise
from qms.core.clock import CLOCK_SKEW, local
from qms.core.errors import Conflict, Denied, FindingsNeedReason, Invalid, SignatureError
from qms.core.i18n import _, _l, checklist_text_key, format_datetime, ngettext
from qms.records.fields import field_label, parse_field_values, step_title
from qms.records.models import IN_PROGRESS, STATUS_LABELS, Unit
from qms.records.queries import status_of
from qms.records.signatures import (
    Credential,
    WitnessCredential,
    authenticate_signer,
    authenticate_witness,
)
from qms.records.wards import refuse_witness_off_ward, require_on_ward
from qms.storage.models import Equipment

PERFORMER_MEANINGS = ("performed", "verified")
# The severities of findings as a message names them, in the reader's language.
SEVERITY_LABELS = {"critical": _l("critical"), "major": _l("major"), "minor": _l("minor")}


def _when(moment: datetime, site_zone: str | None) -> str:
    """A time in a message: the site's zone, the reader's locale, to the second."""
    return format_datetime(moment, zone=site_zone or "UTC", seconds=True)


def check_performer(session: Session, user: User, unit: Unit, step_def) -> None:
    """Who may record a step: the permission, the checklist's roles for it, the unit's site."""
    require(session, user, Permission.LOG_STEPS, action=_l("record steps"))
    require_visible(session, user, unit.site_id, _("there is no unit %(unit)s", unit=unit.id))
    if step_def.roles and user.role not in step_def.roles:
        raise Denied(
            _(
                "%(title)s is recorded by %(roles)s, not by a %(role)s",
                title=step_title(step_def),
                roles=role_names(step_def.roles),
                role=role_name(user.role),
            )
        )
    # Membership of the unit's site was checked by require_visible (a user's sites).
    require_on_ward(session, user, unit)


def check_corrector(session: Session, user: User, unit: Unit, step_def) -> None:
    """Who may correct: someone who may record the step at the unit's site, or quality."""
    require(session, user, None, action=_l("correct records"))
    require_visible(session, user, unit.site_id, _("there is no unit %(unit)s", unit=unit.id))
    granted = permissions_of(user.role)
    may_record = Permission.LOG_STEPS in granted and (
        not step_def.roles or user.role in step_def.roles
    )
    if not (may_record or Permission.AUDIT in granted):
        raise Denied(
            _(
                "a %(role)s may not correct %(title)s: it is corrected by %(roles)s "
                "or a quality officer",
                role=role_name(user.role),
                title=step_title(step_def),
                roles=role_names(step_def.roles),
            )
        )
    require(session, user, None, unit.site_id)
    require_on_ward(session, user, unit)


def check_witness(session: Session, witness: User, performer: User, unit: Unit, step_def) -> None:
    if witness.id == performer.id:
        raise SignatureError(
            _("the witness must be a different person from the one who performed the step")
        )
    if Permission.WITNESS not in permissions_of(witness.role):
        raise SignatureError(
            _(
                "%(username)s is a %(role)s and may not witness steps",
                username=witness.username,
                role=role_name(witness.role),
            )
        )
    if step_def.witness_roles and witness.role not in step_def.witness_roles:
        raise SignatureError(
            _(
                "%(title)s is witnessed by %(roles)s; %(username)s is a %(role)s",
                title=step_title(step_def),
                roles=role_names(step_def.witness_roles),
                username=witness.username,
                role=role_name(witness.role),
            )
        )
    if not is_member(session, witness, unit.site_id):
        raise SignatureError(
            _(
                "the witness %(username)s does not belong to site %(site)s",
                username=witness.username,
                site=unit.site_id,
            )
        )
    refuse_witness_off_ward(session, witness, unit)


def equipment_check(session: Session, site_id: str, *, in_use: bool) -> Callable[[str], bool]:
    """Whether an equipment id names a device of the site (and, for new records, in use)."""

    def exists(equipment_id: str) -> bool:
        equipment = session.get(Equipment, equipment_id)
        return (
            equipment is not None
            and equipment.site_id == site_id
            and (equipment.active or not in_use)
        )

    return exists


def clean_fields(
    step_def,
    fields: Mapping[str, Any],
    *,
    equipment_exists: Callable[[str], bool],
    partial: bool = False,
) -> dict[str, Any]:
    """Drop empty values, refuse unknown or missing required fields, parse each value as its
    field's type (numbers, yes/no, choices, scanned identifiers, equipment), normalise."""
    values = {k: v for k, v in dict(fields or {}).items() if v is not None and v != ""}
    unknown = sorted(set(values) - set(step_def.fields))
    if unknown:
        raise Invalid(
            _(
                "%(title)s has no field %(unknown)s; its fields: %(fields)s",
                title=step_title(step_def),
                unknown=_(", ").join(unknown),
                fields=_(", ").join(field_label(step_def, n) for n in step_def.fields) or _("none"),
            )
        )
    if not partial:
        missing = [n for n, f in step_def.fields.items() if f.required and n not in values]
        if missing:
            raise Invalid(
                ngettext(
                    "%(title)s: %(fields)s is required",
                    "%(title)s: %(fields)s are required",
                    len(missing),
                    title=step_title(step_def),
                    fields=_(", ").join(field_label(step_def, n) for n in missing),
                )
            )
    values = parse_field_values(step_def, values, equipment_exists=equipment_exists)
    try:
        return normalise(values)
    except CanonicalError as exc:
        raise Invalid(f"{step_title(step_def)}: {exc}") from None


def check_time(performed_at: datetime, unit: Unit, site_zone: str | None, now: datetime) -> None:
    if performed_at.tzinfo is None or performed_at.utcoffset() is None:
        raise Invalid(_("the time of the step must carry a UTC offset"))
    if performed_at > now + CLOCK_SKEW:
        raise Invalid(
            _(
                "the step is dated %(time)s, in the future (it is now %(now)s): record a step "
                "once it has happened",
                time=_when(performed_at, site_zone),
                now=_when(now, site_zone),
            )
        )
    if performed_at < unit.registered_at:
        # The fixed form (clock.local) that tests/records/test_log_step.py matches.
        raise Invalid(
            _(
                "the step is dated %(time)s, before unit %(unit)s was registered (%(registered)s)",
                time=local(performed_at, site_zone),
                unit=unit.id,
                registered=local(unit.registered_at, site_zone),
            )
        )


def authenticate_signers(
    *,
    session: Session,
    by: User,
    credential: Credential,
    witness: WitnessCredential | None,
    freshness_minutes: int,
    now: datetime,
    lockout: Lockout | None,
) -> tuple[str, User | None]:
    """The signer's proof, and the witness's own credentials when a witness co-signs.

    Returns the signer's signature method and the witness (None when there is none).
    """
    method = authenticate_signer(
        session=session,
        user=by,
        credential=credential,
        freshness_minutes=freshness_minutes,
        now=now,
        lockout=lockout,
    )
    if witness is None or not (witness.username or "").strip():
        return method, None
    return method, authenticate_witness(
        session=session, credential=witness, now=now, lockout=lockout
    )


def require_reason(findings: list[Finding], reason: str | None, checklist=None) -> str | None:
    """A record that breaks a rule is stored only with a reason; the refusal lists the
    findings in the reader's language."""
    reason = (reason or "").strip() or None
    if findings and reason is None:
        listed = " ".join(
            f"[{SEVERITY_LABELS.get(f.severity, f.severity)}] "
            + render(
                f.code,
                f.params,
                checklist=checklist,
                lang=checklist_text_key(),
                gettext=_,
                refs=not has_request_context(),  # a page shows titles; a command, ids too
            )
            for f in findings
        )
        raise FindingsNeedReason(
            ngettext(
                "this record breaks %(num)d rule: %(findings)s What happened must be "
                "recorded: give a reason and it will be recorded, and reported as a finding.",
                "this record breaks %(num)d rules: %(findings)s What happened must be "
                "recorded: give a reason and it will be recorded, and reported as a finding.",
                len(findings),
                findings=listed,
            ),
            findings,
        )
    return reason


def require_open(session: Session, unit: Unit) -> None:
    """New step records go only to a unit in progress."""
    status = status_of(session, unit.id)
    if status != IN_PROGRESS:
        raise Invalid(
            _(
                "unit %(unit)s is %(status)s: reopen it (with a reason) to add a late record",
                unit=unit.id,
                status=STATUS_LABELS[status],
            )
        )


def require_not_recorded(step_def, unit: Unit, prior: Sequence[StepFacts], site_zone) -> None:
    """A step that does not repeat is recorded once; a wrong record is corrected instead.

    Call it under the ledger's lock (`ledger.lock`), after reading `prior`."""
    if step_def.repeats:
        return
    done = [s for s in prior if s.step == step_def.id]
    if done:
        raise Conflict(
            _(
                "%(title)s is already recorded for unit %(unit)s (%(record)s, %(time)s); "
                "if that record is wrong, correct it",
                title=step_title(step_def),
                unit=unit.id,
                record=done[0].record_id,
                time=_when(done[0].at, site_zone),
            )
        )
