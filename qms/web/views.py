"""The home page: what each role does here, and where to start."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from qms.accounts.permissions import public, signed_in_required
from qms.accounts.roles import Role, permission_label, permissions_of
from qms.accounts.service import sites_of
from qms.web.database import db_session

bp = Blueprint("web", __name__)


@bp.route("/")
@signed_in_required
def home():
    role = Role(current_user.role)
    sites = sites_of(session=db_session(), user=current_user.row)
    return render_template(
        "home.html",
        role=role,
        permissions=sorted(permission_label(p) for p in permissions_of(role)),
        sites=sites,
    )


@bp.route("/healthz")
@public
def health():
    return {"status": "ok"}
