"""Demonstration data: a Shanghai hospital, two wards, and one user per role.

The passwords are printed in the README; never load this into a production database.
"""

from __future__ import annotations

from sqlmodel import Session

from qms.accounts import service

DEMO_SITE = ("SH-01", "Xuhui Demonstration Hospital, Shanghai")
DEMO_WARDS = [("HEM", "Haematology ward"), ("CTU", "Cell therapy unit")]
# username, printed name, role, password
DEMO_USERS = [
    ("li.na", "Li Na", "nurse", "demo-nurse-2026"),
    ("wang.wei", "Wang Wei", "nurse", "demo-nurse-2026"),
    ("zhang.min", "Dr Zhang Min", "physician", "demo-physician-2026"),
    ("chen.jie", "Chen Jie", "pharmacist", "demo-pharmacist-2026"),
    ("liu.yang", "Liu Yang", "quality_officer", "demo-quality-2026"),
    ("zhao.lei", "Zhao Lei", "regulator", "demo-regulator-2026"),
    ("sun.hao", "Sun Hao", "admin", "demo-admin-2026"),
]


def load_demo(*, session: Session) -> str:
    site_id, site_name = DEMO_SITE
    service.create_site(session=session, site_id=site_id, name=site_name)
    session.flush()
    for code, name in DEMO_WARDS:
        service.create_ward(session=session, site_id=site_id, code=code, name=name)
    actor = service.Actor.system("demonstration data")
    for username, full_name, role, password in DEMO_USERS:
        service.create_user(
            session=session,
            actor=actor,
            username=username,
            full_name=full_name,
            role=role,
            password=password,
            site_ids=[site_id],
            reason="demonstration data",
        )
    lines = [f"demonstration data loaded: {site_name} ({site_id}), {len(DEMO_WARDS)} wards"]
    lines += [
        f"  {username:<10} {role:<16} password {password}"
        for username, _, role, password in DEMO_USERS
    ]
    return "\n".join(lines)
