"""The data of a report, built from the ledger up to a head: what is embedded and shown.

The data is a pure function of the ledger entries up to the head it covers (seq 1..n),
so `qms report verify` rebuilds it and compares it with the JSON the PDF carries.
Records enter as the canonical content the ledger chains (the contract of
``qms.core.canonical``): what a record says is exactly what the chain covers.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, select

from qms.accounts.models import Site
from qms.core.errors import NotFound
from qms.core.i18n import _
from qms.core.models import LedgerEntry
from qms.records.models import Signature, StepRecord, Unit, UnitStatus

DATA_FORMAT = 1


def ledger_head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest committed ledger entry (0 and genesis when empty)."""
    from qms.core.canonical import GENESIS

    row = session.connection().execute(
        text("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
    )
    found = row.first()
    return (found[0], found[1]) if found else (0, GENESIS)


def _contents(session: Session, model, condition, head_seq: int) -> list[dict[str, Any]]:
    rows = session.exec(
        select(LedgerEntry.content)
        .join(model, col(model.ledger_seq) == col(LedgerEntry.seq))
        .where(condition, col(LedgerEntry.seq) <= head_seq)
        .order_by(col(LedgerEntry.seq))
    ).all()
    return [json.loads(content) for content in rows]


def unit_dossier_data(session: Session, unit_id: str, head_seq: int) -> dict[str, Any]:
    """Every record, correction, signature and status of one unit, up to `head_seq`."""
    unit = session.get(Unit, unit_id)
    if unit is None or unit.ledger_seq > head_seq:
        raise NotFound(_("there is no unit %(unit)s", unit=unit_id))
    site = session.get(Site, unit.site_id)
    records = _contents(session, StepRecord, col(StepRecord.unit_id) == unit_id, head_seq)
    record_ids = [r["id"] for r in records]
    signatures = (
        _contents(session, Signature, col(Signature.record_id).in_(record_ids), head_seq)
        if record_ids
        else []
    )
    statuses = _contents(session, UnitStatus, col(UnitStatus.unit_id) == unit_id, head_seq)
    (unit_content,) = _contents(session, Unit, col(Unit.id) == unit_id, head_seq)
    return {
        "format": DATA_FORMAT,
        "report_type": "unit-dossier",
        "site": {"id": site.id, "name": site.name, "timezone": site.timezone},
        "scope": unit_id,
        "period": "all",
        "unit": unit_content,
        "records": records,
        "signatures": signatures,
        "statuses": statuses,
    }


DOSSIER_CSV_COLUMNS = (
    "record",
    "type",
    "step",
    "performed_at",
    "recorded_at",
    "performed_by",
    "witness",
    "meaning",
    "corrects",
    "reason",
    "fields",
    "findings",
)


def dossier_csv(data: dict[str, Any]) -> bytes:
    """One line per record of the dossier (fields and findings as JSON)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DOSSIER_CSV_COLUMNS)
    for r in data["records"]:
        writer.writerow(
            [
                r["id"],
                r["type"],
                r["step"],
                r["performed_at"],
                r["recorded_at"],
                r["performed_by"],
                r.get("witness") or "",
                r["meaning"],
                r.get("corrects") or "",
                r.get("reason") or "",
                json.dumps(r["fields"], ensure_ascii=False, sort_keys=True),
                json.dumps(r["findings"], ensure_ascii=False, sort_keys=True),
            ]
        )
    return out.getvalue().encode("utf-8")


def mask(value: str | None) -> str:
    """An identifier with all but its last four characters hidden (reports that leave)."""
    if not value:
        return ""
    return "•" * max(len(value) - 4, 0) + value[-4:]
