"""The ledger check a report states: a full `qms verify`, or the entries since the last one.

A full verification reads and hashes every entry and compares every typed row: most of a
site monthly report's time on a large ledger. When a full `qms verify` passed recently
(its anchor, `source="verify"`, is written only when it passed), the report checks what
came after it: the anchored entry still has its anchored hash (so nothing before it was
rewritten and re-chained), every later entry's hash and link, no gap in the sequence,
and every anchor still standing. What this does not check, and the report says so: the
entries before the anchor are not hashed again, and no typed row is compared (that is the
full verification's part; the nightly verify and `qms report verify` do it).
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from qms.db import utcnow

DEFAULT_MAX_AGE = timedelta(hours=26)  # the nightly verify, with some slack


def full_check(session: Session) -> dict[str, Any]:
    """`qms verify` at generation: whether the chain and typed rows were intact."""
    from qms.core.verify import verify

    result = verify(session.connection())
    return {
        "ok": result.ok,
        "problems": len(result.problems),
        "mode": "full",
        "to_seq": result.head_seq,
    }


def ledger_check(session: Session, *, now: datetime | None = None) -> dict[str, Any]:
    """The check stated in a report: since the last passed full verify if it is recent
    enough (QMS_REPORT_VERIFY=full forces the full one), else the full verification."""
    if os.environ.get("QMS_REPORT_VERIFY", "since-anchor") == "full":
        return full_check(session)
    since = since_last_verify(session, now=now or utcnow())
    return since if since is not None else full_check(session)


def since_last_verify(
    session: Session, *, now: datetime, max_age: timedelta = DEFAULT_MAX_AGE
) -> dict[str, Any] | None:
    """The entries after the newest passed full verify's anchor, or None if there is none
    recent enough (then the caller verifies in full)."""
    connection = session.connection()
    found = connection.execute(
        text(
            "SELECT head_seq, head_hash, recorded_at FROM ledger_anchor "
            "WHERE source = 'verify' ORDER BY id DESC LIMIT 1"
        )
    ).first()
    if found is None:
        return None
    anchor_seq, anchor_hash, recorded_at = found
    if isinstance(recorded_at, str):
        recorded_at = datetime.fromisoformat(recorded_at)
    if recorded_at.tzinfo is None:
        from datetime import UTC

        recorded_at = recorded_at.replace(tzinfo=UTC)
    if now - recorded_at > max_age:
        return None
    problems = 0
    stood = connection.execute(
        text("SELECT hash FROM ledger_entry WHERE seq = :seq"), {"seq": anchor_seq}
    ).scalar()
    if stood != anchor_hash:
        problems += 1
    previous, expected, last = anchor_hash, anchor_seq + 1, anchor_seq
    sha256 = hashlib.sha256
    rows = connection.execute(
        text(
            "SELECT seq, content, prev_hash, hash FROM ledger_entry WHERE seq > :seq ORDER BY seq"
        ),
        {"seq": anchor_seq},
    )
    for seq, content, prev_hash, stored in rows:
        if sha256((prev_hash + content).encode("utf-8")).hexdigest() != stored:
            problems += 1
        if prev_hash != previous or seq != expected:
            problems += 1
        previous, expected, last = stored, seq + 1, seq
    broken_anchors = connection.execute(
        text(
            "SELECT count(*) FROM ledger_anchor a LEFT JOIN ledger_entry l "
            "ON l.seq = a.head_seq WHERE l.hash IS NULL OR l.hash <> a.head_hash"
        )
    ).scalar()
    problems += int(broken_anchors or 0)
    return {
        "ok": problems == 0,
        "problems": problems,
        "mode": "since-anchor",
        "from_seq": anchor_seq + 1,
        "to_seq": last,
        "anchor_at": recorded_at.isoformat(timespec="seconds"),
    }
