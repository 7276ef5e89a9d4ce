"""Problems in checklist files: the error listing them and the collector pinning each to a line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from qms.checklists.language.model import LANGUAGES, Text
from qms.checklists.yamlnodes import LList, LMap

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# Checklist ids may also use hyphens (e.g. car-t-institutional): they name files, not keys.
_CHECKLIST_ID = re.compile(r"^[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*$")
_PARAM = re.compile(r"^\$([a-z][a-z0-9_]*)$")


class ChecklistError(Exception):
    """One or more problems in checklist files, each "file:line: what is wrong; what is allowed"."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _type_name(value: Any) -> str:
    if isinstance(value, LMap):
        return "a mapping"
    if isinstance(value, LList):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "yes/no"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def _suggest(word: Any, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Collects problems for one file, each pinned to a line."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[str] = []

    def err(self, line: int, what: str, allowed: str) -> None:
        self.problems.append(f"{self.path}:{line}: {what}; {allowed}")

    def keys(self, mapping: LMap, allowed: tuple[str, ...], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.err(
                    mapping.lines[key],
                    f"unknown key {key!r} in {where}{_suggest(key, allowed)}",
                    f"allowed: {', '.join(allowed)}",
                )

    def mapping(self, value: Any, line: int, where: str) -> LMap | None:
        if isinstance(value, LMap):
            return value
        self.err(
            line,
            f"{where} must be a mapping (key: value lines), got {_type_name(value)}",
            "indent its keys under it",
        )
        return None

    def text(self, mapping: LMap, key: str, where: str, *, required: bool = True) -> str | None:
        if key not in mapping:
            if required:
                self.err(mapping.line, f"{where} has no {key!r}", f"add `{key}: ...`")
            return None
        value = mapping[key]
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.err(
            mapping.lines[key],
            f"{key!r} of {where} must be text, got {_type_name(value)}",
            "write it in quotes if needed",
        )
        return None

    def words(self, mapping: LMap, key: str, where: str, *, required: bool = True) -> Text | None:
        """Text people read: a string (English), or a mapping of languages {en: ..., zh: ...}."""
        if key not in mapping:
            if required:
                self.err(mapping.line, f"{where} has no {key!r}", f"add `{key}: ...`")
            return None
        return self.words_of(mapping[key], mapping.lines[key], f"{key!r} of {where}")

    def words_of(self, value: Any, line: int, what: str) -> Text | None:
        if isinstance(value, str) and value.strip():
            return Text(value.strip())
        if not isinstance(value, LMap):
            self.err(
                line,
                f"{what} must be text or a mapping of languages, got {_type_name(value)}",
                "write it in quotes if needed, or as {en: ..., zh: ...}",
            )
            return None
        good = True
        texts: dict[str, str] = {}
        for lang, text in value.items():
            if lang not in LANGUAGES:
                good = False
                self.err(
                    value.lines[lang],
                    f"{what} gives language {lang!r}{_suggest(lang, LANGUAGES)}",
                    "allowed languages: " + ", ".join(LANGUAGES),
                )
            elif isinstance(text, str) and not text.strip():
                good = False
                self.err(
                    value.lines[lang], f"the {lang} text of {what} is empty", "write the words"
                )
            elif not isinstance(text, str):
                good = False
                self.err(
                    value.lines[lang],
                    f"the {lang} text of {what} must be text, got {_type_name(text)}",
                    "write it in quotes if needed",
                )
            else:
                texts[lang] = text.strip()
        if "en" not in value:
            self.err(
                value.line,
                f"{what} gives no English (en)",
                "give `en:` (required) and `zh:` (optional)",
            )
            return None
        if not good:
            return None
        en = texts.pop("en")
        return Text(en, texts)

    def flag(self, mapping: LMap, key: str, where: str, default: bool) -> bool:
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool):
            return value
        self.err(
            mapping.lines[key],
            f"{key!r} of {where} must be true or false, got {value!r}",
            "allowed: true, false",
        )
        return default

    def ident(self, value: Any, line: int, what: str, *, hyphens: bool = False) -> str | None:
        pattern = _CHECKLIST_ID if hyphens else _ID
        if isinstance(value, str) and pattern.match(value):
            return value
        allowed = "use lower-case letters, digits and _, starting with a letter"
        self.err(
            line, f"{what} {value!r} is not a valid id", allowed + (" (and -)" if hyphens else "")
        )
        return None
