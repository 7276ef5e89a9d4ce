"""The decorators that guard views, and the access each view declares.

Every view says who may reach it, and the decorator records it on the view function
(`ACCESS_ATTRIBUTE`): `permission_required(P)` (signed in, holding P),
`signed_in_required` (any signed-in user), or `public` (anyone: the sign-in page, the
health check). The role x route x site test (tests/web/test_access_matrix.py) reads the
declaration of every route of the URL map and fails on a route without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from qms.accounts.roles import Permission, permission_label, permissions_of
from qms.core.i18n import _

ACCESS_ATTRIBUTE = "qms_access"


@dataclass(frozen=True)
class Access:
    """Who may reach a view: `kind` is "permission", "signed_in" or "public"."""

    kind: str
    permission: Permission | None = None


def access_of(view) -> Access | None:
    """The access a view declared, or None if it declared none."""
    return getattr(view, ACCESS_ATTRIBUTE, None)


def has_permission(permission: Permission) -> bool:
    return bool(current_user.is_authenticated and permission in permissions_of(current_user.role))


def permission_required(permission: Permission):
    """Signed-in users without `permission` get 403; anonymous ones go to the login page."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not has_permission(permission):
                abort(
                    403,
                    description=_(
                        "Your role may not do this (it needs the '%(permission)s' permission).",
                        permission=permission_label(permission),
                    ),
                )
            return view(*args, **kwargs)

        setattr(wrapped, ACCESS_ATTRIBUTE, Access("permission", permission))
        return wrapped

    return decorator


def signed_in_required(view):
    """Any signed-in user (their own account, signing out); anonymous ones go to the login page."""
    wrapped = login_required(view)
    setattr(wrapped, ACCESS_ATTRIBUTE, Access("signed_in"))
    return wrapped


def public(view):
    """Anyone, signed in or not: the sign-in page, the health check."""
    setattr(view, ACCESS_ATTRIBUTE, Access("public"))
    return view
