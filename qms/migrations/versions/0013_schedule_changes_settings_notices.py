"""schedule changes, site settings, once-only alerts and their mails

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 17:30:00

A schedule's edits and retirements carry a reason (`schedule_change`); a site's quality
address and logger gap are chained settings (`site_setting`); an alert may carry a
unique `key` (reminders and logger gaps are raised once) and an `audience`; each alert
mailed to a quality address is a `notice_mail` with its attempts. The alert columns are
added in place (a SQLite batch rebuild would drop its append-only triggers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import qms.db
from qms.core.migration import append_only, drop_append_only

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROTECTED = ("schedule_change", "site_setting", "notice_mail", "notice_attempt")


def upgrade() -> None:
    op.add_column("alert", sa.Column("key", sa.String(length=240), nullable=True))
    op.add_column("alert", sa.Column("audience", sa.Text(), server_default="{}", nullable=False))
    op.create_index(op.f("ix_alert_key"), "alert", ["key"], unique=True)
    op.create_table(
        "schedule_change",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("schedule_id", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["app_user.id"], name=op.f("fk_schedule_change_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_schedule_change_ledger_seq_ledger_entry"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_change")),
        sa.UniqueConstraint("ledger_seq", name=op.f("uq_schedule_change_ledger_seq")),
    )
    op.create_index(
        op.f("ix_schedule_change_schedule_id"), "schedule_change", ["schedule_id"], unique=False
    )
    op.create_table(
        "site_setting",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("by_id", sa.Integer(), nullable=True),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_id"], ["app_user.id"], name=op.f("fk_site_setting_by_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_seq"],
            ["ledger_entry.seq"],
            name=op.f("fk_site_setting_ledger_seq_ledger_entry"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["site.id"], name=op.f("fk_site_setting_site_id_site")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_setting")),
        sa.UniqueConstraint("ledger_seq", name=op.f("uq_site_setting_ledger_seq")),
    )
    op.create_index(op.f("ix_site_setting_site_id"), "site_setting", ["site_id"], unique=False)
    op.create_table(
        "notice_mail",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alert.id"], name=op.f("fk_notice_mail_alert_id_alert")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_notice_mail_site_id_site")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_mail")),
        sa.UniqueConstraint(
            "alert_id", "recipient", name=op.f("uq_notice_mail_alert_id_recipient")
        ),
    )
    op.create_index(op.f("ix_notice_mail_alert_id"), "notice_mail", ["alert_id"], unique=False)
    op.create_table(
        "notice_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notice_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", qms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("smtp_text", sa.Text(), nullable=True),
        sa.Column("message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notice_mail.id"], name=op.f("fk_notice_attempt_notice_id_notice_mail")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_attempt")),
        sa.UniqueConstraint("notice_id", "number", name=op.f("uq_notice_attempt_notice_id_number")),
    )
    op.create_index(
        op.f("ix_notice_attempt_notice_id"), "notice_attempt", ["notice_id"], unique=False
    )
    for table in PROTECTED:
        append_only(table)  # qms_refuse_change() comes from 0002


def downgrade() -> None:
    for table in PROTECTED:
        drop_append_only(table)
    op.drop_table("notice_attempt")
    op.drop_table("notice_mail")
    op.drop_table("site_setting")
    op.drop_table("schedule_change")
    op.drop_index(op.f("ix_alert_key"), table_name="alert")
    drop_append_only("alert")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("audience")
        batch_op.drop_column("key")
    append_only("alert")
