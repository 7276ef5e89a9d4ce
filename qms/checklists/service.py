"""Which checklist versions and site parameters are in force, kept in the audit trail.

Checklists and a site's parameter file change as files, not through a form, so each
time the application starts (`qms init-db`, `qms serve`) the versions it loaded are
compared with the last ones recorded: a new version is an "activate" entry, changed
parameter values or content a "change" entry with the old and new values, a version no
longer present a "retire" entry. A checklist whose content changed while its version
number stayed the same is reported as a warning: records made under that version
before and after would have been judged by different rules. A change of the words shown
only (titles, labels, their translations) leaves the checklist's rules digest as it was:
it is recorded as a change, without a warning, and needs no new version.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from qms.checklists.language import Checklist, Registry
from qms.core.trail import AuditTrailEntry, record_change

ENTITY = "checklist_version"


def _state(checklist: Checklist) -> dict[str, Any]:
    return {
        "version": checklist.version,
        "digest": checklist.digest,
        "rules_digest": checklist.rules_digest,
        "source": str(checklist.path) if checklist.path else None,
        "site": checklist.site,
        "parameters": {name: str(p.value) for name, p in sorted(checklist.parameters.items())},
    }


def _last_states(session: Session) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """entity id -> (last action, last recorded state)."""
    last: dict[str, tuple[str, dict[str, Any] | None]] = {}
    for entry in session.exec(
        select(AuditTrailEntry)
        .where(AuditTrailEntry.entity == ENTITY)
        .order_by(col(AuditTrailEntry.id))
    ):
        state = json.loads(entry.new_value) if entry.new_value else None
        last[entry.entity_id] = (entry.action, state)
    return last


def record_active_checklists(*, session: Session, registry: Registry, started_by: str) -> list[str]:
    """Append audit-trail entries for what changed since the last start; return warnings."""
    warnings: list[str] = []
    last = _last_states(session)
    present: set[str] = set()
    for newest in registry:
        for version in registry.versions(newest.id):
            checklist = registry.get(newest.id, version)
            key = f"{checklist.id} {version}"
            present.add(key)
            state = _state(checklist)
            action, before = last.get(key, ("retire", None))
            if action != "retire" and before is not None and before["digest"] == state["digest"]:
                continue
            if before is None or action == "retire":
                change, reason = "activate", f"loaded from {state['source']}"
            else:
                change = "change"
                if before["parameters"] != state["parameters"]:
                    reason = "parameter values changed (checklist file or site file)"
                elif before.get("rules_digest") == state["rules_digest"]:
                    # Titles, labels or their translations: records are judged as before.
                    reason = "display text changed (titles, labels, translations); rules unchanged"
                else:
                    reason = "checklist content changed without a new version number"
                    warnings.append(
                        f"checklist {checklist.id} {version} changed but kept its version number: "
                        "give it a new version so records show which rules judged them"
                    )
            record_change(
                session=session,
                actor_id=None,
                actor_name=started_by,
                entity=ENTITY,
                entity_id=key,
                action=change,
                old_value=before if change == "change" else None,
                new_value=state,
                reason=reason,
            )
    for key, (action, state) in last.items():
        if key not in present and action != "retire":
            record_change(
                session=session,
                actor_id=None,
                actor_name=started_by,
                entity=ENTITY,
                entity_id=key,
                action="retire",
                old_value=state,
                reason="no longer among the loaded checklists",
            )
    return warnings
