"""YAML read into plain dicts and lists that remember the line each key and item came from."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor


class LMap(dict):
    """A YAML mapping; `.line` is where it starts, `.lines[key]` where each key is written."""

    line: int
    lines: dict[Any, int]


class LList(list):
    """A YAML sequence; `.line` is where it starts, `.lines[i]` where each item is written."""

    line: int
    lines: list[int]


# libyaml's parser where PyYAML was built with it (the wheels are): the same nodes and line
# marks, several times faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlProblem(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def load_located(text: str) -> Any:
    """Parse one YAML document; duplicate keys and anchors/aliases are errors.

    PyYAML silently keeps the last of two equal keys; in a checklist that would hide a
    limit, so duplicates are rejected. Aliases would make a rule's line ambiguous.
    """
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlProblem(line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem(1, "nested too deeply to be a checklist") from None
    if node is None:
        return None
    try:
        return _convert(node, SafeConstructor(), set())
    except RecursionError:
        raise YamlProblem(1, "nested too deeply to be a checklist") from None


def _convert(node: yaml.Node, constructor: SafeConstructor, seen: set[int]) -> Any:
    line = node.start_mark.line + 1
    # The composer hands back the same node object for every alias of an anchor.
    if id(node) in seen:
        raise YamlProblem(
            line, "YAML anchors and aliases are not allowed in checklists; write the value out"
        )
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out = LMap()
        out.line = line
        out.lines = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlProblem(
                    key_node.start_mark.line + 1, "YAML merge keys (<<) are not allowed"
                )
            key = _convert(key_node, constructor, seen)
            key_line = key_node.start_mark.line + 1
            if isinstance(key, LMap | LList):
                raise YamlProblem(key_line, "a key must be a plain word")
            if key in out:
                raise YamlProblem(
                    key_line,
                    f"duplicate key {key!r} (first at line {out.lines[key]}); write each key once",
                )
            out[key] = _convert(value_node, constructor, seen)
            out.lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        out_list = LList()
        out_list.line = line
        out_list.lines = []
        for item in node.value:
            out_list.append(_convert(item, constructor, seen))
            out_list.lines.append(item.start_mark.line + 1)
        return out_list
    try:
        return constructor.construct_object(node, deep=True)
    except ConstructorError as exc:
        raise YamlProblem(line, f"cannot read value: {exc.problem}") from None
