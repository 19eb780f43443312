"""The package's layers hold (docs/development.md#layers): no import cycle, lazy imports included; each
layer imports only what sits below it; no function grows past about 50 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_invoicepay"
#: Edges: thin code that calls the services (views, tags, admin, commands, tasks, the test kit).
EDGES = ("api", "webhooks.views", "admin", "admin_inlines", "templatetags", "management", "tasks", "testing",
         "urls")
MAX_FUNCTION_LINES = 50


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports when it runs: at the top or inside a function (lazily), not
    those under `if TYPE_CHECKING:`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for block in ast.walk(tree)  # the body of `if TYPE_CHECKING:`, not its else
                   if isinstance(block, ast.If) and ast.unparse(block.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}
                   for statement in block.body for node in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] in {"import_module", "import_string"} \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            targets = [node.args[0].value]  # importlib.import_module("django_invoicepay.x"), import_string(...)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("django_invoicepay."):
                found.add(target)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: runtime_imports(path, set(known)) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def under(module: str, *layers: str) -> bool:
    return any(module == f"django_invoicepay.{layer}" or module.startswith(f"django_invoicepay.{layer}.")
               for layer in layers)


def test_no_import_cycles_lazy_imports_included(graph):
    assert cycles(graph) == []


def test_the_provider_clients_know_http_and_the_wire_format_only(graph):
    allowed = ("rehive", "onepipe", "http", "errors", "masking", "money")
    for module, imported in graph.items():
        if under(module, "rehive", "onepipe", "http"):
            assert {m for m in imported if not under(m, *allowed)} == set(), module
            source = modules()[module].read_text()
            assert "from django." not in source.replace("from django.utils.translation", ""), module


def test_models_import_no_services_and_services_no_edges(graph):
    for module, imported in graph.items():
        if under(module, "models"):
            assert {m for m in imported if under(m, "services", *EDGES, "clients")} == set(), module
        if under(module, "services"):
            assert {m for m in imported if under(m, *EDGES)} == set(), module


def test_no_function_is_longer_than_about_fifty_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []
