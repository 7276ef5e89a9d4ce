"""The checklist language: reading checklist, profile and site files into immutable objects.

Every problem is reported as ``file:line: what is wrong; what is allowed`` and all of a
file's problems are reported at once, so that an author fixes a file in one pass.
docs/checklists.md is the reference for authors; keep it in step with this module.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qms.checklists.facts import KINDS, SEVERITIES
from qms.checklists.quantities import (
    QuantityError,
    format_duration,
    format_quantity,
    normalise_unit,
    parse_duration,
    parse_quantity,
)
from qms.checklists.yamlnodes import LList, LMap, YamlProblem, load_located

ROLES = ("nurse", "physician", "pharmacist", "quality_officer", "regulator", "admin")
FIELD_TYPES = {
    "number": "a number with a unit (unit: mL/min)",
    "temperature": "a temperature in °C",
    "text": "free text",
    "choice": "one of a list of words (choices: [...])",
    "yes_no": "yes or no",
    "datetime": "a date and time with its UTC offset",
    "identifier": "a scanned identifier (ISBT 128 DIN, chain-of-identity id, GS1)",
    "equipment": "the id of a storage device",
    "person": "a user name",
}
IDENTIFIER_SCHEMES = ("din", "coi", "gs1", "any")
WINDOW_PAIRS = {
    "last_start": "each `to` record is measured from the latest `from` record before it",
    "in_turn": "the first `from` is measured to the first `to` after it, the second to the next, and so on (bags)",
    "first_end": "each `from` record is measured to the first `to` record after it",
    "first_start": "each `to` record is measured from the first `from` record of the unit",
}
UNIT_FIELDS = ("id", "site", "coi_id", "patient", "profile")  # `unit.<name>`; else attributes
STANDARD_STEPS = (
    "prescription_check",
    "receipt",
    "storage_in",
    "storage_out",
    "transfer",
    "tocilizumab_check",
    "premedication",
    "identity_check",
    "thaw_start",
    "thaw_end",
    "reconstitution",
    "dilution",
    "bag_prepared",
    "infusion_start",
    "infusion_end",
    "interruption",
    "restart",
    "observation",
    "discharge",
    "disposal",
)
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# Checklist ids may also use hyphens (e.g. car-t-institutional): they name files, not keys.
_CHECKLIST_ID = re.compile(r"^[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*$")
_PARAM = re.compile(r"^\$([a-z][a-z0-9_]*)$")

CHECKLIST_KEYS = (
    "id",
    "title",
    "version",
    "product",
    "description",
    "sources",
    "parameters",
    "steps",
    "rules",
)
STEP_KEYS = (
    "title",
    "says",
    "roles",
    "witness",
    "repeats",
    "required",
    "when",
    "severity",
    "source",
    "fields",
)
FIELD_KEYS = ("type", "label", "unit", "required", "choices", "range", "scheme")
RULE_COMMON_KEYS = ("says", "severity", "source", "when", "kind")
RULE_SHAPES = ("order", "window", "every", "field", "storage")
FIELD_TESTS = (
    "min",
    "max",
    "one_of",
    "not_one_of",
    "must_be",
    "equals_field",
    "at_most_field",
    "at_least_field",
)
WINDOW_KEYS = ("from", "to", "min", "max", "pair", "require_from")
EVERY_KEYS = ("step", "from", "interval", "for")
STORAGE_KEYS = ("min", "max", "tolerate")
TOLERATE_KEYS = ("up_to", "for", "mkt_max")
CONDITION_KEYS = ("profile", "field", "equals", "one_of", "at_least", "at_most", "present")
PROFILE_KEYS = ("id", "title", "description")
OVERRIDE_KEYS = ("site", "parameters")


class ChecklistError(Exception):
    """One or more problems in checklist files, each "file:line: what is wrong; what is allowed"."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# --------------------------------------------------------------------------- objects


@dataclass(frozen=True, slots=True)
class FieldRef:
    """`step.field` or `unit.name` (a unit's own value or one of its attributes)."""

    step: str | None  # None: the unit
    name: str

    @property
    def text(self) -> str:
        return f"{self.step or 'unit'}.{self.name}"


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: str
    label: str
    unit: str | None
    required: bool
    choices: tuple[str, ...]
    range: tuple[float, float] | None
    scheme: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Test:
    """One condition test: on the profile, or on a field's value."""

    profiles: frozenset[str] | None
    ref: FieldRef | None
    op: str | None  # equals, one_of, at_least, at_most, present
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class Condition:
    """`when:` — all tests must hold for the step or rule to apply."""

    tests: tuple[Test, ...]

    @property
    def profiles(self) -> frozenset[str] | None:
        out: frozenset[str] | None = None
        for test in self.tests:
            if test.profiles is not None:
                out = test.profiles if out is None else out & test.profiles
        return out

    @property
    def field_tests(self) -> tuple[Test, ...]:
        return tuple(t for t in self.tests if t.ref is not None)

    @property
    def text(self) -> str:
        return " and ".join(t.text for t in self.tests)


@dataclass(frozen=True, slots=True)
class StepDef:
    id: str
    title: str
    says: str
    roles: tuple[str, ...]
    witness_required: bool
    witness_roles: tuple[str, ...]
    repeats: bool
    required: bool
    when: Condition | None
    severity: str
    source: str
    fields: Mapping[str, FieldDef]
    line: int


@dataclass(frozen=True, slots=True)
class OrderSpec:
    steps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WindowSpec:
    start: str
    end: str
    min: timedelta | None
    max: timedelta | None
    pair: str
    require_from: bool = False

    @property
    def limit_text(self) -> str:
        # design.md: a plain maximum reads "30m".
        if self.min is not None and self.max is not None:
            return f"{format_duration(self.min)}–{format_duration(self.max)}"
        if self.max is not None:
            return format_duration(self.max)
        return f"≥ {format_duration(self.min or timedelta(0))}"


@dataclass(frozen=True, slots=True)
class EverySpec:
    """A record of step `end` in every `interval` after the last `start`, for `span`.

    E.g. daily CRS/ICANS assessment for 7 days after the infusion. Named start/end like a
    window so that `when` filters on the two steps work the same way.
    """

    start: str
    end: str
    interval: timedelta
    span: timedelta

    @property
    def periods(self) -> int:
        return -(-self.span // self.interval)  # ceiling: a last, shorter period counts

    @property
    def limit_text(self) -> str:
        return f"every {format_duration(self.interval)} for {format_duration(self.span)}"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    ref: FieldRef
    unit: str | None
    min: float | None
    max: float | None
    one_of: tuple[Any, ...] | None
    not_one_of: tuple[Any, ...] | None
    must_be: Any
    has_must_be: bool
    compare: str | None  # equals, at_most, at_least
    other: FieldRef | None

    @property
    def limit_text(self) -> str:
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"{_num(self.min)}–{format_quantity(self.max, self.unit)}")
        elif self.min is not None:
            parts.append(f"≥ {format_quantity(self.min, self.unit)}")
        elif self.max is not None:
            parts.append(f"≤ {format_quantity(self.max, self.unit)}")
        if self.one_of is not None:
            parts.append("one of " + ", ".join(_show(v) for v in self.one_of))
        if self.not_one_of is not None:
            parts.append("not " + ", ".join(_show(v) for v in self.not_one_of))
        if self.has_must_be:
            parts.append(_show(self.must_be))
        if self.compare is not None and self.other is not None:
            word = {"equals": "equal to", "at_most": "at most", "at_least": "at least"}[
                self.compare
            ]
            parts.append(f"{word} {self.other.text}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class StorageSpec:
    min: float | None
    max: float | None
    tolerate_up_to: float | None
    tolerate_for: timedelta | None
    mkt_max: float | None

    @property
    def limit_text(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{_num(self.min)}–{format_quantity(self.max, '°C')}"
        if self.max is not None:
            return f"≤ {format_quantity(self.max, '°C')}"
        return f"≥ {format_quantity(self.min or 0.0, '°C')}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One checkable requirement with its id, severity and source.

    Rules written in `rules:` have ids like `kymriah.thaw_to_infusion`; the rules every
    step implies (done, witness, role, record) have ids like `kymriah.identity_check.done`.
    """

    id: str
    name: str
    kind: str
    severity: str
    source: str
    says: str
    when: Condition | None
    step: str | None  # the step a generated rule belongs to
    spec: OrderSpec | WindowSpec | EverySpec | FieldSpec | StorageSpec | None
    generated: bool
    line: int

    @property
    def limit_text(self) -> str | None:
        spec = self.spec
        if isinstance(spec, WindowSpec | EverySpec | FieldSpec | StorageSpec):
            return spec.limit_text
        if isinstance(spec, OrderSpec):
            return " before ".join(spec.steps)
        return None


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    value: Any  # as written (after any override)
    default: Any  # as written in the checklist
    line: int

    @property
    def overridden(self) -> bool:
        return self.value != self.default


@dataclass(frozen=True, eq=False)
class Checklist:
    """A loaded checklist: immutable; equal to another exactly when the digests are equal."""

    id: str
    title: str
    version: str
    product: str
    description: str
    sources: Mapping[str, str]
    parameters: Mapping[str, Parameter]
    steps: Mapping[str, StepDef]
    rules: tuple[Rule, ...]
    digest: str
    path: str
    site: str | None = None  # the site whose overrides were applied, if any
    _rule_index: Mapping[str, Rule] = field(default_factory=dict, repr=False)

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checklist) and other.digest == self.digest

    def rule(self, rule_id: str) -> Rule:
        return self._rule_index[rule_id]

    @property
    def uses_profiles(self) -> bool:
        return any(
            r.when is not None and r.when.profiles is not None
            for r in self.rules
            if not r.generated
        ) or any(s.when is not None and s.when.profiles is not None for s in self.steps.values())


@dataclass(frozen=True, slots=True)
class Profile:
    id: str
    title: str
    description: str
    digest: str
    path: str


# --------------------------------------------------------------------------- helpers


def _num(value: float) -> str:
    return format_quantity(value, None)


def _show(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


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


# --------------------------------------------------------------------------- checklist


def load_checklist(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    site: str | None = None,
    known_profiles: Iterable[str] | None = None,
    display_path: str | None = None,
) -> Checklist:
    """Read one checklist file; raise ChecklistError listing every problem found.

    `overrides` replaces parameter values (a site's own file); the result's digest then
    covers the overrides too, so records show exactly which limits they were judged by.
    """
    path = Path(path)
    shown = display_path or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ChecklistError(
            [f"{shown}:1: cannot read the file ({exc.strerror}); give a readable .yaml file"]
        ) from None
    return parse_checklist(
        raw, shown, overrides=overrides, site=site, known_profiles=known_profiles
    )


def parse_checklist(
    raw: bytes,
    path: str,
    *,
    overrides: Mapping[str, Any] | None = None,
    site: str | None = None,
    known_profiles: Iterable[str] | None = None,
) -> Checklist:
    reader = _Reader(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ChecklistError([f"{path}:1: the file is not UTF-8 text; save it as UTF-8"]) from None
    try:
        doc = load_located(text)
    except YamlProblem as exc:
        raise ChecklistError([f"{path}:{exc.line}: {exc.message}; fix the YAML syntax"]) from None
    if not isinstance(doc, LMap):
        raise ChecklistError(
            [
                f"{path}:1: a checklist is a mapping with {', '.join(CHECKLIST_KEYS)}; start with `id: ...`"
            ]
        )
    builder = _ChecklistBuilder(reader, doc, dict(overrides or {}), known_profiles)
    checklist = builder.build(raw, site)
    if reader.problems or checklist is None:
        raise ChecklistError(reader.problems)
    return checklist


class _ChecklistBuilder:
    def __init__(
        self,
        reader: _Reader,
        doc: LMap,
        overrides: dict[str, Any],
        known_profiles: Iterable[str] | None,
    ):
        self.r = reader
        self.doc = doc
        self.overrides = overrides
        self.known_profiles = frozenset(known_profiles) if known_profiles is not None else None
        self.params: dict[str, Parameter] = {}
        self.used_params: set[str] = set()
        self.steps: dict[str, StepDef] = {}
        self.sources: dict[str, str] = {}

    # -- top level
    def build(self, raw: bytes, site: str | None) -> Checklist | None:
        r, doc = self.r, self.doc
        r.keys(doc, CHECKLIST_KEYS, "the checklist")
        cid = None
        if "id" in doc:
            cid = r.ident(doc["id"], doc.lines["id"], "checklist id", hyphens=True)
        else:
            r.err(
                doc.line,
                "the checklist has no 'id'",
                "add `id: <product>` (lower case, e.g. kymriah)",
            )
        title = r.text(doc, "title", "the checklist")
        product = r.text(doc, "product", "the checklist")
        description = r.text(doc, "description", "the checklist", required=False) or ""
        version = None
        if "version" not in doc:
            r.err(doc.line, "the checklist has no 'version'", 'add `version: "2026.1"` (quoted)')
        elif isinstance(doc["version"], str) and doc["version"].strip():
            version = doc["version"].strip()
        else:
            r.err(
                doc.lines["version"],
                f"version {doc['version']!r} must be quoted text",
                'write it in quotes, e.g. version: "2026.1" (YAML reads 1.10 as the number 1.1)',
            )
        self._sources()
        self._parameters()
        steps_node = doc.get("steps")
        if steps_node is None:
            r.err(doc.line, "the checklist has no 'steps'", "add `steps:` with at least one step")
        elif (steps := r.mapping(steps_node, doc.lines["steps"], "steps")) is not None:
            if not steps:
                r.err(doc.lines["steps"], "'steps' is empty", "add at least one step")
            for sid, body in steps.items():
                self._step(sid, body, steps.lines[sid])
        rules: list[Rule] = []
        if (
            "rules" in doc
            and (node := r.mapping(doc["rules"], doc.lines["rules"], "rules")) is not None
        ):
            for name, body in node.items():
                rule = self._rule(cid or "?", name, body, node.lines[name])
                if rule is not None:
                    rules.append(rule)
        self._check_overrides()
        for name, param in self.params.items():
            if name not in self.used_params:
                r.err(
                    param.line,
                    f"parameter {name!r} is not used by any rule",
                    "use it as $" + name + " or remove it",
                )
        self._check_cycles(rules)
        if r.problems or cid is None or title is None or product is None or version is None:
            return None
        generated = self._generated_rules(cid, rules)
        all_rules = tuple(generated + rules)
        digest = hashlib.sha256(raw).hexdigest()
        if self.overrides:
            # A site's overrides change the limits, so they are part of what a record was
            # judged by: the digest covers them.
            canon = json.dumps(self.overrides, sort_keys=True, default=str, ensure_ascii=False)
            digest = hashlib.sha256((digest + "\n" + canon).encode()).hexdigest()
        return Checklist(
            id=cid,
            title=title,
            version=version,
            product=product,
            description=description,
            sources=MappingProxyType(dict(self.sources)),
            parameters=MappingProxyType(dict(self.params)),
            steps=MappingProxyType(dict(self.steps)),
            rules=all_rules,
            digest=digest,
            path=self.r.path,
            site=site,
            _rule_index=MappingProxyType({rule.id: rule for rule in all_rules}),
        )

    def _sources(self) -> None:
        r, doc = self.r, self.doc
        if "sources" not in doc:
            r.err(
                doc.line,
                "the checklist has no 'sources'",
                "list the documents its rules cite, e.g. `Kymriah US PI: <full citation>`",
            )
            return
        node = r.mapping(doc["sources"], doc.lines["sources"], "sources")
        if node is None:
            return
        if not node:
            r.err(doc.lines["sources"], "'sources' is empty", "list the documents the rules cite")
        for key, citation in node.items():
            if not isinstance(key, str) or not isinstance(citation, str) or not citation.strip():
                r.err(
                    node.lines[key],
                    f"source {key!r} must be `short name: full citation`",
                    "e.g. `Kymriah US PI: Kymriah US Prescribing Information, rev. 2024`",
                )
                continue
            self.sources[key] = citation.strip()

    def _source(self, body: LMap, where: str) -> str:
        source = self.r.text(body, "source", where)
        if source is None:
            return ""
        # A source cites one of the checklist's documents by its short name, then the
        # section: "Kymriah US PI §2.3". Checked, so that every limit is traceable.
        if self.sources and not any(
            source == key or source.startswith(key + " ") for key in self.sources
        ):
            self.r.err(
                body.lines["source"],
                f"source {source!r} of {where} does not start with one of the checklist's sources",
                "start with one of: " + ", ".join(self.sources) + " (then the section, e.g. §2.3)",
            )
        return source

    def _severity(self, body: LMap, where: str) -> str:
        if "severity" not in body:
            self.r.err(body.line, f"{where} has no 'severity'", f"allowed: {', '.join(SEVERITIES)}")
            return "major"
        value = body["severity"]
        if value not in SEVERITIES:
            self.r.err(
                body.lines["severity"],
                f"severity {value!r} of {where} is not known{_suggest(value, SEVERITIES)}",
                f"allowed: {', '.join(SEVERITIES)}",
            )
            return "major"
        return value

    def _parameters(self) -> None:
        r, doc = self.r, self.doc
        if "parameters" not in doc:
            return
        node = r.mapping(doc["parameters"], doc.lines["parameters"], "parameters")
        if node is None:
            return
        for name, value in node.items():
            line = node.lines[name]
            if r.ident(name, line, "parameter name") is None:
                continue
            if isinstance(value, LMap | LList) or value is None:
                r.err(
                    line,
                    f"parameter {name!r} must be a single value, got {_type_name(value)}",
                    "e.g. 30m, 20, '20 mL/min', '-120 °C'",
                )
                continue
            self.params[name] = Parameter(
                name=name, value=self.overrides.get(name, value), default=value, line=line
            )

    def _check_overrides(self) -> None:
        for name, value in self.overrides.items():
            if name not in self.params:
                self.r.err(
                    self.doc.lines.get("parameters", self.doc.line),
                    f"a site override names parameter {name!r}, which this checklist does not have{_suggest(name, self.params)}",
                    "parameters: " + (", ".join(self.params) or "none"),
                )
                continue
            default = self.params[name].default
            if _param_shape(value) != _param_shape(default):
                self.r.err(
                    self.params[name].line,
                    f"the site override {name}: {value!r} is not the same kind of value as the default {default!r}",
                    f"write {_param_shape(default)} like the default",
                )

    # -- values that may be a $parameter
    def _value(self, value: Any, line: int) -> tuple[Any, str | None]:
        if isinstance(value, str):
            match = _PARAM.match(value.strip())
            if match:
                name = match.group(1)
                if name not in self.params:
                    self.r.err(
                        line,
                        f"unknown parameter ${name}{_suggest(name, self.params)}",
                        "declare it under `parameters:` or use one of: "
                        + (", ".join("$" + p for p in self.params) or "none"),
                    )
                    return None, name
                self.used_params.add(name)
                return self.params[name].value, name
        return value, None

    def _duration(self, value: Any, line: int, what: str) -> timedelta | None:
        resolved, param = self._value(value, line)
        if resolved is None:
            return None
        try:
            return parse_duration(resolved)
        except QuantityError as exc:
            via = f" (parameter ${param})" if param else ""
            self.r.err(
                line,
                f"{what}{via}: {exc}".split("; ")[0],
                "write a duration such as 30m, 1h, 1h30m, 8d",
            )
            return None

    def _quantity(self, value: Any, line: int, unit: str | None, what: str) -> float | None:
        resolved, param = self._value(value, line)
        if resolved is None:
            return None
        try:
            return parse_quantity(resolved, unit)
        except QuantityError as exc:
            via = f" (parameter ${param})" if param else ""
            self.r.err(
                line,
                f"{what}{via}: {exc}",
                f"write a number{' in ' + unit if unit else ''}, e.g. 20 or '20 {unit or ''}'".rstrip(),
            )
            return None

    # -- steps and fields
    def _step(self, sid: Any, body: Any, line: int) -> None:
        r = self.r
        if r.ident(sid, line, "step id") is None:
            return
        where = f"step {sid!r}"
        body = r.mapping(body, line, where)
        if body is None:
            return
        r.keys(body, STEP_KEYS, where)
        title = r.text(body, "title", where) or sid
        says = r.text(body, "says", where, required=False) or ""
        roles = self._roles(body, "roles", where, required=True)
        witness_required = False
        witness_roles: tuple[str, ...] = ()
        if "witness" in body:
            value = body["witness"]
            if value is False or value is None:
                pass
            elif isinstance(value, LList):
                witness_required = True
                witness_roles = self._role_list(value, body.lines["witness"], f"witness of {where}")
            elif isinstance(value, LMap):
                r.keys(value, ("roles", "required"), f"witness of {where}")
                witness_roles = self._roles(value, "roles", f"witness of {where}", required=True)
                witness_required = r.flag(value, "required", f"witness of {where}", True)
            else:
                r.err(
                    body.lines["witness"],
                    f"witness of {where} must be a list of roles, `false`, or a mapping with roles and required",
                    "e.g. witness: [nurse, physician]",
                )
        repeats = r.flag(body, "repeats", where, False)
        required = r.flag(body, "required", where, True)
        when = self._condition(body["when"], body.lines["when"], where) if "when" in body else None
        severity = self._severity(body, where)
        source = self._source(body, where)
        fields: dict[str, FieldDef] = {}
        if (
            "fields" in body
            and (node := r.mapping(body["fields"], body.lines["fields"], f"fields of {where}"))
            is not None
        ):
            for name, spec in node.items():
                fdef = self._field(name, spec, node.lines[name], where)
                if fdef is not None:
                    fields[name] = fdef
        self.steps[sid] = StepDef(
            id=sid,
            title=title,
            says=says,
            roles=roles,
            witness_required=witness_required,
            witness_roles=witness_roles,
            repeats=repeats,
            required=required,
            when=when,
            severity=severity,
            source=source,
            fields=MappingProxyType(fields),
            line=line,
        )

    def _roles(self, body: LMap, key: str, where: str, *, required: bool) -> tuple[str, ...]:
        if key not in body:
            if required:
                self.r.err(
                    body.line,
                    f"{where} has no {key!r}",
                    f"list who may do it, from: {', '.join(ROLES)}",
                )
            return ()
        value = body[key]
        if not isinstance(value, LList) or not value:
            self.r.err(
                body.lines[key],
                f"{key!r} of {where} must be a non-empty list",
                f"e.g. [nurse, physician]; allowed: {', '.join(ROLES)}",
            )
            return ()
        return self._role_list(value, body.lines[key], f"{key} of {where}")

    def _role_list(self, value: LList, line: int, where: str) -> tuple[str, ...]:
        out = []
        for item, item_line in zip(value, value.lines, strict=True):
            if item not in ROLES:
                self.r.err(
                    item_line,
                    f"unknown role {item!r} in {where}{_suggest(item, ROLES)}",
                    f"allowed: {', '.join(ROLES)}",
                )
            else:
                out.append(item)
        if not value:
            self.r.err(line, f"{where} is empty", f"allowed: {', '.join(ROLES)}")
        return tuple(out)

    def _field(self, name: Any, spec: Any, line: int, step_where: str) -> FieldDef | None:
        r = self.r
        if r.ident(name, line, "field name") is None:
            return None
        where = f"field {name!r} of {step_where}"
        if isinstance(spec, str):
            # Shorthand `name: text` for the plain types.
            spec_map = LMap({"type": spec})
            spec_map.line = line
            spec_map.lines = {"type": line}
            spec = spec_map
        spec = r.mapping(spec, line, where)
        if spec is None:
            return None
        r.keys(spec, FIELD_KEYS, where)
        ftype = spec.get("type")
        if ftype not in FIELD_TYPES:
            r.err(
                spec.lines.get("type", line),
                f"type {ftype!r} of {where} is not known{_suggest(ftype, FIELD_TYPES)}",
                "allowed: " + ", ".join(FIELD_TYPES),
            )
            return None
        unit = None
        if ftype == "number":
            if "unit" not in spec:
                r.err(
                    line,
                    f"number {where} has no unit",
                    "add e.g. `unit: mL/min`; units: " + ", ".join(_units()),
                )
            else:
                try:
                    unit = normalise_unit(spec["unit"])
                except QuantityError as exc:
                    r.err(
                        spec.lines["unit"],
                        f"{where}: {str(exc).split(';')[0]}",
                        "allowed units: " + ", ".join(_units()),
                    )
        elif ftype == "temperature":
            unit = "°C"
            if "unit" in spec and spec["unit"] not in ("°C", "C", "degC"):
                r.err(
                    spec.lines["unit"],
                    f"temperature {where} is in °C, not {spec['unit']!r}",
                    "leave out `unit:` or write °C",
                )
        elif "unit" in spec:
            r.err(
                spec.lines["unit"],
                f"{where} is of type {ftype} and cannot have a unit",
                "units belong to number fields",
            )
        choices: tuple[str, ...] = ()
        if ftype == "choice":
            value = spec.get("choices")
            if not isinstance(value, LList) or not value:
                r.err(
                    spec.lines.get("choices", line),
                    f"choice {where} needs a non-empty `choices:` list",
                    "e.g. choices: [none, leukodepleting, 0.2um]",
                )
            else:
                for item, item_line in zip(value, value.lines, strict=True):
                    if not isinstance(item, str):
                        r.err(
                            item_line,
                            f"choice {item!r} of {where} must be text",
                            "quote it: YAML reads yes/no/on/off as true/false and 0.2 as a number",
                        )
                if len(set(value)) != len(value):
                    r.err(
                        spec.lines["choices"],
                        f"choices of {where} repeat a value",
                        "list each choice once",
                    )
                choices = tuple(str(v) for v in value)
        elif "choices" in spec:
            r.err(
                spec.lines["choices"],
                f"{where} is of type {ftype} and cannot have choices",
                "use type: choice",
            )
        rng = None
        if "range" in spec:
            value = spec["range"]
            if ftype not in ("number", "temperature"):
                r.err(
                    spec.lines["range"],
                    f"{where} is of type {ftype} and cannot have a range",
                    "ranges belong to number and temperature fields",
                )
            elif not isinstance(value, LList) or len(value) != 2:
                r.err(
                    spec.lines["range"],
                    f"range of {where} must be [lowest, highest]",
                    "e.g. range: [0, 5]",
                )
            else:
                low = self._quantity(value[0], value.lines[0], unit, f"range of {where}")
                high = self._quantity(value[1], value.lines[1], unit, f"range of {where}")
                if low is not None and high is not None:
                    if low > high:
                        r.err(
                            spec.lines["range"],
                            f"range of {where} is impossible: {_num(low)} > {_num(high)}",
                            "write [lowest, highest]",
                        )
                    rng = (low, high)
        scheme = None
        if "scheme" in spec:
            if ftype != "identifier":
                r.err(
                    spec.lines["scheme"],
                    f"{where} is of type {ftype} and cannot have a scheme",
                    "schemes belong to identifier fields",
                )
            elif spec["scheme"] not in IDENTIFIER_SCHEMES:
                r.err(
                    spec.lines["scheme"],
                    f"unknown identifier scheme {spec['scheme']!r}",
                    "allowed: " + ", ".join(IDENTIFIER_SCHEMES),
                )
            else:
                scheme = spec["scheme"]
        label = r.text(spec, "label", where, required=False) or name.replace("_", " ")
        required = r.flag(spec, "required", where, True)
        return FieldDef(
            name=name,
            type=ftype,
            label=label,
            unit=unit,
            required=required,
            choices=choices,
            range=rng,
            scheme=scheme,
            line=line,
        )

    # -- references and conditions
    def _step_ref(self, value: Any, line: int, where: str) -> str | None:
        if isinstance(value, str) and value in self.steps:
            return value
        self.r.err(
            line,
            f"{where} names unknown step {value!r}{_suggest(value, self.steps)}",
            "steps: " + ", ".join(self.steps),
        )
        return None

    def _field_ref(
        self, value: Any, line: int, where: str
    ) -> tuple[FieldRef, FieldDef | None] | None:
        if not isinstance(value, str) or value.count(".") != 1:
            self.r.err(
                line,
                f"{where}: {value!r} is not a field reference",
                "write step.field (e.g. infusion_start.rate_ml_min) or unit.name (e.g. unit.coi_id)",
            )
            return None
        step, name = value.split(".")
        if step == "unit":
            if not _ID.match(name):
                self.r.err(
                    line,
                    f"{where}: {name!r} is not a valid unit attribute name",
                    f"unit.{', unit.'.join(UNIT_FIELDS)} or unit.<attribute>",
                )
                return None
            return FieldRef(None, name), None
        if step not in self.steps:
            self.r.err(
                line,
                f"{where} names unknown step {step!r}{_suggest(step, self.steps)}",
                "steps: " + ", ".join(self.steps),
            )
            return None
        fields = self.steps[step].fields
        if name not in fields:
            self.r.err(
                line,
                f"{where} names unknown field {name!r} of step {step!r}{_suggest(name, fields)}",
                "fields of " + step + ": " + (", ".join(fields) or "none"),
            )
            return None
        return FieldRef(step, name), fields[name]

    def _condition(self, value: Any, line: int, where: str) -> Condition | None:
        items: list[tuple[Any, int]]
        if isinstance(value, LList):
            items = list(zip(value, value.lines, strict=True))
        else:
            items = [(value, line)]
        tests: list[Test] = []
        for item, item_line in items:
            body = self.r.mapping(item, item_line, f"`when` of {where}")
            if body is None:
                continue
            self.r.keys(body, CONDITION_KEYS, f"`when` of {where}")
            if "profile" not in body and "field" not in body:
                self.r.err(
                    item_line,
                    f"`when` of {where} tests nothing",
                    "give `profile: us` and/or `field: step.field` with equals, one_of, at_least, at_most or present",
                )
            if "profile" in body:
                tests.append(self._profile_test(body["profile"], body.lines["profile"], where))
            ops = [k for k in ("equals", "one_of", "at_least", "at_most", "present") if k in body]
            if "field" in body:
                ref = self._field_ref(body["field"], body.lines["field"], f"`when` of {where}")
                if len(ops) != 1:
                    self.r.err(
                        body.lines["field"],
                        f"`when` of {where} must give exactly one test of the field",
                        "one of: equals, one_of, at_least, at_most, present",
                    )
                elif ref is not None:
                    op = ops[0]
                    raw = body[op]
                    fdef = ref[1]
                    value_ok = raw
                    if op in ("at_least", "at_most"):
                        value_ok = self._quantity(
                            raw, body.lines[op], fdef.unit if fdef else None, f"`when` of {where}"
                        )
                    elif op == "one_of":
                        if not isinstance(raw, LList) or not raw:
                            self.r.err(
                                body.lines[op],
                                f"one_of in `when` of {where} must be a non-empty list",
                                "e.g. one_of: [a, b]",
                            )
                        value_ok = tuple(raw) if isinstance(raw, LList) else ()
                    elif op == "present" and not isinstance(raw, bool):
                        self.r.err(
                            body.lines[op],
                            f"present in `when` of {where} must be true or false",
                            "allowed: true, false",
                        )
                    if fdef is not None and fdef.type == "choice" and op in ("equals", "one_of"):
                        for v in value_ok if op == "one_of" else (value_ok,):
                            if v not in fdef.choices:
                                self.r.err(
                                    body.lines[op],
                                    f"`when` of {where} tests {ref[0].text} for {v!r}, which is not one of its choices",
                                    "choices: " + ", ".join(fdef.choices),
                                )
                    word = {
                        "equals": "is",
                        "one_of": "is one of",
                        "at_least": "is at least",
                        "at_most": "is at most",
                        "present": "is recorded" if raw else "is not recorded",
                    }[op]
                    shown = (
                        ""
                        if op == "present"
                        else " "
                        + (
                            ", ".join(_show(v) for v in value_ok)
                            if op == "one_of"
                            else _show(value_ok)
                        )
                    )
                    tests.append(Test(None, ref[0], op, value_ok, f"{ref[0].text} {word}{shown}"))
            elif ops:
                self.r.err(
                    body.lines[ops[0]],
                    f"`when` of {where} has {ops[0]!r} but no field",
                    "add `field: step.field`",
                )
        return Condition(tuple(tests)) if tests else None

    def _profile_test(self, value: Any, line: int, where: str) -> Test:
        names = list(value) if isinstance(value, LList) else [value]
        good = []
        for name in names:
            if not isinstance(name, str) or not _ID.match(name):
                self.r.err(
                    line,
                    f"profile {name!r} in `when` of {where} is not a profile name",
                    "e.g. profile: us or profile: [eu, cn]",
                )
            elif self.known_profiles is not None and name not in self.known_profiles:
                self.r.err(
                    line,
                    f"unknown profile {name!r} in `when` of {where}{_suggest(name, self.known_profiles)}",
                    "profiles: " + ", ".join(sorted(self.known_profiles)),
                )
            else:
                good.append(name)
        return Test(frozenset(good), None, None, None, "profile is " + " or ".join(good))

    # -- rules
    def _rule(self, cid: str, name: Any, body: Any, line: int) -> Rule | None:
        r = self.r
        if r.ident(name, line, "rule id") is None:
            return None
        where = f"rule {name!r}"
        body = r.mapping(body, line, where)
        if body is None:
            return None
        shapes = [k for k in RULE_SHAPES if k in body]
        allowed = RULE_COMMON_KEYS + RULE_SHAPES + (FIELD_TESTS if "field" in body else ())
        r.keys(body, allowed, where)
        says = r.text(body, "says", where) or ""
        severity = self._severity(body, where)
        source = self._source(body, where)
        when = self._condition(body["when"], body.lines["when"], where) if "when" in body else None
        if len(shapes) != 1:
            r.err(
                line,
                f"{where} must have exactly one of {', '.join(RULE_SHAPES)}"
                + (f", it has {', '.join(shapes)}" if shapes else ""),
                "order: [a, b] | window: {from, to, max} | every: {step, from, interval, for} "
                "| field: step.field with min/max/... | storage: {max}",
            )
            return None
        shape = shapes[0]
        spec: Any = None
        kind = {
            "order": "order",
            "window": "window",
            "every": "window",
            "storage": "excursion",
            "field": "limit",
        }[shape]
        if shape == "order":
            spec = self._order(body["order"], body.lines["order"], where)
        elif shape == "window":
            spec = self._window(body["window"], body.lines["window"], where)
        elif shape == "every":
            spec = self._every(body["every"], body.lines["every"], where)
        elif shape == "storage":
            spec = self._storage(body["storage"], body.lines["storage"], where)
        else:
            spec = self._field_rule(body, where)
            if spec is not None and spec.compare == "equals":
                kind = "identity"
        if "kind" in body:
            chosen = body["kind"]
            permitted = {"field": ("limit", "identity")}.get(shape, (kind,))
            if chosen not in KINDS:
                r.err(
                    body.lines["kind"],
                    f"kind {chosen!r} of {where} is not known",
                    "allowed: " + ", ".join(KINDS),
                )
            elif chosen not in permitted:
                r.err(
                    body.lines["kind"],
                    f"a {shape} rule cannot be of kind {chosen!r}",
                    "allowed here: " + ", ".join(permitted),
                )
            else:
                kind = chosen
        if spec is None:
            return None
        return Rule(
            id=f"{cid}.{name}",
            name=name,
            kind=kind,
            severity=severity,
            source=source,
            says=says,
            when=when,
            step=None,
            spec=spec,
            generated=False,
            line=line,
        )

    def _order(self, value: Any, line: int, where: str) -> OrderSpec | None:
        if not isinstance(value, LList) or len(value) < 2:
            self.r.err(
                line,
                f"order of {where} must list at least two steps",
                "e.g. order: [identity_check, thaw_start]",
            )
            return None
        steps = [
            self._step_ref(v, vl, f"order of {where}")
            for v, vl in zip(value, value.lines, strict=True)
        ]
        if len(set(value)) != len(value):
            self.r.err(line, f"order of {where} names a step twice", "name each step once")
            return None
        if any(s is None for s in steps):
            return None
        return OrderSpec(tuple(s for s in steps if s is not None))

    def _window(self, value: Any, line: int, where: str) -> WindowSpec | None:
        body = self.r.mapping(value, line, f"window of {where}")
        if body is None:
            return None
        self.r.keys(body, WINDOW_KEYS, f"window of {where}")
        start = self._step_ref(
            body.get("from"), body.lines.get("from", line), f"window of {where} (from)"
        )
        end = self._step_ref(body.get("to"), body.lines.get("to", line), f"window of {where} (to)")
        low = (
            self._duration(body["min"], body.lines["min"], f"min of {where}")
            if "min" in body
            else None
        )
        high = (
            self._duration(body["max"], body.lines["max"], f"max of {where}")
            if "max" in body
            else None
        )
        if "min" not in body and "max" not in body:
            self.r.err(
                line, f"window of {where} has neither min nor max", "give max: 30m and/or min: 9d"
            )
        for value_, key in ((low, "min"), (high, "max")):
            if value_ is not None and value_ < timedelta(0):
                self.r.err(
                    body.lines[key],
                    f"{key} of {where} is negative",
                    "windows are measured forward from `from`; swap from and to",
                )
        if low is not None and high is not None and low > high:
            self.r.err(
                body.lines["min"],
                f"window of {where} is impossible: min {format_duration(low)} > max {format_duration(high)}",
                "min must not exceed max",
            )
        if start is not None and start == end:
            self.r.err(
                line,
                f"window of {where} runs from {start} to itself",
                "from and to must be different steps",
            )
        pair = body.get("pair", "last_start")
        if pair not in WINDOW_PAIRS:
            self.r.err(
                body.lines["pair"],
                f"pair {pair!r} of {where} is not known",
                "allowed: " + ", ".join(WINDOW_PAIRS),
            )
        require_from = self.r.flag(body, "require_from", f"window of {where}", False)
        if start is None or end is None or start == end or (low is None and high is None):
            return None
        return WindowSpec(start, end, low, high, pair, require_from)

    def _every(self, value: Any, line: int, where: str) -> EverySpec | None:
        body = self.r.mapping(value, line, f"every of {where}")
        if body is None:
            return None
        self.r.keys(body, EVERY_KEYS, f"every of {where}")
        step = self._step_ref(
            body.get("step"), body.lines.get("step", line), f"every of {where} (step)"
        )
        start = self._step_ref(
            body.get("from"), body.lines.get("from", line), f"every of {where} (from)"
        )
        durations = {}
        for key in ("interval", "for"):
            if key not in body:
                self.r.err(
                    line,
                    f"every of {where} has no {key}",
                    "e.g. every: {..., interval: 1d, for: 7d}",
                )
                continue
            found = self._duration(body[key], body.lines[key], f"{key} of {where}")
            if found is not None and found <= timedelta(0):
                self.r.err(body.lines[key], f"{key} of {where} must be longer than zero", "e.g. 1d")
                found = None
            durations[key] = found
        interval, span = durations.get("interval"), durations.get("for")
        if interval is not None and span is not None and span < interval:
            self.r.err(
                body.lines["for"],
                f"every of {where} is impossible: for {format_duration(span)} is shorter than "
                f"the interval {format_duration(interval)}",
                "for must be at least one interval",
            )
            return None
        if start is not None and start == step:
            self.r.err(
                line,
                f"every of {where} measures {step} from itself",
                "from and step must be different steps",
            )
            return None
        if step is None or start is None or interval is None or span is None:
            return None
        return EverySpec(start, step, interval, span)

    def _storage(self, value: Any, line: int, where: str) -> StorageSpec | None:
        body = self.r.mapping(value, line, f"storage of {where}")
        if body is None:
            return None
        self.r.keys(body, STORAGE_KEYS, f"storage of {where}")
        for needed, field_name in (("storage_in", "equipment"), ("storage_out", None)):
            if needed not in self.steps:
                self.r.err(
                    line,
                    f"{where} checks storage but the checklist has no step {needed!r}",
                    "add storage_in (with an equipment field) and storage_out steps",
                )
            elif field_name and field_name not in self.steps[needed].fields:
                self.r.err(
                    line,
                    f"{where} checks storage but step {needed!r} has no {field_name!r} field",
                    "add `equipment: {type: equipment}` to storage_in",
                )
        low = (
            self._quantity(body["min"], body.lines["min"], "°C", f"min of {where}")
            if "min" in body
            else None
        )
        high = (
            self._quantity(body["max"], body.lines["max"], "°C", f"max of {where}")
            if "max" in body
            else None
        )
        if low is None and high is None and "min" not in body and "max" not in body:
            self.r.err(
                line, f"storage of {where} has neither min nor max", "e.g. storage: {max: -130 °C}"
            )
            return None
        if low is not None and high is not None and low > high:
            self.r.err(
                line,
                f"storage of {where} is impossible: min {_num(low)} °C > max {_num(high)} °C",
                "min must not exceed max",
            )
        up_to = for_ = mkt = None
        if "tolerate" in body:
            tol = self.r.mapping(body["tolerate"], body.lines["tolerate"], f"tolerate of {where}")
            if tol is not None:
                self.r.keys(tol, TOLERATE_KEYS, f"tolerate of {where}")
                missing = [k for k in TOLERATE_KEYS if k not in tol]
                if missing:
                    self.r.err(
                        tol.line,
                        f"tolerate of {where} lacks {', '.join(missing)}",
                        "give up_to (°C), for (duration) and mkt_max (°C), e.g. USP <659>: {up_to: 15, for: 24h, mkt_max: 8}",
                    )
                else:
                    up_to = self._quantity(
                        tol["up_to"], tol.lines["up_to"], "°C", f"tolerate.up_to of {where}"
                    )
                    for_ = self._duration(tol["for"], tol.lines["for"], f"tolerate.for of {where}")
                    mkt = self._quantity(
                        tol["mkt_max"], tol.lines["mkt_max"], "°C", f"tolerate.mkt_max of {where}"
                    )
                    if high is None:
                        self.r.err(
                            tol.line,
                            f"tolerate of {where} needs a storage max",
                            "tolerance applies to readings above max",
                        )
                    elif up_to is not None and up_to <= high:
                        self.r.err(
                            tol.lines["up_to"],
                            f"tolerate.up_to of {where} ({_num(up_to)} °C) is not above max ({_num(high)} °C)",
                            "up_to must be above max",
                        )
        if self.r.problems and low is None and high is None:
            return None
        return StorageSpec(low, high, up_to, for_, mkt)

    def _field_rule(self, body: LMap, where: str) -> FieldSpec | None:
        r = self.r
        got = self._field_ref(body["field"], body.lines["field"], where)
        tests = [k for k in FIELD_TESTS if k in body]
        if not tests:
            r.err(
                body.lines["field"],
                f"{where} names a field but no test",
                "add min, max, one_of, not_one_of, must_be, equals_field, at_most_field or at_least_field",
            )
            return None
        if got is None:
            return None
        ref, fdef = got
        unit = fdef.unit if fdef else None
        ftype = fdef.type if fdef else None
        low = high = None
        if "min" in body or "max" in body:
            if ftype not in (None, "number", "temperature"):
                r.err(
                    body.lines["min" if "min" in body else "max"],
                    f"{where}: min/max need a number or temperature field, {ref.text} is {ftype}",
                    "use one_of or must_be",
                )
            else:
                low = (
                    self._quantity(body["min"], body.lines["min"], unit, f"min of {where}")
                    if "min" in body
                    else None
                )
                high = (
                    self._quantity(body["max"], body.lines["max"], unit, f"max of {where}")
                    if "max" in body
                    else None
                )
                if low is not None and high is not None and low > high:
                    r.err(
                        body.lines["min"],
                        f"{where} is impossible: min {_num(low)} > max {_num(high)}",
                        "min must not exceed max",
                    )
        one_of = not_one_of = None
        for key in ("one_of", "not_one_of"):
            if key in body:
                raw = body[key]
                if not isinstance(raw, LList) or not raw:
                    r.err(
                        body.lines[key],
                        f"{key} of {where} must be a non-empty list",
                        f"e.g. {key}: [none]",
                    )
                    continue
                values = []
                for item in raw:
                    resolved, _ = self._value(item, body.lines[key])
                    values.append(resolved)
                if fdef is not None and fdef.type == "choice":
                    for item in values:
                        if item not in fdef.choices:
                            r.err(
                                body.lines[key],
                                f"{key} of {where} lists {item!r}, which is not a choice of {ref.text}",
                                "choices: " + ", ".join(fdef.choices),
                            )
                if key == "one_of":
                    one_of = tuple(values)
                else:
                    not_one_of = tuple(values)
        must_be = None
        has_must_be = "must_be" in body
        if has_must_be:
            if ftype in ("number", "temperature"):
                # "4 mL" or $param with a unit: compare in the field's unit, as min/max do.
                must_be = self._quantity(
                    body["must_be"], body.lines["must_be"], unit, f"must_be of {where}"
                )
            else:
                must_be, _ = self._value(body["must_be"], body.lines["must_be"])
            if ftype == "yes_no" and not isinstance(must_be, bool):
                r.err(
                    body.lines["must_be"],
                    f"must_be of {where} must be true or false for the yes/no field {ref.text}",
                    "allowed: true, false",
                )
            if ftype == "choice" and fdef is not None and must_be not in fdef.choices:
                r.err(
                    body.lines["must_be"],
                    f"must_be of {where} is {must_be!r}, not a choice of {ref.text}",
                    "choices: " + ", ".join(fdef.choices),
                )
        compare = other = None
        for key, op in (
            ("equals_field", "equals"),
            ("at_most_field", "at_most"),
            ("at_least_field", "at_least"),
        ):
            if key in body:
                if compare is not None:
                    r.err(
                        body.lines[key],
                        f"{where} compares with more than one field",
                        "give one of equals_field, at_most_field, at_least_field",
                    )
                    continue
                got_other = self._field_ref(body[key], body.lines[key], f"{key} of {where}")
                if got_other is not None:
                    compare, other = op, got_other[0]
                    odef = got_other[1]
                    if (
                        op != "equals"
                        and odef is not None
                        and fdef is not None
                        and odef.unit != fdef.unit
                    ):
                        r.err(
                            body.lines[key],
                            f"{where} compares {ref.text} ({fdef.unit}) with {other.text} ({odef.unit})",
                            "compare fields with the same unit",
                        )
        return FieldSpec(
            ref, unit, low, high, one_of, not_one_of, must_be, has_must_be, compare, other
        )

    def _check_cycles(self, rules: list[Rule]) -> None:
        graph: dict[str, set[str]] = {}
        line_of: dict[tuple[str, str], int] = {}
        for rule in rules:
            if isinstance(rule.spec, OrderSpec):
                seq = rule.spec.steps
                for a, b in zip(seq, seq[1:], strict=False):
                    graph.setdefault(a, set()).add(b)
                    line_of.setdefault((a, b), rule.line)
        cycle = _find_cycle(graph)
        if cycle:
            self.r.err(
                line_of.get((cycle[0], cycle[1]), 1),
                "the order rules form a cycle: " + " before ".join(cycle),
                "no step can come before itself; remove or reverse one order",
            )

    def _generated_rules(self, cid: str, rules: list[Rule]) -> list[Rule]:
        """The rules every step implies, with the step's severity and source."""
        out = []
        for step in self.steps.values():

            def make(suffix: str, kind: str, says: str, step: StepDef = step) -> Rule:
                return Rule(
                    id=f"{cid}.{step.id}.{suffix}",
                    name=f"{step.id}.{suffix}",
                    kind=kind,
                    severity=step.severity,
                    source=step.source,
                    says=says,
                    # Only whether a step is due depends on `when`; a step done anyway is
                    # still checked for who did it and how it was recorded.
                    when=step.when if suffix == "done" else None,
                    step=step.id,
                    spec=None,
                    generated=True,
                    line=step.line,
                )

            if step.required:
                out.append(
                    make("done", "missing_step", f"{step.title} is recorded for every unit.")
                )
            if step.roles:
                out.append(
                    make("role", "role", f"{step.title} is performed by: {', '.join(step.roles)}.")
                )
            if step.witness_required or step.witness_roles:
                roles = f" ({', '.join(step.witness_roles)})" if step.witness_roles else ""
                need = "is co-signed by" if step.witness_required else "may be co-signed by"
                out.append(
                    make(
                        "witness",
                        "witness",
                        f"{step.title} {need} a second, different person{roles}.",
                    )
                )
            out.append(
                make(
                    "record",
                    "record_integrity",
                    f"{step.title} is recorded completely: who, and every required field, in its type.",
                )
            )
        if any(r.when is not None and r.when.profiles is not None for r in rules) or any(
            s.when is not None and s.when.profiles is not None for s in self.steps.values()
        ):
            out.append(
                Rule(
                    id=f"{cid}.profile",
                    name="profile",
                    kind="record_integrity",
                    severity="major",
                    source="qms: jurisdiction profiles (docs/checklists.md)",
                    says="The unit names its jurisdiction profile, which some rules depend on.",
                    when=None,
                    step=None,
                    spec=None,
                    generated=True,
                    line=self.doc.line,
                )
            )
        return out


def _units() -> list[str]:
    from qms.checklists.quantities import UNITS

    return list(UNITS)


def _param_shape(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        try:
            parse_duration(value)
            return "a duration"
        except QuantityError:
            pass
        try:
            parse_quantity(value, None)
            return "a number"
        except QuantityError:
            pass
        parts = value.split()
        if len(parts) == 2:
            return f"a number in {parts[1]}"
    return "text"


def _find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


# --------------------------------------------------------------------------- profiles


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
    title = reader.text(doc, "title", "the profile")
    description = reader.text(doc, "description", "the profile", required=False) or ""
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


# --------------------------------------------------------------------------- registry


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
        overrides = load_site_overrides(site_overrides) if site_overrides is not None else None
        checklists, profiles, problems = _load_tree(root, overrides)
        if problems:
            raise ChecklistError(problems)
        return cls(checklists, profiles)

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
                try:
                    checklist = load_checklist(
                        path,
                        known_profiles=known,
                        overrides=overrides.parameters[checklist.id],
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


def lint(path: str | Path | None = None) -> tuple[list[str], int, int]:
    """Every problem in a checklist file or folder: (problems, checklists read, profiles read)."""
    from qms.paths import CHECKLISTS_DIR

    root = Path(path) if path is not None else CHECKLISTS_DIR
    checklists, profiles, problems = _load_tree(root, None)
    return problems, len(checklists), len(profiles)
