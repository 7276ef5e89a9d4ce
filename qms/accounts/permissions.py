"""The one decorator that guards views by permission flag."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from qms.accounts.roles import Permission, permission_label, permissions_of
from qms.core.i18n import _


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

        return wrapped

    return decorator
