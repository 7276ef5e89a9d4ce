"""Checklist versions: a unit is judged by the version it was registered under.

The label corrections of issue 8 changed the rules of ten shipped checklists; they were
released as 2026.2 and the 2026.1 texts kept in checklists/archive/ (docs/checklists.md,
"Versions and digests"). The order rule of issue 9 (the bedside identity check after the
release from storage) changed the rules of all eleven: released as each one's next
version (2026.3; amimestrocel, whose rules 2026.2 had not changed, 2026.2), the previous
texts archived. A unit registered under an earlier version keeps being judged by its
rules, so an audit of last month does not change because a checklist was edited; a new
unit is registered under the newest.
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
from qms.checklists.language import OrderSpec, Registry, version_key
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
SHIPPED = sorted(p.stem for p in CHECKLISTS_DIR.glob("*.yaml"))
# Each checklist's step that releases the product from storage for the bedside: Ryoncil
# releases each dose (`transfer`); its `storage_out` ends the course's stay in storage.
RELEASE = {"ryoncil": "transfer"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_every_corrected_checklist_was_released_as_2026_2_with_2026_1_archived() -> None:
    for checklist_id in CORRECTED:
        assert REGISTRY.versions(checklist_id)[:2] == ("2026.1", "2026.2"), checklist_id
        corrected, previous = (REGISTRY.get(checklist_id, v) for v in ("2026.2", "2026.1"))
        assert Path(previous.path) == ARCHIVE / f"{checklist_id}-2026.1.yaml"
        # A new version is released because the rules changed, not only the words.
        assert corrected.rules_digest != previous.rules_digest, checklist_id
    # Amimestrocel's corrections were comments only: its rules stayed 2026.1's.
    assert REGISTRY.versions("amimestrocel")[0] == "2026.1"


@pytest.mark.parametrize("checklist_id", SHIPPED)
def test_the_identity_check_after_the_release_is_a_new_version(checklist_id: str) -> None:
    """The order rule [storage_out, identity_check] changes what judges records: the newest
    version has it, the version before (archived byte for byte) does not."""
    versions = REGISTRY.versions(checklist_id)
    newest, previous = REGISTRY.get(checklist_id), REGISTRY.get(checklist_id, versions[-2])
    assert (
        newest.version == versions[-1] == ("2026.2" if checklist_id == "amimestrocel" else "2026.3")
    )
    assert Path(newest.path) == CHECKLISTS_DIR / f"{checklist_id}.yaml"
    assert Path(previous.path) == ARCHIVE / f"{checklist_id}-{previous.version}.yaml"
    release = RELEASE.get(checklist_id, "storage_out")

    def orders(checklist) -> dict[str, tuple]:
        return {r.id: r.spec.steps for r in checklist.rules if isinstance(r.spec, OrderSpec)}

    rule = f"{checklist_id}.release_before_identity_check"
    assert orders(newest)[rule] == (release, "identity_check")
    assert rule not in orders(previous)
    assert next(r for r in newest.rules if r.id == rule).severity == "critical"
    assert newest.rules_digest != previous.rules_digest


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
def test_units_of_an_archived_version_are_judged_by_it(folder: Path) -> None:
    """An archived version's own compliant units stay clean under it, and some of the same
    records would not be clean under the newest version (2026.1's before the label
    corrections; 2026.2's with an identity check made before the release): registering
    them under their version is what keeps last month's audit as it was."""
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
    under_newest = findings_for(REGISTRY, to_interchange(new, "newest"), "Y-EU-1")
    assert [(f.rule, f.severity, f.actual) for f in under_newest] == [
        ("yescarta.thaw_to_infusion_start_eu", "major", "45m")
    ]


IMPORTER = accounts.Actor.system("test importer")


def test_units_registered_under_each_version_are_judged_by_it_from_the_database(
    session, make_site
) -> None:
    """The same Kymriah EU records (no premedication: 2026.1 had no such step), once in a
    unit registered under 2026.1, once in a new unit: the first is clean, the second is
    judged by the newest version, which (since 2026.2) asks for the premedication before
    every CAR-T infusion."""
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
        "K-EU-2": REGISTRY.get("kymriah").version,
    }
    judged = batch.judge(REGISTRY, now=None)
    assert judged["K-EU-1"].findings == []
    assert {f.rule for f in judged["K-EU-2"].findings} >= {"kymriah.premedication.done"}


def test_checklist_list_shows_every_version() -> None:
    result = CliRunner().invoke(checklist_group, ["list"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    kymriah = [(r[1], r[2], r[-1]) for r in rows if r[0] == "kymriah"]
    assert kymriah == [
        ("2026.3", "current", "checklists/kymriah.yaml"),
        ("2026.2", "archived", "checklists/archive/kymriah-2026.2.yaml"),
        ("2026.1", "archived", "checklists/archive/kymriah-2026.1.yaml"),
    ]
    assert [r[1:3] for r in rows if r[0] == "amimestrocel"] == [
        ["2026.2", "current"],
        ["2026.1", "archived"],
    ]
    data = json.loads(CliRunner().invoke(checklist_group, ["list", "--format", "json"]).output)
    assert {(c["checklist"], c["version"]) for c in data["checklists"]} >= {
        ("yescarta", "2026.1"),
        ("yescarta", "2026.2"),
        ("yescarta", "2026.3"),
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
