"""The registry: every checklist version and profile of a folder, read and checked together."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from qms.checklists.language.model import Checklist, Profile
from qms.checklists.language.problems import ChecklistError
from qms.checklists.language.profiles import SiteOverrides, load_profile, load_site_overrides
from qms.checklists.language.reader import load_checklist


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order of versions: 2026.10 after 2026.9; digits before letters."""
    parts = re.findall(r"\d+|[A-Za-z]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


class Registry:
    """Every checklist version and profile of a folder; `get` picks the newest by default."""

    def __init__(self, checklists: Iterable[Checklist], profiles: Iterable[Profile]):
        self._versions: dict[str, dict[str, Checklist]] = {}
        for checklist in checklists:
            self._versions.setdefault(checklist.id, {})[checklist.version] = checklist
        self._profiles = {p.id: p for p in profiles}

    @classmethod
    def from_directory(
        cls, path: str | Path | None = None, site_overrides: str | Path | None = None
    ) -> Registry:
        from qms.paths import CHECKLISTS_DIR

        root = Path(path) if path is not None else CHECKLISTS_DIR
        key = _contents_key(root, site_overrides)
        if key is not None and key in _READ:
            return _READ[key]
        overrides = load_site_overrides(site_overrides) if site_overrides is not None else None
        checklists, profiles, problems = _load_tree(root, overrides)
        if problems:
            raise ChecklistError(problems)
        registry = cls(checklists, profiles)
        if key is not None:
            if len(_READ) >= _READ_KEPT:
                _READ.pop(next(iter(_READ)))
            _READ[key] = registry
        return registry

    def get(self, checklist_id: str, version: str | None = None) -> Checklist:
        versions = self._versions.get(checklist_id)
        if not versions:
            raise KeyError(
                f"unknown checklist {checklist_id!r}; known: {', '.join(sorted(self._versions)) or 'none'}"
            )
        if version is None:
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise KeyError(
                f"checklist {checklist_id!r} has no version {version!r}; versions: {', '.join(sorted(versions, key=version_key))}"
            )
        return versions[version]

    def versions(self, checklist_id: str) -> tuple[str, ...]:
        return tuple(sorted(self._versions.get(checklist_id, {}), key=version_key))

    def profile(self, name: str) -> Profile:
        if name not in self._profiles:
            raise KeyError(
                f"unknown profile {name!r}; known: {', '.join(sorted(self._profiles)) or 'none'}"
            )
        return self._profiles[name]

    @property
    def profiles(self) -> Mapping[str, Profile]:
        return MappingProxyType(self._profiles)

    def __iter__(self) -> Iterator[Checklist]:
        for cid in sorted(self._versions):
            yield self.get(cid)

    def __contains__(self, checklist_id: object) -> bool:
        return checklist_id in self._versions

    def __len__(self) -> int:
        return len(self._versions)


# Registries already read in this process, by the exact bytes of every file they were read
# from: a registry never changes once built, and reading the shipped folder takes a second
# or more (every test app and command that builds a runtime asks for one).
_READ: dict[tuple, Registry] = {}
_READ_KEPT = 8


def _contents_key(root: Path, site_overrides: str | Path | None) -> tuple | None:
    """The files a registry of `root` would be read from, with a digest of each; None when
    one of them cannot be read (the reading itself then says why)."""
    try:
        checklists, profiles = checklist_files(root) if root.exists() else ([], [])
        files = [*checklists, *profiles]
        if site_overrides is not None:
            files.append(Path(site_overrides))
        return (
            str(root.resolve()),
            str(site_overrides),
            tuple((str(f), hashlib.sha256(f.read_bytes()).digest()) for f in files),
        )
    except OSError:
        return None


def checklist_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Checklist files (any *.yaml outside profiles/) and profile files (profiles/*.yaml)."""
    if root.is_file():
        return ([], [root]) if root.parent.name == "profiles" else ([root], [])
    profiles = sorted((root / "profiles").glob("*.yaml")) if (root / "profiles").is_dir() else []
    checklists = sorted(
        p for p in root.rglob("*.yaml") if "profiles" not in p.relative_to(root).parts
    )
    return checklists, profiles


def _load_tree(
    root: Path, overrides: SiteOverrides | None
) -> tuple[list[Checklist], list[Profile], list[str]]:
    problems: list[str] = []
    if not root.exists():
        return (
            [],
            [],
            [f"{root}:1: no such file or folder; give a checklist file or a folder of them"],
        )
    checklist_paths, profile_paths = checklist_files(root)
    profiles: list[Profile] = []
    for path in profile_paths:
        try:
            profiles.append(load_profile(path))
        except ChecklistError as exc:
            problems.extend(exc.problems)
    # A single file is linted on its own; in a folder, `when: profile:` must name a profile
    # file of that folder (or, for a lone checklist, of its sibling profiles/ folder).
    known = {p.id for p in profiles} or None
    if root.is_file() and (root.parent / "profiles").is_dir():
        known = {p.stem for p in (root.parent / "profiles").glob("*.yaml")}
    checklists: list[Checklist] = []
    seen: dict[tuple[str, str], str] = {}
    used_overrides: set[str] = set()
    for path in checklist_paths:
        try:
            # Read once without overrides to learn the id; then apply this site's values.
            checklist = load_checklist(path, known_profiles=known)
            if overrides is not None and checklist.id in overrides.parameters:
                used_overrides.add(checklist.id)
                values = overrides.parameters[checklist.id]
                if root.is_dir() and "archive" in path.relative_to(root).parts:
                    # A site file is written for the current version: an archived one takes
                    # the values of the parameters it has (a later version may add some).
                    values = {k: v for k, v in values.items() if k in checklist.parameters}
                try:
                    checklist = load_checklist(
                        path,
                        known_profiles=known,
                        overrides=values,
                        site=overrides.site,
                    )
                except ChecklistError as exc:
                    problems.extend(
                        f"{overrides.path}:{overrides.lines[checklist.id]}: {p}"
                        for p in exc.problems
                    )
                    continue
        except ChecklistError as exc:
            problems.extend(exc.problems)
            continue
        key = (checklist.id, checklist.version)
        if key in seen:
            problems.append(
                f"{path}:1: checklist {checklist.id!r} version {checklist.version!r} is also defined in {seen[key]}; give each version its own number"
            )
            continue
        seen[key] = str(path)
        checklists.append(checklist)
    if overrides is not None:
        for cid, line in overrides.lines.items():
            if cid not in used_overrides:
                problems.append(
                    f"{overrides.path}:{line}: no checklist {cid!r} to override; checklists: {', '.join(sorted({c.id for c in checklists}))}"
                )
    return checklists, profiles, problems
