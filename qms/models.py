"""Every table, imported in one place so that migrations, `alembic check` and `qms verify`
see them all (a model module registers its ledger declarations when imported)."""

from qms.accounts.models import LoginEvent, Site, User, UserSite, Ward, WardGrant
from qms.core.anchors import LedgerAnchor
from qms.core.models import LedgerEntry
from qms.core.trail import AuditTrailEntry
from qms.delivery.models import Delivery, DeliveryAttempt, NoticeAttempt, NoticeMail, PortalOpen
from qms.quality.models import (
    AuditRun,
    Capa,
    CapaEvent,
    Deviation,
    DeviationEvent,
    FindingReview,
    QualityParameter,
)
from qms.records.models import Signature, StepRecord, Unit, UnitStatus
from qms.regions.models import Region, RegionSite
from qms.reports.models import ReportSite, ReportVersion
from qms.scheduling.models import (
    Alert,
    JobRun,
    Schedule,
    ScheduleChange,
    ScheduleRegion,
    ScheduleRun,
    SiteSetting,
)
from qms.storage.models import Equipment, ExcursionAck, Reading

__all__ = [
    "Alert",
    "AuditRun",
    "AuditTrailEntry",
    "Capa",
    "CapaEvent",
    "Delivery",
    "DeliveryAttempt",
    "Deviation",
    "DeviationEvent",
    "Equipment",
    "ExcursionAck",
    "FindingReview",
    "JobRun",
    "LedgerAnchor",
    "LedgerEntry",
    "LoginEvent",
    "NoticeAttempt",
    "NoticeMail",
    "PortalOpen",
    "QualityParameter",
    "Reading",
    "Region",
    "RegionSite",
    "ReportSite",
    "ReportVersion",
    "Schedule",
    "ScheduleChange",
    "ScheduleRegion",
    "ScheduleRun",
    "Signature",
    "Site",
    "SiteSetting",
    "StepRecord",
    "Unit",
    "UnitStatus",
    "User",
    "UserSite",
    "Ward",
    "WardGrant",
]
