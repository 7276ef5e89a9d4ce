"""A region and the sites in it (a site is in one region at most)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from qms.db import UTCDateTime, utcnow


class Region(SQLModel, table=True):
    """A group of sites reported on together (a district, a province)."""

    id: str = Field(primary_key=True, max_length=32)  # e.g. SH-XH
    name: str = Field(max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


class RegionSite(SQLModel, table=True):
    """A site's region: one row per site (moving a site replaces its row, on the trail)."""

    __tablename__ = "region_site"

    site_id: str = Field(foreign_key="site.id", primary_key=True, max_length=32)
    region_id: str = Field(foreign_key="region.id", max_length=32, index=True)
    added_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )
