"""Creating regions and placing sites in them (configuration, on the audit trail)."""

from __future__ import annotations

import re

from sqlmodel import Session, col, select

from qms.accounts.models import Site
from qms.core.errors import Conflict, Invalid, NotFound
from qms.core.i18n import _
from qms.core.trail import record_change
from qms.regions.models import Region, RegionSite

REGION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


def create_region(
    *, session: Session, region_id: str, name: str, actor_id: int | None, actor_name: str
) -> Region:
    region_id = (region_id or "").strip()
    if not REGION_ID_RE.match(region_id):
        raise Invalid(_("a region id is 1 to 32 letters, digits, - or _ (e.g. SH-XH)"))
    if not (name or "").strip():
        raise Invalid(_("a region needs a name"))
    if session.get(Region, region_id) is not None:
        raise Conflict(_("there is a region %(region)s already", region=region_id))
    region = Region(id=region_id, name=name.strip())
    session.add(region)
    record_change(
        session=session,
        actor_id=actor_id,
        actor_name=actor_name,
        entity="region",
        entity_id=region_id,
        action="create",
        reason="region created",
        new_value=name.strip(),
    )
    session.flush()
    return region


def place_site(
    *,
    session: Session,
    region_id: str,
    site_id: str,
    actor_id: int | None,
    actor_name: str,
    reason: str = "site placed in region",
) -> RegionSite:
    """Put a site in a region (out of the one it was in, if any)."""
    if session.get(Region, region_id) is None:
        raise NotFound(_("there is no region %(region)s", region=region_id))
    if session.get(Site, site_id) is None:
        raise NotFound(_("there is no site %(site)s", site=site_id))
    old = session.get(RegionSite, site_id)
    old_region = old.region_id if old else None
    if old is not None:
        if old.region_id == region_id:
            return old
        session.delete(old)
        session.flush()
    placed = RegionSite(site_id=site_id, region_id=region_id)
    session.add(placed)
    record_change(
        session=session,
        actor_id=actor_id,
        actor_name=actor_name,
        entity="site",
        entity_id=site_id,
        action="region",
        reason=reason,
        field_name="region",
        old_value=old_region,
        new_value=region_id,
    )
    session.flush()
    return placed


def sites_of_region(session: Session, region_id: str) -> list[str]:
    """The ids of the region's sites, sorted."""
    return list(
        session.exec(
            select(RegionSite.site_id)
            .where(RegionSite.region_id == region_id)
            .order_by(col(RegionSite.site_id))
        )
    )


def region_of_site(session: Session, site_id: str) -> str | None:
    placed = session.get(RegionSite, site_id)
    return placed.region_id if placed else None
