"""Checklist versions: a unit is judged by the version it was registered under.

The label corrections of issue 8 changed the rules of ten shipped checklists; they were
released as 2026.2 and the 2026.1 texts kept in checklists/archive/ (docs/checklists.md,
"Versions and digests"). A unit registered under 2026.1 keeps being judged by 2026.1's
rules, so an audit of last month does not change because a checklist was edited; a new
unit is registered under 2026.2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qms.accounts import service as accounts
from qms.checklists.cli import checklist_group
from qms.checklists.engine import ReadingIndex, evaluate
from qms.checklists.language import Registry, version_key
from qms.paths import CHECKLISTS_DIR
from qms.records.importer import import_interchange
from qms.records.loading import load_units_by_id
from tests.checklists.casebook import EXAMPLES_DIR, findings_for, to_interchange

REGISTRY = Registry.from_directory()
ARCHIVE = CHECKLISTS_DIR / "archive"
ARCHIVED = sorted(ARCHIVE.glob("*.yaml"))
ARCHIVED_EXAMPLES = EXAMPLES_DIR / "archive"
CORRECTED = [
    "abecma",
    "besponsa",
    "blincyto",
    "breyanzi",
    "car-t-institutional",
    "carvykti",
    "kymriah",
    "ryoncil",
    "tecartus",
    "yescarta",
]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_every_corrected_checklist_is_2026_2_with_2026_1_archived() -> None:
    for checklist_id in CORRECTED:
        assert REGISTRY.versions(checklist_id) == ("2026.1", "2026.2"), checklist_id
        current, previous = REGISTRY.get(checklist_id), REGISTRY.get(checklist_id, "2026.1")
        assert current.version == "2026.2"
        assert Path(current.path) == CHECKLISTS_DIR / f"{checklist_id}.yaml"
        assert Path(previous.path) == ARCHIVE / f"{checklist_id}-2026.1.yaml"
        # A new version is released because the rules changed, not only the words.
        assert current.rules_digest != previous.rules_digest, checklist_id
    # Amimestrocel's corrections were comments only: its rules are 2026.1's, unchanged.
    assert REGISTRY.versions("amimestrocel") == ("2026.1",)


@pytest.mark.parametrize("path", ARCHIVED, ids=[p.stem for p in ARCHIVED])
def test_an_archived_file_is_named_by_its_id_and_version_and_is_not_the_newest(
    path: Path,
) -> None:
    checklist_id, _, version = path.stem.rpartition("-")
    checklist = REGISTRY.get(checklist_id, version)
    assert (checklist.id, checklist.version) == (checklist_id, version)
    assert version_key(version) < version_key(REGISTRY.get(checklist_id).version), (
        f"{path}: the archive holds versions that were replaced; the newest lives in checklists/"
    )


@pytest.mark.parametrize(
    "folder",
    sorted(p for p in ARCHIVED_EXAMPLES.iterdir() if p.is_dir()),
    ids=lambda p: p.name,
)
def test_units_of_2026_1_are_judged_as_before_the_corrections(folder: Path) -> None:
    """2026.1's own compliant units (as they were before the corrections) stay clean under
    2026.1, and the same records would not be clean under 2026.2: registering them under
    2026.1 is what keeps last month's audit as it was."""
    checklist_id, _, version = folder.name.rpartition("-")
    path = folder / "compliant.jsonl"
    interchange = to_interchange(_lines(path), str(path))
    units = [u for u in interchange.units if u.checklist == checklist_id]
    assert units and all(u.checklist_version == version for u in units)
    newest = REGISTRY.get(checklist_id)
    changed = 0
    for unit in units:
        assert findings_for(REGISTRY, interchange, unit.id) == []
        later = evaluate(
            newest, unit, interchange.steps_of(unit.id), ReadingIndex(interchange.readings)
        )
        changed += bool(later)
    assert changed, (
        f"{checklist_id}: no unit of {version} is judged differently by {newest.version}"
    )


def _yescarta_eu(version_lines: list[dict], *, premedication: bool) -> list[dict]:
    """The EU unit, its infusion started 45 minutes after thaw completion (09:12)."""
    lines = copy.deepcopy(version_lines)
    at = {
        "infusion_start": "2026-10-16T09:57:00+08:00",
        "infusion_end": "2026-10-16T10:17:00+08:00",
        "disposal": "2026-10-16T10:30:00+08:00",
        "premedication": "2026-10-16T09:20:00+08:00",
    }
    for line in lines:
        if line.get("type") == "step" and line["unit"] == "Y-EU-1" and line["step"] in at:
            line["at"] = at[line["step"]]
    if premedication:
        assert any(line.get("step") == "premedication" for line in lines)
    return lines


def test_a_yescarta_eu_infusion_45_minutes_after_thaw_is_judged_by_its_version() -> None:
    """The correction: under the EU SmPC the infusion starts within 30 minutes of thaw
    completion (2026.1 bounded it only by the 3 h room-temperature stability)."""
    old = _yescarta_eu(
        _lines(ARCHIVED_EXAMPLES / "yescarta-2026.1" / "compliant.jsonl"), premedication=False
    )
    new = _yescarta_eu(_lines(EXAMPLES_DIR / "yescarta" / "compliant.jsonl"), premedication=True)
    under_2026_1 = findings_for(REGISTRY, to_interchange(old, "2026.1"), "Y-EU-1")
    assert under_2026_1 == [], [f.message for f in under_2026_1]
    under_2026_2 = findings_for(REGISTRY, to_interchange(new, "2026.2"), "Y-EU-1")
    assert [(f.rule, f.severity, f.actual) for f in under_2026_2] == [
        ("yescarta.thaw_to_infusion_start_eu", "major", "45m")
    ]


IMPORTER = accounts.Actor.system("test importer")


def test_units_registered_under_each_version_are_judged_by_it_from_the_database(
    session, make_site
) -> None:
    """The same Kymriah EU records (no premedication: 2026.1 had no such step), once in a
    unit registered under 2026.1, once in a new unit: the first is clean, the second is
    judged by 2026.2, which asks for the premedication before every CAR-T infusion."""
    make_site("SH-01")
    make_site("SH-02")
    make_site("SH-03")
    archived = _lines(ARCHIVED_EXAMPLES / "kymriah-2026.1" / "compliant.jsonl")
    old = [
        line
        for line in archived
        if line.get("type") in ("equipment", "reading")
        or line.get("unit") == "K-EU-1"
        or line.get("id") == "K-EU-1"
    ]
    new = []
    for line in old:
        if line.get("type") == "unit":
            line = {k: v for k, v in line.items() if k != "checklist_version"}
            new.append({**line, "id": "K-EU-2", "coi_id": line["coi_id"][:-1] + "9"})
        elif line.get("type") == "step":
            new.append({**line, "unit": "K-EU-2"})
    for lines, source in ((old, "2026.1.jsonl"), (new, "new.jsonl")):
        import_interchange(
            session=session,
            registry=REGISTRY,
            lines=[json.dumps(line) for line in lines],
            source=source,
            actor=IMPORTER,
            create_missing_users=True,
        )
    session.flush()
    batch = load_units_by_id(session, ["K-EU-1", "K-EU-2"])
    assert {u.row.id: u.row.checklist_version for u in batch.units} == {
        "K-EU-1": "2026.1",
        "K-EU-2": "2026.2",
    }
    judged = batch.judge(REGISTRY, now=None)
    assert judged["K-EU-1"].findings == []
    assert {f.rule for f in judged["K-EU-2"].findings} >= {"kymriah.premedication.done"}


def test_checklist_list_shows_both_versions() -> None:
    result = CliRunner().invoke(checklist_group, ["list"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    kymriah = [(r[1], r[2], r[-1]) for r in rows if r[0] == "kymriah"]
    assert kymriah == [
        ("2026.2", "current", "checklists/kymriah.yaml"),
        ("2026.1", "archived", "checklists/archive/kymriah-2026.1.yaml"),
    ]
    assert [r[1:3] for r in rows if r[0] == "amimestrocel"] == [["2026.1", "current"]]
    data = json.loads(CliRunner().invoke(checklist_group, ["list", "--format", "json"]).output)
    assert {(c["checklist"], c["version"]) for c in data["checklists"]} >= {
        ("yescarta", "2026.1"),
        ("yescarta", "2026.2"),
    }


def test_a_folder_read_again_is_the_same_registry_until_a_file_changes(tmp_path: Path) -> None:
    """Reading a folder twice gives back the registry already read (it never changes); a
    file edited since, even to the same size, is read again."""
    import shutil

    folder = tmp_path / "checklists"
    shutil.copytree(CHECKLISTS_DIR, folder)
    first = Registry.from_directory(folder)
    assert Registry.from_directory(folder) is first
    path = folder / "kymriah.yaml"
    text = path.read_text(encoding="utf-8")
    title = first.get("kymriah").title
    assert title in text
    path.write_text(text.replace(title, title[::-1], 1), encoding="utf-8")  # same size
    again = Registry.from_directory(folder)
    assert again is not first and again.get("kymriah").title == title[::-1]
