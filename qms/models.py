"""Every table, imported in one place so that migrations, `alembic check` and `qms verify`
see them all (a model module registers its ledger declarations when imported)."""

from qms.accounts.models import LoginEvent, Site, User, UserSite, Ward
from qms.core.models import LedgerEntry
from qms.core.trail import AuditTrailEntry
from qms.records.models import Signature, StepRecord, Unit, UnitStatus
from qms.storage.models import Equipment, ExcursionAck, Reading

__all__ = [
    "AuditTrailEntry",
    "Equipment",
    "ExcursionAck",
    "LedgerEntry",
    "LoginEvent",
    "Reading",
    "Signature",
    "Site",
    "StepRecord",
    "Unit",
    "UnitStatus",
    "User",
    "UserSite",
    "Ward",
]
