"""The audit trail of which checklist versions and site parameters are in force."""

from __future__ import annotations

import json
import shutil

from sqlmodel import select

from qms.checklists.language import Registry
from qms.checklists.service import record_active_checklists
from qms.core.trail import AuditTrailEntry
from qms.paths import CHECKLISTS_DIR


def _entries(session) -> list[AuditTrailEntry]:
    return list(
        session.exec(
            select(AuditTrailEntry)
            .where(AuditTrailEntry.entity == "checklist_version")
            .order_by(AuditTrailEntry.id)
        )
    )


def _tree(tmp_path, *names):
    root = tmp_path / "checklists"
    root.mkdir()
    shutil.copytree(CHECKLISTS_DIR / "profiles", root / "profiles")
    for name in names:
        shutil.copy(CHECKLISTS_DIR / f"{name}.yaml", root / f"{name}.yaml")
    return root


def test_first_start_activates_every_version_and_a_restart_adds_nothing(session):
    registry = Registry.from_directory()
    assert record_active_checklists(session=session, registry=registry, started_by="test") == []
    first = _entries(session)
    # Every version loaded, the archived ones too (units registered under them remain).
    versions = sum(len(registry.versions(c.id)) for c in registry)
    assert versions > len(list(registry))
    assert len(first) == versions and {e.action for e in first} == {"activate"}
    kymriah = next(e for e in first if e.entity_id == "kymriah 2026.3")
    assert json.loads(kymriah.new_value)["parameters"]["thaw_to_infusion"] == "30m"
    for version in ("2026.1", "2026.2"):
        archived = next(e for e in first if e.entity_id == f"kymriah {version}")
        assert json.loads(archived.new_value)["source"].endswith(f"archive/kymriah-{version}.yaml")
    record_active_checklists(session=session, registry=registry, started_by="test")
    assert len(_entries(session)) == len(first)


def test_site_parameters_changing_are_recorded_with_old_and_new_values(session, tmp_path):
    root = _tree(tmp_path, "kymriah")
    record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    site_file = tmp_path / "site.yaml"
    site_file.write_text("site: SH-01\nparameters:\n  kymriah:\n    thaw_to_infusion: 20m\n")
    tighter = Registry.from_directory(root, site_overrides=site_file)
    assert record_active_checklists(session=session, registry=tighter, started_by="t") == []
    change = _entries(session)[-1]
    assert change.action == "change" and "parameter values changed" in change.reason
    assert json.loads(change.old_value)["parameters"]["thaw_to_infusion"] == "30m"
    assert json.loads(change.new_value)["parameters"]["thaw_to_infusion"] == "20m"


def test_content_changed_under_the_same_version_is_a_warning(session, tmp_path):
    root = _tree(tmp_path, "kymriah")
    record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    path = root / "kymriah.yaml"
    path.write_text(path.read_text().replace("severity: minor", "severity: major"))
    warnings = record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    assert warnings and "kept its version number" in warnings[0]
    assert _entries(session)[-1].reason == "checklist content changed without a new version number"


def test_a_checklist_no_longer_loaded_is_retired(session, tmp_path):
    root = _tree(tmp_path, "kymriah", "abecma")
    record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    (root / "abecma.yaml").unlink()
    record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    retired = _entries(session)[-1]
    assert (retired.entity_id, retired.action) == ("abecma 2026.3", "retire")


def test_text_changed_under_the_same_version_is_recorded_without_a_warning(session, tmp_path):
    root = _tree(tmp_path, "kymriah")
    record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    path = root / "kymriah.yaml"
    text = path.read_text(encoding="utf-8")
    assert "Thaw started" in text and "Infuse at 10 to 20 mL per minute." in text
    changed = text.replace("Thaw started", "Thawing started").replace(
        "Infuse at 10 to 20 mL per minute.", "Infuse at 10-20 mL a minute."
    )
    path.write_text(changed, encoding="utf-8")
    warnings = record_active_checklists(
        session=session, registry=Registry.from_directory(root), started_by="t"
    )
    assert warnings == []
    change = _entries(session)[-1]
    assert change.action == "change" and "rules unchanged" in change.reason
    assert json.loads(change.old_value)["digest"] != json.loads(change.new_value)["digest"]
