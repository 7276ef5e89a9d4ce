"""The home page: what each role does here, and where to start."""

from __future__ import annotations

from flask import Blueprint, render_template, session
from flask_login import current_user

from qms.accounts.access import is_member, ward_scope
from qms.accounts.models import Site
from qms.accounts.permissions import public, signed_in_required
from qms.accounts.roles import Permission, Role, permission_label, permissions_of
from qms.accounts.service import sites_of
from qms.db import utcnow
from qms.records.worklist import worklist
from qms.web.database import db_session
from qms.web.registry import get_registry

bp = Blueprint("web", __name__)


@bp.route("/")
@signed_in_required
def home():
    """The home page is the worklist: what this role can do now at this site, by deadline."""
    s = db_session()
    role = Role(current_user.role)
    sites = sites_of(session=s, user=current_user.row)
    site_id = session.get("site_id")
    site = s.get(Site, site_id) if site_id else None
    items = None
    granted = permissions_of(role)
    if site is not None and is_member(s, current_user.row, site_id):
        if Permission.LOG_STEPS in granted or Permission.AUDIT in granted:
            items = worklist(
                s,
                site_id=site_id,
                role=role.value,
                registry=get_registry(),
                now=utcnow(),
                wards=ward_scope(s, current_user.row, site_id),
            )
    return render_template(
        "home.html",
        role=role,
        permissions=sorted(permission_label(p) for p in granted),
        sites=sites,
        site=site,
        items=items,
        can_register=Permission.LOG_STEPS in granted and role.value == "pharmacist",
    )


@bp.route("/healthz")
@public
def health():
    return {"status": "ok"}
