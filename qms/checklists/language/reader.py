"""The checklist reader: one YAML file into a Checklist, every problem reported at once.

Every problem is reported as ``file:line: what is wrong; what is allowed`` and all of a
file's problems are reported at once, so that an author fixes a file in one pass.
docs/checklists.md is the reference for authors; keep it in step with this package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qms.checklists.facts import KINDS, SEVERITIES
from qms.checklists.language import shapes
from qms.checklists.language.model import (
    FIELD_TYPES,
    IDENTIFIER_SCHEMES,
    ROLES,
    UNIT_FIELDS,
    Checklist,
    Condition,
    FieldDef,
    FieldRef,
    Parameter,
    Rule,
    StepDef,
    Test,
    Text,
    _num,
    _show,
)
from qms.checklists.language.problems import (
    _ID,
    ChecklistError,
    _Reader,
    _suggest,
    _type_name,
)
from qms.checklists.language.shapes import FIELD_TESTS, RULE_SHAPES
from qms.checklists.quantities import (
    QuantityError,
    normalise_unit,
    parse_duration,
    parse_quantity,
)
from qms.checklists.yamlnodes import LList, LMap, YamlProblem, load_located

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
CONDITION_KEYS = ("profile", "field", "equals", "one_of", "at_least", "at_most", "present")


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
        title = r.words(doc, "title", "the checklist")
        product = r.words(doc, "product", "the checklist")
        description = r.words(doc, "description", "the checklist", required=False) or Text("")
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
        shapes.check_cycles(self, rules)
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
        judged = {
            "id": cid,
            "version": version,
            "sources": self.sources,
            "parameters": self.params,
            "steps": self.steps,
            "rules": all_rules,
        }
        rules_digest = hashlib.sha256(
            json.dumps(_judged_form(judged), sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
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
            rules_digest=rules_digest,
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
    def value(self, value: Any, line: int) -> tuple[Any, str | None]:
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

    def duration(self, value: Any, line: int, what: str) -> timedelta | None:
        resolved, param = self.value(value, line)
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

    def quantity(self, value: Any, line: int, unit: str | None, what: str) -> float | None:
        resolved, param = self.value(value, line)
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
        title = r.words(body, "title", where) or Text(sid)
        says = r.words(body, "says", where, required=False) or Text("")
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
        unit_text: Text | None = None
        if ftype == "number":
            if "unit" not in spec:
                r.err(
                    line,
                    f"number {where} has no unit",
                    "add e.g. `unit: mL/min`; units: " + ", ".join(_units()),
                )
            else:
                # `unit: doses`, or with the words a form shows: `unit: {en: doses, zh: 剂}`.
                written = spec["unit"]
                if isinstance(written, LMap):
                    unit_text = r.words_of(written, spec.lines["unit"], f"unit of {where}")
                    written = str(unit_text) if unit_text is not None else None
                if written is not None:
                    try:
                        unit = normalise_unit(written)
                    except QuantityError as exc:
                        r.err(
                            spec.lines["unit"],
                            f"{where}: {str(exc).split(';')[0]}",
                            "allowed units: " + ", ".join(_units()),
                        )
                    else:
                        translations = unit_text.translations if unit_text is not None else {}
                        unit_text = Text(unit, translations)
        elif ftype == "temperature":
            unit = "°C"
            unit_text = Text(unit)
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
        choice_labels: dict[str, Text] = {}
        if ftype == "choice":
            value = spec.get("choices")
            if not isinstance(value, LList) or not value:
                r.err(
                    spec.lines.get("choices", line),
                    f"choice {where} needs a non-empty `choices:` list",
                    "e.g. choices: [none, leukodepleting, 0.2um]",
                )
            else:
                # A choice is a word stored in the record, shown as itself, or with the
                # words a form shows: `- leukodepleting: {en: leukodepleting filter, zh: ...}`.
                values: list[Any] = []
                for item, item_line in zip(value, value.lines, strict=True):
                    if isinstance(item, LMap) and len(item) == 1:
                        item, shown = next(iter(item.items()))
                        if isinstance(item, str):
                            label = r.words_of(shown, item_line, f"the words of choice {item!r}")
                            if label is not None:
                                choice_labels[item] = label
                    elif isinstance(item, LMap):
                        r.err(
                            item_line,
                            f"choice of {where} names {len(item)} values in one item",
                            "write one `- value: words` per item",
                        )
                        continue
                    values.append(item)
                    if not isinstance(item, str):
                        r.err(
                            item_line,
                            f"choice {item!r} of {where} must be text",
                            "quote it: YAML reads yes/no/on/off as true/false and 0.2 as a number",
                        )
                if len(set(map(str, values))) != len(values):
                    r.err(
                        spec.lines["choices"],
                        f"choices of {where} repeat a value",
                        "list each choice once",
                    )
                choices = tuple(str(v) for v in values)
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
                low = self.quantity(value[0], value.lines[0], unit, f"range of {where}")
                high = self.quantity(value[1], value.lines[1], unit, f"range of {where}")
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
        label = r.words(spec, "label", where, required=False) or Text(name.replace("_", " "))
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
            choice_labels=MappingProxyType(choice_labels),
            unit_text=unit_text,
        )

    # -- references and conditions
    def step_ref(self, value: Any, line: int, where: str) -> str | None:
        if isinstance(value, str) and value in self.steps:
            return value
        self.r.err(
            line,
            f"{where} names unknown step {value!r}{_suggest(value, self.steps)}",
            "steps: " + ", ".join(self.steps),
        )
        return None

    def field_ref(
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
                ref = self.field_ref(body["field"], body.lines["field"], f"`when` of {where}")
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
                        value_ok = self.quantity(
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
        found = [k for k in RULE_SHAPES if k in body]
        allowed = RULE_COMMON_KEYS + RULE_SHAPES + (FIELD_TESTS if "field" in body else ())
        r.keys(body, allowed, where)
        says = r.words(body, "says", where) or Text("")
        severity = self._severity(body, where)
        source = self._source(body, where)
        when = self._condition(body["when"], body.lines["when"], where) if "when" in body else None
        if len(found) != 1:
            r.err(
                line,
                f"{where} must have exactly one of {', '.join(RULE_SHAPES)}"
                + (f", it has {', '.join(found)}" if found else ""),
                "order: [a, b] | window: {from, to, max} | every: {step, from, interval, for} "
                "| field: step.field with min/max/... | storage: {max}",
            )
            return None
        shape = found[0]
        spec: Any = None
        kind = {
            "order": "order",
            "window": "window",
            "every": "window",
            "storage": "excursion",
            "field": "limit",
        }[shape]
        if shape == "order":
            spec = shapes.parse_order(self, body["order"], body.lines["order"], where)
        elif shape == "window":
            spec = shapes.parse_window(self, body["window"], body.lines["window"], where)
        elif shape == "every":
            spec = shapes.parse_every(self, body["every"], body.lines["every"], where)
        elif shape == "storage":
            spec = shapes.parse_storage(self, body["storage"], body.lines["storage"], where)
        else:
            spec = shapes.parse_field_rule(self, body, where)
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
                    concerns=suffix,
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
                    concerns="profile",
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


# The words shown to people and where things are written: not part of what judges a record.
_NOT_JUDGED = frozenset(
    {"title", "says", "label", "description", "product", "choice_labels", "unit_text", "line"}
)


def _judged_form(value: Any) -> Any:
    """`value` as plain JSON data, leaving out the words people read (see rules_digest)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _judged_form(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in _NOT_JUDGED
        }
    if isinstance(value, Mapping):
        return {str(k): _judged_form(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(str(v) for v in value)
    if isinstance(value, tuple | list):
        return [_judged_form(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)
