"""The checklist language: reading checklist, profile and site files into immutable objects.

One module per concern: `model` (the objects), `reader` (a checklist file), `shapes`
(the rule shapes and how each is read), `profiles` (profiles and site parameter files),
`registry` (a folder of them), `lint`, and `problems` (how problems are reported).
Every name is importable from here, as it was when the language was one module.
"""

from qms.checklists.language.lint import lint
from qms.checklists.language.model import (
    FIELD_TYPES,
    IDENTIFIER_SCHEMES,
    ROLES,
    STANDARD_STEPS,
    UNIT_FIELDS,
    Checklist,
    Condition,
    FieldDef,
    FieldRef,
    Parameter,
    Profile,
    Rule,
    StepDef,
    Test,
)
from qms.checklists.language.problems import ChecklistError
from qms.checklists.language.profiles import (
    OVERRIDE_KEYS,
    PROFILE_KEYS,
    SiteOverrides,
    load_profile,
    load_site_overrides,
)
from qms.checklists.language.reader import (
    CHECKLIST_KEYS,
    CONDITION_KEYS,
    FIELD_KEYS,
    RULE_COMMON_KEYS,
    STEP_KEYS,
    load_checklist,
    parse_checklist,
)
from qms.checklists.language.registry import Registry, checklist_files, version_key
from qms.checklists.language.shapes import (
    EVERY_KEYS,
    FIELD_TESTS,
    RULE_SHAPES,
    STORAGE_KEYS,
    TOLERATE_KEYS,
    WINDOW_KEYS,
    WINDOW_PAIRS,
    EverySpec,
    FieldSpec,
    OrderSpec,
    StorageSpec,
    WindowSpec,
)

__all__ = [
    "CHECKLIST_KEYS",
    "CONDITION_KEYS",
    "EVERY_KEYS",
    "FIELD_KEYS",
    "FIELD_TESTS",
    "FIELD_TYPES",
    "IDENTIFIER_SCHEMES",
    "OVERRIDE_KEYS",
    "PROFILE_KEYS",
    "ROLES",
    "RULE_COMMON_KEYS",
    "RULE_SHAPES",
    "STANDARD_STEPS",
    "STEP_KEYS",
    "STORAGE_KEYS",
    "TOLERATE_KEYS",
    "UNIT_FIELDS",
    "WINDOW_KEYS",
    "WINDOW_PAIRS",
    "Checklist",
    "ChecklistError",
    "Condition",
    "EverySpec",
    "FieldDef",
    "FieldRef",
    "FieldSpec",
    "OrderSpec",
    "Parameter",
    "Profile",
    "Registry",
    "Rule",
    "SiteOverrides",
    "StepDef",
    "StorageSpec",
    "Test",
    "WindowSpec",
    "checklist_files",
    "lint",
    "load_checklist",
    "load_profile",
    "load_site_overrides",
    "parse_checklist",
    "version_key",
]
