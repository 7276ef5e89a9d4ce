"""The shape of the package, read from its source: no import cycles, a pure engine, pure
commands that load no Flask.

The import graph is built with `ast` from every module under qms/. Every import
statement counts wherever it is (at module level, inside a function, in a try block): a
lazy import inside a function is still a cycle, only one that waits for a call to bite.
Imports under `if TYPE_CHECKING:` are left out (they never run). `from package import
name` is an edge to the submodule `package.name` when there is one, else to the package.
Modules loaded by name at run time (importlib) are not imports and are not seen.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import qms

PACKAGE_DIR = Path(qms.__file__).resolve().parent
ROOT = PACKAGE_DIR.parent

# The checklist language and the rule engine: no web, no database, no other domain.
# Everything under qms/checklists is engine or language except these two modules.
CHECKLISTS_OUTSIDE_ENGINE = {"qms.checklists.service", "qms.checklists.cli"}
ENGINE_MUST_NOT_IMPORT = (
    "flask",
    "flask_login",
    "flask_wtf",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "qms.db",
    "qms.records",
    "qms.accounts",
    "qms.storage",
    "qms.web",
)
# Modules that `qms identify`, `qms checklist ...` and `qms evaluate` load: importing
# them must load no Flask (the web app is for `qms serve`).
PURE_COMMAND_MODULES = ("qms.identifiers.cli", "qms.checklists.cli")
LOADED_BY_EVERY_COMMAND = ("qms", "qms.cli", "qms.runtime", "qms.config")
WEB_FRAMEWORK = ("flask", "flask_login", "flask_wtf", "werkzeug", "jinja2")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # a qms module, or the full dotted name of an outside one
    line: int
    module_level: bool  # runs when the importing module is imported

    def __str__(self) -> str:
        return f"{path_of(self.source)}:{self.line} imports {self.target}"


@dataclass
class Graph:
    modules: dict[str, Path]
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, dict[str, Import]]:
        out: dict[str, dict[str, Import]] = {m: {} for m in self.modules}
        for imp in self.imports:
            if imp.target in self.modules and imp.target != imp.source:
                out[imp.source].setdefault(imp.target, imp)
        return out


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def path_of(module: str) -> str:
    return str(_graph().modules[module].relative_to(ROOT))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, module_level)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, _known(alias.name, modules), node.lineno, module_level))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in modules else _known(base, modules)
                found.append(Import(module, target, node.lineno, module_level))
        inner = module_level and not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, True)
    return found


def _known(name: str, modules: dict[str, Path]) -> str:
    """`import a.b.c` loads a.b.c: the longest prefix that is a qms module, else the name."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            return prefix
    return name


@cache
def _graph() -> Graph:
    modules = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}
    graph = Graph(modules)
    for name, path in modules.items():
        graph.imports.extend(_imports_of(name, path, modules))
    return graph


def strongly_connected(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(groups)


def simple_cycles(edges: dict[str, dict[str, Import]], group: list[str], limit: int = 100):
    """Every elementary cycle inside one strongly connected group, each from its least module."""
    members = set(group)
    cycles: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for nxt in sorted(edges[path[-1]]):
            if len(cycles) >= limit:
                return
            if nxt == start:
                cycles.append([*path, start])
            elif nxt in members and nxt > start and nxt not in path:
                walk(start, [*path, nxt])

    for start in group:
        walk(start, [start])
    return cycles


def describe_cycles() -> list[str]:
    edges = _graph().edges()
    lines: list[str] = []
    for group in strongly_connected(edges):
        lines.append(f"cycle group of {len(group)} modules: {', '.join(group)}")
        for cycle in simple_cycles(edges, group):
            lines.append("  " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:], strict=False):
                lines.append(f"      {edges[a][b]}")
    return lines


def _matches(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _module_level_closure(start: str) -> dict[str, tuple[str, str] | None]:
    """Every qms module that importing `start` runs, each with the module that brought it
    in and how (parent packages' __init__ included: Python runs them first)."""
    graph = _graph()
    reached: dict[str, tuple[str, str] | None] = {}
    todo: deque[tuple[str, tuple[str, str] | None]] = deque([(start, None)])
    while todo:  # breadth first: the chain shown is a shortest one
        module, why = todo.popleft()
        if module in reached:
            continue
        reached[module] = why
        parts = module.split(".")
        for end in range(1, len(parts)):
            parent = ".".join(parts[:end])
            todo.append((parent, (module, f"{parent} runs first, as the package of {module}")))
        for imp in graph.imports:
            if imp.source == module and imp.module_level and imp.target in graph.modules:
                todo.append((imp.target, (module, str(imp))))
    return reached


# --- the tests ---------------------------------------------------------------------


def test_the_graph_sees_imports_at_every_depth():
    # A check of the checker: the lazy import of the web app inside `qms serve` is seen,
    # and does not count as a module-level import.
    graph = _graph()
    serve = [i for i in graph.imports if i.source == "qms.web.cli" and i.target == "qms.web.app"]
    assert serve and not any(i.module_level for i in serve)
    # ... and so is a package's module importing another package (the engine reads the language).
    assert "qms.checklists.language" in graph.edges()["qms.checklists.engine.context"]


def test_cycle_finder_reports_a_lazy_cycle():
    def imp(a, b):
        return Import(a, b, 1, False)

    edges = {
        "a": {"b": imp("a", "b")},
        "b": {"c": imp("b", "c"), "a": imp("b", "a")},
        "c": {"a": imp("c", "a")},
        "d": {"a": imp("d", "a")},
    }
    (group,) = strongly_connected(edges)
    assert group == ["a", "b", "c"]
    assert simple_cycles(edges, group) == [["a", "b", "a"], ["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = describe_cycles()
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(cycles)


def test_engine_and_language_import_no_web_no_database_no_other_domain():
    graph = _graph()
    engine = {
        m for m in graph.modules if _matches(m, ("qms.checklists",))
    } - CHECKLISTS_OUTSIDE_ENGINE
    assert {"qms.checklists.engine", "qms.checklists.language"} <= engine
    wrong = [
        str(imp)
        for imp in graph.imports
        if imp.source in engine and _matches(imp.target, ENGINE_MUST_NOT_IMPORT)
    ]
    assert not wrong, "the checklist engine and language must stay pure:\n" + "\n".join(wrong)


def test_pure_commands_load_no_flask_at_import():
    graph = _graph()
    wrong = []
    for start in (*PURE_COMMAND_MODULES, *LOADED_BY_EVERY_COMMAND):
        closure = _module_level_closure(start)
        for imp in graph.imports:
            if imp.source in closure and imp.module_level and _matches(imp.target, WEB_FRAMEWORK):
                chain = []
                module = imp.source
                while closure[module] is not None:
                    module, how = closure[module]
                    chain.append(how)
                via = "".join(f"\n      via {step}" for step in reversed(chain))
                wrong.append(f"importing {start}: {imp}{via}")
    assert not wrong, "these commands must not load the web framework:\n" + "\n".join(wrong)
