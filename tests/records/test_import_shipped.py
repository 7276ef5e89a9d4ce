"""`qms import` of records made under the shipped checklists (not the test checklist)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from qms.accounts import service as accounts
from qms.checklists.language import Registry
from qms.records.importer import import_interchange
from qms.records.models import StepRecord

EXAMPLES = Path(__file__).parent.parent / "checklists" / "examples"
IMPORTER = accounts.Actor.system("test importer")


def test_a_car_t_unit_with_its_premedication_is_imported(session, make_site):
    """Every CAR-T label asks for premedication; a file recording it for a CAR-T unit was
    once refused as a whole ("unknown step")."""
    make_site("SH-01")
    lines = [
        line
        for line in (EXAMPLES / "kymriah" / "compliant.jsonl").read_text().splitlines()
        if '"K-US-1"' in line or '"type": "equipment"' in line or '"type": "reading"' in line
    ]
    assert any('"premedication"' in line for line in lines)
    import_interchange(
        session=session,
        registry=Registry.from_directory(),
        lines=lines,
        source="kymriah.jsonl",
        actor=IMPORTER,
        create_missing_users=True,
    )
    session.flush()
    stored = session.exec(select(StepRecord).where(StepRecord.unit_id == "K-US-1")).all()
    premedication = [r for r in stored if r.step == "premedication"]
    assert len(premedication) == 1
    assert json.loads(premedication[0].fields) == {
        "paracetamol": True,
        "antihistamine": True,
        "corticosteroid": False,
    }
    # The compliant unit raises no finding on any record, premedication included.
    assert all(json.loads(r.findings) == [] for r in stored)
