"""Every table, imported in one place so that migrations and `alembic check` see them all."""

from qms.accounts.models import LoginEvent, Site, User, UserSite, Ward
from qms.records.models import LedgerEntry, Signature, StepRecord, Unit, UnitStatus  # noqa: F401
from qms.records.trail import AuditTrailEntry

__all__ = ["AuditTrailEntry", "LoginEvent", "Site", "User", "UserSite", "Ward"]
