"""The shape of the code: one direction of imports between the layers, a pure core, small
functions and files (issue 15; docs/design.md, "Layout").

Layers, from the entry points down: ``app.py``, ``tools/``, ``api/`` -> the runtime
(``streams/``, ``tables/``) -> the pure stages -> ``schemas/`` -> ``ledger/``. The checks read the
source (``ast``), so they need no import of the code and see imports inside functions too.

Known exceptions are listed with who removes them; a test fails when one is no longer needed,
so the lists only shrink.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = (
    "api",
    "bench",
    "demo",
    "ledger",
    "registry",
    "schemas",
    "streams",
    "tables",
    "tools",
)
PROJECT_MODULES = ("app", "errors", "settings")
SKIPPED_FOLDERS = {".venv", ".cache", ".state", "build", "tests"}

FILE_LINES_MAX = 600
FUNCTION_LINES_MAX = 120

# Stream-processing frameworks and Kafka clients: never in the pure core or the pure stages.
FRAMEWORKS = ("faust", "mode", "kafka", "aiokafka", "confluent_kafka", "rocksdict", "aiohttp")
# The pure stages: each record's work without faust (carried out by the runtime's agents).
PURE_STAGES = (
    "streams.pipeline",
    "streams.posting",
    "streams.posting_rows",
    "streams.stage_records",
    "streams.effects",
    "streams.deadletter",
    "streams.table_stage",
)

# Import edges that close a cycle between top-level packages, to be removed.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()
# Imports through which a pure stage reaches a framework, to be removed.
KNOWN_FRAMEWORK_PATHS: set[tuple[str, str]] = set()
# Files over FILE_LINES_MAX lines and functions over FUNCTION_LINES_MAX lines, to be split.
KNOWN_LONG_FILES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()
# Every package outside the tests is held to the size limits, bench/ included ("outside tests").
SIZE_UNCHECKED_PACKAGES: tuple[str, ...] = ()
# Benchmarks are measured, not shipped: their exceptions need not be FinError.
ERROR_ROOT_UNCHECKED_PACKAGES = ("bench",)


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. streams.faust_patches.commit_guard
    path: Path
    tree: ast.Module

    @property
    def top(self) -> str:
        return self.name.split(".")[0]

    @property
    def relative(self) -> str:
        return self.path.relative_to(ROOT).as_posix()


@cache
def project_modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in SKIPPED_FOLDERS or parts[0].endswith(".egg-info"):
            continue
        if parts[0].removesuffix(".py") not in (*PROJECT_PACKAGES, *PROJECT_MODULES):
            continue
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found.append(Module(dotted, path, ast.parse(path.read_text(), str(path))))
    return tuple(found)


def imported_names(module: Module) -> Iterator[str]:
    """Every module ``module`` imports, wherever the import statement is (dotted names; for
    ``from a import b`` both ``a`` and ``a.b``, since ``b`` may be a module)."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def project_name(imported: str) -> str | None:
    """The project module ``imported`` names (its longest known prefix), or None."""
    known = {module.name for module in project_modules()}
    parts = imported.split(".")
    for length in range(len(parts), 0, -1):
        candidate = ".".join(parts[:length])
        if candidate in known:
            return candidate
    return None


def is_known(edge: tuple[str, str], known: set[tuple[str, str]]) -> bool:
    importer, imported = edge
    return any(
        importer == known_importer
        and (imported == known_imported or imported.startswith(known_imported + "."))
        for known_importer, known_imported in known
    )


def package_edges() -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importing package, imported package) -> the module imports behind it."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for module in project_modules():
        for imported in imported_names(module):
            target = project_name(imported)
            if target is None or target.split(".")[0] == module.top:
                continue
            edge = (module.name, target)
            edges.setdefault((module.top, target.split(".")[0]), []).append(edge)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_top_level_packages() -> None:
    graph: dict[str, set[str]] = {}
    for (importer, imported), behind in package_edges().items():
        if all(is_known(edge, KNOWN_CYCLE_EDGES) for edge in behind):
            continue
        graph.setdefault(importer, set()).add(imported)
    found = cycles(graph)
    edges = package_edges()
    details = [
        f"{' <-> '.join(cycle)}: "
        + "; ".join(
            f"{a} -> {b}"
            for first in cycle
            for second in cycle
            for a, b in edges.get((first, second), [])
            if not is_known((a, b), KNOWN_CYCLE_EDGES)
        )
        for cycle in found
    ]
    assert not found, "import cycles between top-level packages:\n" + "\n".join(details)


def test_the_cycle_detector_finds_a_cycle_and_accepts_a_layering() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"app": {"api", "streams"}, "api": {"streams"}, "streams": {"ledger"}}) == []


def test_every_known_cycle_edge_is_still_there() -> None:
    present = {edge for behind in package_edges().values() for edge in behind}
    stale = {known for known in KNOWN_CYCLE_EDGES if not is_known_in(known, present)}
    assert not stale, f"no longer imported, remove from KNOWN_CYCLE_EDGES: {sorted(stale)}"


def is_known_in(known: tuple[str, str], present: set[tuple[str, str]]) -> bool:
    return any(is_known(edge, {known}) for edge in present)


def framework_of(imported: str) -> str | None:
    top = imported.split(".", maxsplit=1)[0]
    return top if top in FRAMEWORKS else None


def test_the_ledger_imports_nothing_but_the_standard_library_itself_and_errors() -> None:
    allowed_third_party = {"orjson"}  # a JSON codec, no I/O
    problems = []
    for module in project_modules():
        if module.top != "ledger":
            continue
        for imported in imported_names(module):
            top = imported.split(".")[0]
            if top in ("ledger", "errors", "__future__") or top in allowed_third_party:
                continue
            if top in sys.stdlib_module_names:
                continue
            problems.append(f"{module.name} imports {imported}")
    assert not problems, "\n".join(problems)


def reachable_frameworks(start: str, known: set[tuple[str, str]]) -> list[str]:
    """Frameworks ``start`` imports, directly or through project modules, with the path."""
    by_name = {module.name: module for module in project_modules()}
    found: list[str] = []
    seen = {start}
    pending: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
    while pending:
        name, path = pending.pop()
        for imported in imported_names(by_name[name]):
            if (framework := framework_of(imported)) is not None:
                found.append(" -> ".join((*path, framework)))
                continue
            target = project_name(imported)
            if target is None or target in seen or is_known((name, target), known):
                continue
            seen.add(target)
            pending.append((target, (*path, target)))
    return found


@pytest.mark.parametrize("stage", PURE_STAGES)
def test_a_pure_stage_reaches_no_stream_framework_or_kafka_client(stage: str) -> None:
    found = reachable_frameworks(stage, KNOWN_FRAMEWORK_PATHS)
    assert not found, "\n".join(found)


def test_no_module_of_the_ledger_reaches_a_stream_framework_or_kafka_client() -> None:
    found = [
        path
        for module in project_modules()
        if module.top == "ledger"
        for path in reachable_frameworks(module.name, set())
    ]
    assert not found, "\n".join(found)


def size_checked_modules() -> Iterator[Module]:
    return (m for m in project_modules() if m.top not in SIZE_UNCHECKED_PACKAGES)


def long_files() -> dict[str, int]:
    lengths = {
        module.relative: len(module.path.read_text().splitlines())
        for module in size_checked_modules()
    }
    return {path: lines for path, lines in lengths.items() if lines > FILE_LINES_MAX}


def long_functions() -> dict[str, int]:
    found = {}
    for module in size_checked_modules():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES_MAX:
                    found[f"{module.relative}:{node.name}"] = lines
    return found


def test_no_file_outside_the_tests_is_over_600_lines() -> None:
    report = {path: lines for path, lines in long_files().items() if path not in KNOWN_LONG_FILES}
    assert not report, f"files over {FILE_LINES_MAX} lines: {report}"


def test_no_function_outside_the_tests_is_over_120_lines() -> None:
    found = long_functions()
    report = {name: lines for name, lines in found.items() if name not in KNOWN_LONG_FUNCTIONS}
    assert not report, f"functions over {FUNCTION_LINES_MAX} lines: {report}"


def test_every_known_long_file_or_function_is_still_long() -> None:
    stale = (KNOWN_LONG_FILES - set(long_files())) | (KNOWN_LONG_FUNCTIONS - set(long_functions()))
    assert not stale, f"split since: remove from the known exceptions: {sorted(stale)}"


def test_every_exception_fin_defines_derives_from_fin_error() -> None:
    from errors import FinError

    outside = []
    for module in project_modules():
        if module.top in ERROR_ROOT_UNCHECKED_PACKAGES or module.name == "app":
            continue
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.name
                and not issubclass(value, FinError)
            ):
                outside.append(f"{module.name}.{value.__name__}")
    assert not outside, f"exceptions outside FinError (errors.py): {outside}"
