"""Jurisdiction profiles (profiles/*.yaml) and a site's file of parameter values."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qms.checklists.language.model import Profile, Text
from qms.checklists.language.problems import ChecklistError, _Reader
from qms.checklists.yamlnodes import LList, LMap, YamlProblem, load_located

PROFILE_KEYS = ("id", "title", "description")
OVERRIDE_KEYS = ("site", "parameters")


def load_profile(path: str | Path, *, display_path: str | None = None) -> Profile:
    path = Path(path)
    shown = display_path or str(path)
    reader = _Reader(shown)
    try:
        raw = path.read_bytes()
        doc = load_located(raw.decode("utf-8"))
    except OSError as exc:
        raise ChecklistError(
            [f"{shown}:1: cannot read the file ({exc.strerror}); give a readable .yaml file"]
        ) from None
    except UnicodeDecodeError:
        raise ChecklistError([f"{shown}:1: the file is not UTF-8 text; save it as UTF-8"]) from None
    except YamlProblem as exc:
        raise ChecklistError([f"{shown}:{exc.line}: {exc.message}; fix the YAML syntax"]) from None
    if not isinstance(doc, LMap):
        raise ChecklistError(
            [
                f"{shown}:1: a profile is a mapping with {', '.join(PROFILE_KEYS)}; start with `id: ...`"
            ]
        )
    reader.keys(doc, PROFILE_KEYS, "the profile")
    pid = reader.ident(doc["id"], doc.lines["id"], "profile id") if "id" in doc else None
    if "id" not in doc:
        reader.err(doc.line, "the profile has no 'id'", "add `id: us` (matching the file name)")
    elif pid is not None and pid != path.stem:
        reader.err(
            doc.lines["id"],
            f"profile id {pid!r} differs from the file name {path.name!r}",
            f"name the file {pid}.yaml or the id {path.stem}",
        )
    title = reader.words(doc, "title", "the profile")
    description = reader.words(doc, "description", "the profile", required=False) or Text("")
    if reader.problems or pid is None or title is None:
        raise ChecklistError(reader.problems)
    return Profile(
        id=pid,
        title=title,
        description=description,
        digest=hashlib.sha256(raw).hexdigest(),
        path=shown,
    )


# --------------------------------------------------------------------------- site overrides


@dataclass(frozen=True, slots=True)
class SiteOverrides:
    site: str | None
    parameters: Mapping[str, Mapping[str, Any]]  # checklist id -> parameter -> value
    path: str
    lines: Mapping[str, int]  # checklist id -> line


def load_site_overrides(path: str | Path) -> SiteOverrides:
    """A site's file of parameter values: `parameters: {kymriah: {thaw_to_infusion: 20m}}`."""
    path = Path(path)
    shown = str(path)
    reader = _Reader(shown)
    try:
        doc = load_located(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChecklistError(
            [f"{shown}:1: cannot read the file ({exc.strerror}); give a readable .yaml file"]
        ) from None
    except YamlProblem as exc:
        raise ChecklistError([f"{shown}:{exc.line}: {exc.message}; fix the YAML syntax"]) from None
    if not isinstance(doc, LMap):
        raise ChecklistError(
            [
                f"{shown}:1: a site file is a mapping with site and parameters; see docs/checklists.md"
            ]
        )
    reader.keys(doc, OVERRIDE_KEYS, "the site file")
    site = reader.text(doc, "site", "the site file", required=False)
    params: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    node = (
        reader.mapping(
            doc.get("parameters", LMap()), doc.lines.get("parameters", doc.line), "parameters"
        )
        if "parameters" in doc
        else None
    )
    if node is None and "parameters" not in doc:
        reader.err(
            doc.line,
            "the site file has no 'parameters'",
            "add `parameters:` with `<checklist id>: {<parameter>: <value>}`",
        )
    for cid, values in (node or {}).items():
        body = reader.mapping(values, node.lines[cid], f"parameters of {cid}")
        if body is None:
            continue
        for name, value in body.items():
            if isinstance(value, LMap | LList) or value is None:
                reader.err(
                    body.lines[name],
                    f"{cid}.{name} must be a single value",
                    "e.g. 20m, 20, '20 mL/min'",
                )
        params[cid] = {k: v for k, v in body.items()}
        lines[cid] = node.lines[cid]
    if reader.problems:
        raise ChecklistError(reader.problems)
    return SiteOverrides(
        site,
        MappingProxyType({k: MappingProxyType(v) for k, v in params.items()}),
        shown,
        MappingProxyType(lines),
    )
