"""The checklist model: the immutable objects checklists, steps, rules and profiles are read into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qms.checklists.quantities import format_quantity
from qms.core.roles import ROLE_NAMES

if TYPE_CHECKING:
    from qms.checklists.language.shapes import (
        EverySpec,
        FieldSpec,
        OrderSpec,
        StorageSpec,
        WindowSpec,
    )

# The languages checklist text may be written in; English is required, the rest optional.
LANGUAGES = ("en", "zh")
ROLES = ROLE_NAMES  # the checklist may name any role accounts know
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
# What the rules a checklist implies check: a step's record, who did it, its witness,
# that it was done at all; and that the unit names the profile some rules depend on.
CONCERNS = ("done", "role", "witness", "record", "profile")
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


class Text(str):
    """Words a user reads (a title, a label): the English, and the same in other languages.

    It is the English string itself, so code and pages that print it unchanged show
    English; `get(lang)` gives the reader's language, falling back to English.
    """

    translations: Mapping[str, str]

    def __new__(cls, en: str, translations: Mapping[str, str] | None = None) -> Text:
        self = super().__new__(cls, en)
        self.translations = MappingProxyType(dict(translations or {}))
        return self

    def get(self, lang: str | None) -> str:
        """The text in `lang` ("zh", "zh_CN", "zh-Hans" all mean zh), else the English."""
        if lang:
            base = lang.replace("-", "_").split("_", 1)[0].lower()
            found = self.translations.get(base)
            if found:
                return found
        return str(self)

    @property
    def en(self) -> str:
        return str(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Text, (str(self), dict(self.translations)))


def in_language(text: Any, lang: str | None) -> str:
    """Any checklist text in `lang`: a Text's translation, or a plain string as it is."""
    return text.get(lang) if isinstance(text, Text) else str(text)


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
    # What a form shows: each choice's words (a choice without them shows its value), and
    # the unit's words (`unit` is the unit itself, e.g. doses; this may say 剂 in zh).
    choice_labels: Mapping[str, Text] = field(default_factory=dict)
    unit_text: Text | None = None

    def choice_label(self, choice: str, lang: str | None = None) -> str:
        label = self.choice_labels.get(choice)
        return label.get(lang) if label is not None else choice


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
class Rule:
    """One checkable requirement with its id, severity and source.

    Rules written in `rules:` have ids like `kymriah.thaw_to_infusion`; the rules every
    step implies (done, witness, role, record) have ids like `kymriah.identity_check.done`,
    and say which of those they are in `concerns`; the engine reads `concerns`, never the id.
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
    # What a generated rule checks: one of CONCERNS; None for a rule written in `rules:`.
    concerns: str | None = None

    @property
    def limit_text(self) -> str | None:
        return self.spec.limit_text if self.spec is not None else None


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
    # sha256 of what judges records (steps, fields, rules, parameters), without the words
    # shown to people: a translation or a reworded title leaves it unchanged.
    rules_digest: str = ""
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


# Shown in limits and condition texts: numbers without a needless .0, yes/no for booleans.


def _num(value: float) -> str:
    return format_quantity(value, None)


def _show(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)
