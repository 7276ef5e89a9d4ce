"""Roles and the permission flags they grant: the one table that says who may do what."""

from __future__ import annotations

import enum

from qms.core.i18n import _l


class Role(enum.StrEnum):
    """The roles of qms.core.roles.ROLE_NAMES (which checklists read), as an enum."""

    NURSE = "nurse"
    PHYSICIAN = "physician"
    PHARMACIST = "pharmacist"
    QUALITY_OFFICER = "quality_officer"
    REGULATOR = "regulator"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.NURSE: _l("Nurse"),
    Role.PHYSICIAN: _l("Physician"),
    Role.PHARMACIST: _l("Pharmacist"),
    Role.QUALITY_OFFICER: _l("Quality officer"),
    Role.REGULATOR: _l("Regulator"),
    Role.ADMIN: _l("Administrator"),
}


class Permission(enum.Flag):
    VIEW_RECORDS = enum.auto()  # see units and their step records at one's sites
    LOG_STEPS = enum.auto()  # record ward or pharmacy steps (the checklist narrows by step)
    WITNESS = enum.auto()  # co-sign another person's step
    MANAGE_STORAGE = enum.auto()  # equipment and temperature readings
    AUDIT = enum.auto()  # run audits, confirm deviations, track CAPA
    SIGN_REPORTS = enum.auto()
    VIEW_REPORTS = enum.auto()  # read issued reports (regulators: across their sites)
    MANAGE_USERS = enum.auto()
    MANAGE_CHECKLISTS = enum.auto()  # activate checklist versions, site parameters
    IMPORT_EXPORT = enum.auto()


PERMISSION_LABELS = {
    Permission.VIEW_RECORDS: _l("view records"),
    Permission.LOG_STEPS: _l("log steps"),
    Permission.WITNESS: _l("witness"),
    Permission.MANAGE_STORAGE: _l("manage storage"),
    Permission.AUDIT: _l("audit"),
    Permission.SIGN_REPORTS: _l("sign reports"),
    Permission.VIEW_REPORTS: _l("view reports"),
    Permission.MANAGE_USERS: _l("manage users"),
    Permission.MANAGE_CHECKLISTS: _l("manage checklists"),
    Permission.IMPORT_EXPORT: _l("import export"),
}


def permission_label(permission: Permission) -> str:
    """A single permission's name in the reader's language."""
    return str(PERMISSION_LABELS[permission])


ROLE_PERMISSIONS: dict[Role, Permission] = {
    Role.NURSE: Permission.VIEW_RECORDS | Permission.LOG_STEPS | Permission.WITNESS,
    Role.PHYSICIAN: Permission.VIEW_RECORDS | Permission.LOG_STEPS | Permission.WITNESS,
    Role.PHARMACIST: Permission.VIEW_RECORDS
    | Permission.LOG_STEPS
    | Permission.WITNESS
    | Permission.MANAGE_STORAGE,
    Role.QUALITY_OFFICER: Permission.VIEW_RECORDS
    | Permission.AUDIT
    | Permission.SIGN_REPORTS
    | Permission.VIEW_REPORTS
    | Permission.MANAGE_CHECKLISTS
    | Permission.IMPORT_EXPORT,
    Role.REGULATOR: Permission.VIEW_REPORTS,
    Role.ADMIN: Permission.MANAGE_USERS
    | Permission.MANAGE_CHECKLISTS
    | Permission.VIEW_RECORDS
    | Permission.IMPORT_EXPORT,
}


def permissions_of(role: Role | str) -> Permission:
    return ROLE_PERMISSIONS[Role(role)]
