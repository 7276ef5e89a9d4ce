"""regions: groups of sites, and the sites a regional report version covers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import qms.db
from qms.core.migration import append_only, drop_append_only

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "region",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region")),
    )
    op.create_table(
        "region_site",
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("region_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("added_at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"], ["region.id"], name=op.f("fk_region_site_region_id_region")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_region_site_site_id_site")),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_region_site")),
    )
    with op.batch_alter_table("region_site", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_region_site_region_id"), ["region_id"], unique=False)
    op.create_table(
        "report_site",
        sa.Column(
            "report_version_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False
        ),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_version_id"],
            ["report_version.id"],
            name=op.f("fk_report_site_report_version_id_report_version"),
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_report_site_site_id_site")),
        sa.PrimaryKeyConstraint("report_version_id", "site_id", name=op.f("pk_report_site")),
    )
    append_only("report_site")


def downgrade() -> None:
    drop_append_only("report_site")
    op.drop_table("report_site")
    with op.batch_alter_table("region_site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_region_site_region_id"))
    op.drop_table("region_site")
    op.drop_table("region")
