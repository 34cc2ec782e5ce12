"""The package's layout stays tidy: no import cycle, no re-export shim, no private name
imported across modules, and every sub-package installed."""

from __future__ import annotations

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"lagllama": ROOT / "lagllama", "lagllama.estimators": ROOT / "estimators"}
#: Package ``__init__`` files that load their public names lazily (``import lagllama`` stays light).
LAZY_INITS = {"lagllama", "lagllama.estimators"}


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = ast.parse(path.read_text(), str(path))
    return modules


def _imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Every import of the module, top level or inside functions."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, ast.Module]) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    base = node.module or ""
    found = {base} if base in modules else set()
    found |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
    return found


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {m: set() for m in modules}
    for name, tree in modules.items():
        for node in _imports(tree):
            graph[name] |= _targets(node, modules) - {name}
    # a package imports its own sub-modules lazily by design; cycles through it don't count
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_no_shims_and_no_private_names_across_modules() -> None:
    modules = _modules()
    problems = []
    for name, tree in modules.items():
        for node in _imports(tree):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith(
                "lagllama"
            ):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    problems.append(f"{name} imports private {node.module}.{alias.name}")
                if alias.asname == alias.name:
                    problems.append(f"{name} re-exports {node.module}.{alias.name}")
        getattrs = [
            n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
        ]
        if getattrs and name not in LAZY_INITS:
            problems.append(f"{name} forwards names with a module __getattr__")
    assert not problems, "\n".join(problems)


def test_every_sub_package_is_installed() -> None:
    packages = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join([package, *init.parent.relative_to(folder).parts])
        for package, folder in SOURCES.items()
        for init in folder.rglob("__init__.py")
    }
    assert on_disk <= packages, sorted(on_disk - packages)
    # one level deep: no package inside a package of lagllama (the estimators excepted)
    nested = [
        p
        for p in on_disk
        if p.startswith("lagllama.")
        and not p.startswith("lagllama.estimators")
        and p.count(".") > 1
    ]
    assert not nested, nested
