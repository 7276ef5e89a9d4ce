"""A site's quality parameters: days to a deviation's due date, to an effectiveness check...

Each change is a chained record (`QualityParameter`); the latest per name counts, and a
name never set has its default. Read in one query for a site.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, func, select

from qms.accounts.access import require
from qms.accounts.models import User
from qms.accounts.roles import Permission
from qms.core import ledger
from qms.core.errors import Invalid
from qms.core.i18n import _, _l
from qms.quality.models import QualityParameter

# name -> (default, smallest, largest): whole days or months
DEFAULTS: dict[str, tuple[int, int, int]] = {
    "deviation_due_days": (30, 1, 365),
    "effectiveness_check_days": (90, 1, 730),
    "recurrence_months": (12, 1, 60),
}
LABELS = {
    "deviation_due_days": _l("Days from opening to a deviation's due date"),
    "effectiveness_check_days": _l("Days from a CAPA's closure to its effectiveness check"),
    "recurrence_months": _l("Months of earlier deviations shown as recurrence"),
}


def site_parameters(session: Session, site_id: str) -> dict[str, int]:
    """Every quality parameter of a site, as in force now."""
    values = {name: default for name, (default, _low, _high) in DEFAULTS.items()}
    latest = (
        select(QualityParameter.name, func.max(QualityParameter.ledger_seq).label("seq"))
        .where(QualityParameter.site_id == site_id)
        .group_by(QualityParameter.name)
        .subquery()
    )
    rows = session.exec(
        select(QualityParameter.name, QualityParameter.value).join(
            latest, col(QualityParameter.ledger_seq) == latest.c.seq
        )
    )
    for name, value in rows:
        if name in values:
            values[name] = int(value)
    return values


def set_parameter(
    *, session: Session, by: User, site_id: str, name: str, value: int, reason: str, now: datetime
) -> QualityParameter:
    require(session, by, Permission.AUDIT, site_id, action=_l("set quality parameters"))
    if name not in DEFAULTS:
        raise Invalid(
            _(
                "there is no quality parameter %(name)s; parameters: %(names)s",
                name=repr(name),
                names=_(", ").join(DEFAULTS),
            )
        )
    _default, low, high = DEFAULTS[name]
    if not (low <= int(value) <= high):
        raise Invalid(
            _("%(name)s must be between %(low)s and %(high)s", name=name, low=low, high=high)
        )
    if not (reason or "").strip():
        raise Invalid(_("a change of a quality parameter needs a reason"))
    ledger.lock(session)
    count = session.exec(
        select(func.count())
        .select_from(QualityParameter)
        .where(QualityParameter.site_id == site_id, QualityParameter.name == name)
    ).one()
    row = QualityParameter(
        id=f"{site_id}:{name}/{count + 1}",
        site_id=site_id,
        name=name,
        value=str(int(value)),
        at=now,
        by_id=by.id,
        reason=reason.strip(),
    )
    return ledger.write(session, row)
