"""Planning: a checklist compiled once per profile into the list of checks a unit runs through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from qms.checklists.engine.context import _Check, _compile_condition, _Cond
from qms.checklists.engine.fields import _compile_field, _quick_pass
from qms.checklists.engine.order import _compile_order
from qms.checklists.engine.steps import (
    _compile_clean,
    _compile_done,
    _compile_profile,
    _compile_step_checks,
)
from qms.checklists.engine.storage import STORAGE_IN, _compile_storage
from qms.checklists.engine.windows import (
    _compile_every,
    _compile_window,
    _window_conditions,
    _WindowConds,
)
from qms.checklists.engine.worlds import _worlds
from qms.checklists.language import (
    Checklist,
    Condition,
    EverySpec,
    FieldSpec,
    OrderSpec,
    Rule,
    StepDef,
    StorageSpec,
    WindowSpec,
)


class _Runs(NamedTuple):
    """The checks a unit with a given set of recorded steps runs (see `_Plan.runs`), and
    the quick tests that show most of them find nothing in the unit being judged.

    Findings are rare: evaluate() first runs the quick tests below, all in one pass, and
    then calls, in rule order, the checks that have none (`quiet`) and those whose test
    failed (`select`). A check is passed only when its test shows it would find nothing,
    so the findings and their order are those of calling every check."""

    checks: tuple[_Check, ...]
    # The checks without a quick test: what runs when every quick test passes.
    quiet: tuple[_Check, ...]
    skippable: frozenset[int]  # positions in `checks` of the checks with a quick test
    # (step, its records' test, whether it may have one record only, positions): the
    # step's record check and the quick field rules on it find nothing when each record
    # passes the generated test (steps.py, `_compile_clean`).
    steps: tuple[tuple[str, Callable[[Any, Any], bool], bool, frozenset[int]], ...]
    # (position, nearest earlier step recorded or None, later step): an order rule whose
    # turns all have the earlier step's last record no later than the later step's first
    # record finds nothing (engine/order.py).
    turns: tuple[tuple[int, str | None, str], ...]
    # (position, from, to, min, max, require_from, whether every `to` is paired) of the
    # windows without conditions: one `from` and the `to` records it is measured to, all
    # after it and within the limits, or a window that cannot be late, finds nothing.
    windows: tuple[tuple[int, str, str, timedelta | None, timedelta | None, bool, bool], ...]
    # The checks run when the quick tests at these positions fail: a unit's set of failed
    # tests recurs (the same kind of mistake), so each is chosen once.
    selected: dict[frozenset[int], tuple[_Check, ...]]

    def select(self, dirty: frozenset[int]) -> tuple[_Check, ...]:
        checks = self.selected.get(dirty)
        if checks is None:
            if len(self.selected) > 256:
                self.selected.clear()
            skip = self.skippable - dirty
            checks = tuple(c for i, c in enumerate(self.checks) if i not in skip)
            self.selected[dirty] = checks
        return checks


class _Plan:
    """A checklist compiled for one profile."""

    def __init__(self, checklist: Checklist, profile: str | None):
        self.checklist = checklist
        self.profile = profile
        self.checks: list[_Check] = []
        # The steps a check needs at least one of to find anything (None: it always runs,
        # e.g. a required step never recorded). evaluate() skips the others.
        self.triggers: list[frozenset[str] | None] = []
        self.gated: list[tuple[str | frozenset[str] | None, _Check]] = []
        # The step whose record makes a check find nothing (a required step's done rule).
        self.settled_by: list[str | None] = []
        # The checks a unit runs, by the set of steps it has records of (see `runs`).
        self._runs: dict[frozenset[str], _Runs] = {}
        # Each check's quick test, as `gated` (see `_Runs`): ("order", its steps),
        # ("step", step), ("field", step), ("window", spec) or None (always called).
        self.quick: list[tuple[str, Any] | None] = []
        # Per step: its records' test (its record check and its quick field rules).
        self.cleaners: dict[str, Callable[[Any, Any], bool]] = {}
        self.windows: list[tuple[Rule, WindowSpec, _WindowConds]] = []
        self.periodic: list[tuple[Rule, EverySpec, _WindowConds]] = []
        self.step_ids = frozenset(checklist.steps)
        self.profile_rules: list[str] = []
        self.predecessors: dict[str, set[str]] = {}
        self.successors: dict[str, set[str]] = {}
        self.done_rules: list[tuple[Rule, StepDef, _Cond | None]] = []
        self._compile()

    # -- compilation
    def _applies(self, when: Condition | None) -> bool:
        """Profile tests are settled at compile time; field tests are left for run time."""
        if when is None:
            return True
        profiles = when.profiles
        return profiles is None or (self.profile is not None and self.profile in profiles)

    def _compile(self) -> None:
        cl = self.checklist
        for rule in cl.rules:
            if not rule.generated and rule.when is not None and rule.when.profiles is not None:
                self.profile_rules.append(rule.id)
        # A step's `when` decides only whether it is due: its done rule depends on the profile.
        for rule in cl.rules:
            if rule.concerns == "done" and rule.when is not None and rule.when.profiles is not None:
                self.profile_rules.append(rule.id)
        self._order_graph()
        by_step_rules: dict[str, dict[str, Rule]] = {}
        quick_fields: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for rule in cl.rules:
            if rule.step is not None and rule.concerns is not None:
                by_step_rules.setdefault(rule.step, {})[rule.concerns] = rule
        for rule in cl.rules:
            if rule.generated:
                if rule.concerns == "profile":
                    # It finds something only when the unit is judged with no profile: a
                    # plan is made for one profile, so only the plan for none runs it.
                    if self.profile is None:
                        profile_check = _compile_profile(rule, tuple(self.profile_rules), cl)
                        self._add(rule, profile_check, None)
                    continue
                step = cl.steps[rule.step]
                if rule.concerns == "done":
                    if self._applies(rule.when):
                        self.done_rules.append((rule, step, _compile_condition(rule.when)))
                        self._add(
                            rule,
                            _compile_done(
                                rule, step, tuple(sorted(self.successors.get(step.id, ()))), cl
                            ),
                            None,
                            settled_by=step.id,
                        )
                elif rule.concerns == "record":
                    # role, witness and record checks of a step run in one pass over its records
                    checks = _compile_step_checks(step, by_step_rules[step.id], cl)
                    self._add(rule, checks, frozenset({step.id}), quick=("step", step.id))
                continue
            if not self._applies(rule.when):
                continue
            cond = _compile_condition(rule.when)
            spec = rule.spec
            if isinstance(spec, OrderSpec):
                self._add(
                    rule,
                    _compile_order(rule, spec, cl),
                    frozenset(spec.steps[1:]),
                    quick=("order", spec.steps),
                )
            elif isinstance(spec, WindowSpec):
                conds = _window_conditions(rule.when, spec)
                self.windows.append((rule, spec, conds))
                self._add(
                    rule,
                    _compile_window(rule, spec, conds, cl),
                    frozenset({spec.start, spec.end}),
                    quick=("window", spec) if conds == (None, None, None) else None,
                )
            elif isinstance(spec, EverySpec):
                conds = _window_conditions(rule.when, spec)
                self.periodic.append((rule, spec, conds))
                self._add(rule, _compile_every(rule, spec, conds, cl), frozenset({spec.start}))
            elif isinstance(spec, FieldSpec):
                trigger = frozenset({spec.ref.step}) if spec.ref.step is not None else None
                passed = _quick_pass(spec, cond)
                if passed is not None:
                    quick_fields.setdefault(spec.ref.step, []).append(passed)
                self._add(
                    rule,
                    _compile_field(rule, spec, cond, cl),
                    trigger,
                    quick=("field", spec.ref.step) if passed is not None else None,
                )
            elif isinstance(spec, StorageSpec):
                self._add(rule, _compile_storage(rule, spec, cond, cl), frozenset({STORAGE_IN}))
        for sid, rules in by_step_rules.items():
            if "record" in rules:
                self.cleaners[sid] = _compile_clean(
                    cl.steps[sid], "role" in rules, "witness" in rules, quick_fields.get(sid, ())
                )

    def _add(
        self,
        rule: Rule,
        check: _Check,
        trigger: frozenset[str] | None,
        *,
        settled_by: str | None = None,
        quick: tuple[str, Any] | None = None,
    ) -> None:
        """A rule whose conditions read recorded values is judged in every world a value
        not recorded allows (engine/worlds.py); any other runs as it is."""
        if not rule.generated and rule.when is not None and rule.when.field_tests:
            check = _worlds(rule, check, self.checklist)
        elif rule.generated and rule.concerns == "done" and rule.when is not None:
            if rule.when.field_tests:
                check = _worlds(rule, check, self.checklist)
        self.checks.append(check)
        self.triggers.append(trigger)
        # What evaluate() loops over: a single step as its id (a dict lookup is cheaper).
        one = next(iter(trigger)) if trigger is not None and len(trigger) == 1 else None
        self.gated.append((one if one is not None else trigger, check))
        self.settled_by.append(settled_by)
        self.quick.append(quick)

    def runs(self, recorded: frozenset[str]) -> _Runs:
        """The checks, in rule order, that can find anything in a unit with records of
        these steps: a check none of whose steps was recorded has nothing to judge, and a
        required step's done rule nothing once the step is recorded. Units of a checklist
        have few such sets (how far they got), so the choice is made once per set."""
        runs = self._runs.get(recorded)
        if runs is None:
            if len(self._runs) > 256:  # many partial extracts over a long-running process
                self._runs.clear()
            runs = self._runs[recorded] = self._choose(recorded)
        return runs

    def _choose(self, recorded: frozenset[str]) -> _Runs:
        chosen: list[tuple[_Check, tuple[str, Any] | None]] = []
        for (trigger, check), settled, quick in zip(
            self.gated, self.settled_by, self.quick, strict=True
        ):
            if trigger is not None and (
                trigger not in recorded if type(trigger) is str else trigger.isdisjoint(recorded)
            ):
                continue
            if settled is not None and settled in recorded:
                continue
            chosen.append((check, quick))
        turns: list[tuple[int, str | None, str]] = []
        steps: dict[str, set[int]] = {}
        windows = []
        skippable = set()
        for position, (_, quick) in enumerate(chosen):
            if quick is None:
                continue
            kind, what = quick
            if kind in ("step", "field") and what not in self.cleaners:
                continue  # a step without a record rule: nothing tests its records
            skippable.add(position)
            if kind == "order":
                # Each recorded later step and the nearest earlier step recorded (None: none
                # was), as the order check compares them (engine/order.py).
                seq = what
                for j in range(1, len(seq)):
                    if seq[j] not in recorded:
                        continue
                    pred = next((seq[i] for i in range(j - 1, -1, -1) if seq[i] in recorded), None)
                    turns.append((position, pred, seq[j]))
            elif kind == "window":
                spec = what
                each = spec.pair in ("last_start", "first_start")
                windows.append(
                    (position, spec.start, spec.end, spec.min, spec.max, spec.require_from, each)
                )
            else:  # "step" or "field": tested with the step's records
                steps.setdefault(what, set()).add(position)
        checks = tuple(check for check, _ in chosen)
        return _Runs(
            checks,
            tuple(c for i, c in enumerate(checks) if i not in skippable),
            frozenset(skippable),
            tuple(
                (sid, self.cleaners[sid], not self.checklist.steps[sid].repeats, frozenset(p))
                for sid, p in steps.items()
            ),
            tuple(turns),
            tuple(windows),
            {},
        )

    def _order_graph(self) -> None:
        direct: dict[str, set[str]] = {}
        for rule in self.checklist.rules:
            if isinstance(rule.spec, OrderSpec) and self._applies(rule.when):
                seq = rule.spec.steps
                for i, a in enumerate(seq):
                    for b in seq[i + 1 :]:
                        direct.setdefault(a, set()).add(b)
                        self.predecessors.setdefault(b, set()).add(a)
        # Transitive closure: the lint guarantees no cycles, and checklists are small.
        for start in direct:
            seen: set[str] = set()
            stack = list(direct[start])
            while stack:
                nxt = stack.pop()
                if nxt not in seen:
                    seen.add(nxt)
                    stack.extend(direct.get(nxt, ()))
            self.successors[start] = seen


_PLANS: dict[tuple[str, str | None], _Plan] = {}


def _plan(checklist: Checklist, profile: str | None) -> _Plan:
    key = (checklist.digest, profile)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 512:  # many site overrides over a long-running process
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(checklist, profile)
    return plan
