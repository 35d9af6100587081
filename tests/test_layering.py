"""The package's imports point one way (DESIGN.md §4), and studies/ stays outside it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_energy"

# (importer prefix, forbidden imported prefix): the layers that must not point upwards.
FORBIDDEN = [
    ("solvers", "adjoints"),
    ("linalg", "solvers"),
    ("linalg", "adjoints"),
    ("energies", "datasets"),
    ("energies", "datamodules"),
    ("energies", "solvers"),
    ("energies", "adjoints"),
    ("energies", "tasks"),
    ("datasets", "datamodules"),
    ("datasets", "tasks"),
    ("adjoints", "layer"),
    ("layer", "tasks"),
    ("tasks", "baselines"),
    ("tasks", "crossval"),
    ("tasks", "cli"),
    ("", "studies"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def imports(path: Path, module_level_only: bool = False) -> set[str]:
    """Modules ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                package = module_name(path).split(".")
                base = ".".join([*package[: len(package) - node.level + 1], node.module])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize(("importer", "imported"), FORBIDDEN)
def test_no_import_points_upwards(importer: str, imported: str) -> None:
    """Faulty variant caught: e.g. solvers/trust_region.py importing adjoints' linear algebra."""
    bad = []
    for module, path in MODULES.items():
        if importer and _layer(module) != importer:
            continue
        for name in imports(path):
            target = name.split(".")
            hit = (target[0] == "studies") if imported == "studies" else (
                target[0] == "lightning_energy" and len(target) > 1 and target[1] == imported)
            if hit:
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_at_module_level() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        graph[module] = {m for m in MODULES
                         if m != module and any(n == m or n.startswith(m + ".")
                                                for n in imports(path, module_level_only=True))
                         and not module.startswith(m + ".")}  # a package's own __init__
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module)


def test_the_package_holds_no_study_code_and_prints_nothing() -> None:
    assert not (PACKAGE / "experiments").exists()
    printing = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{module}:{node.lineno}")
    assert not printing, f"print() in the package (write CLI output through cli.py): {printing}"


def test_only_lightning_energy_is_packaged() -> None:
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["lightning_energy*"]
