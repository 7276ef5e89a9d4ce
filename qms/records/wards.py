"""Which units a person sees and acts on by ward: the one helper every page and service that
names units asks.

A unit's ward is its `ward` attribute (a ward code of its site; None: on no ward yet). Ward
staff (nurses, physicians) see the units of the wards they hold and the units on no ward
(`accounts.access.ward_scope`); pharmacists, quality officers, administrators and the system
see the whole site.

- Pages build one `WardView` for the site and show only what it sees: another ward's unit
  id, patient reference, records and findings never appear, and a count says that others
  exist (`WardView.seen_ids`, `seen_units`, `seen_records`).
- Services refuse to record, correct, witness or change the status of a unit outside the
  person's wards (`require_on_ward`, `refuse_witness_off_ward`), whoever calls them: the
  web forms (which answer such a unit as missing before), the demonstration data, an
  import in the name of a ward-scoped user.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from qms.accounts.access import in_ward_scope, ward_scope
from qms.accounts.models import User
from qms.core.errors import Denied, SignatureError
from qms.core.i18n import _
from qms.records.models import StepRecord, Unit

if TYPE_CHECKING:
    from qms.accounts.service import Actor

WARD_ATTRIBUTE = "ward"


def ward_in(attributes) -> str | None:
    """The ward code in a unit's attributes (a mapping or its JSON text), None if on none."""
    if isinstance(attributes, str):
        attributes = json.loads(attributes or "{}")
    ward = (attributes or {}).get(WARD_ATTRIBUTE)
    return ward if isinstance(ward, str) else None


def unit_ward(unit: Unit) -> str | None:
    """The ward code a unit is on (its `ward` attribute), None if on none yet."""
    return ward_in(unit.attributes)


@dataclass(frozen=True)
class WardView:
    """What one person sees of one site's units: `scope` None sees every unit; otherwise the
    units of those ward codes and the units on no ward."""

    scope: frozenset[str] | None

    @property
    def whole_site(self) -> bool:
        return self.scope is None

    def sees_ward(self, ward: str | None) -> bool:
        return in_ward_scope(self.scope, ward)

    def sees(self, unit: Unit) -> bool:
        return self.sees_ward(unit_ward(unit))

    def seen_units(self, units: Iterable[Unit]) -> tuple[list[Unit], int]:
        """The units seen, in their order, and how many others were left out."""
        units = list(units)
        seen = [u for u in units if self.sees(u)]
        return seen, len(units) - len(seen)

    def seen_ids(self, session: Session, unit_ids: Sequence[str]) -> tuple[list[str], int]:
        """The unit ids seen, in their order, and how many were left out (one query, none
        for the whole site). An id of no unit is left out for ward staff."""
        if self.whole_site:
            return list(unit_ids), 0
        wards = wards_of(session, unit_ids)
        seen = [u for u in unit_ids if u in wards and self.sees_ward(wards[u])]
        return seen, len(unit_ids) - len(seen)

    def seen_records(self, session: Session, record_ids: Sequence[str]) -> list[str]:
        """The step record ids seen: those of units seen (two queries, none for the whole site)."""
        if self.whole_site or not record_ids:
            return list(record_ids)
        unit_of = dict(
            session.exec(
                select(StepRecord.id, StepRecord.unit_id).where(col(StepRecord.id).in_(record_ids))
            ).all()
        )
        seen_units = set(self.seen_ids(session, sorted(set(unit_of.values())))[0])
        return [r for r in record_ids if unit_of.get(r) in seen_units]


def ward_view(session: Session, who: User | Actor, site_id: str) -> WardView:
    """What `who` sees of `site_id`'s units."""
    return WardView(ward_scope(session, who, site_id))


def wards_of(session: Session, unit_ids: Collection[str]) -> dict[str, str | None]:
    """The ward of each of these units that exists, in one query."""
    if not unit_ids:
        return {}
    rows = session.exec(
        select(Unit.id, Unit.attributes).where(col(Unit.id).in_(sorted(set(unit_ids))))
    )
    return {unit_id: ward_in(attributes) for unit_id, attributes in rows}


# --- services: acting on a unit of one's own wards ---------------------------------------


def off_ward(session: Session, who: User | Actor, unit_id: str, site_id: str, ward) -> str | None:
    """Why `who` may not act on a unit on `ward` (the refusal's words), None if they may."""
    if ward is None or in_ward_scope(ward_scope(session, who, site_id), ward):
        return None
    return off_ward_words(who, unit_id, ward)


def off_ward_words(who: User | Actor, unit_id: str, ward: str) -> str:
    """The refusal of acting on a unit of a ward one is not on, the same for every caller."""
    return _(
        "%(name)s is not on ward %(ward)s, where unit %(unit)s is: nurses and physicians "
        "record, correct, witness and close only the units of their own wards",
        name=who.username if isinstance(who, User) else who.name,
        ward=ward,
        unit=unit_id,
    )


def require_on_ward(session: Session, who: User | Actor, unit: Unit) -> None:
    """Raise `Denied` unless `who` may act on `unit` by ward (ward staff: a unit of one of
    their wards, or on no ward; everyone else: any unit of their sites)."""
    refusal = off_ward(session, who, unit.id, unit.site_id, unit_ward(unit))
    if refusal is not None:
        raise Denied(refusal)


def refuse_witness_off_ward(session: Session, witness: User, unit: Unit) -> None:
    """A nurse or physician co-signs only at the bedside of their own wards' units."""
    ward = unit_ward(unit)
    if ward is not None and not in_ward_scope(ward_scope(session, witness, unit.site_id), ward):
        raise SignatureError(
            _(
                "the witness %(username)s is not on ward %(ward)s, where this unit is: "
                "ask someone of this ward to co-sign. Nothing was recorded.",
                username=witness.username,
                ward=ward,
            )
        )
