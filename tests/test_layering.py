"""The backend's import graph: no cycles, nothing imports upward, no private names across modules.

The layers, bottom to top, are the ones docs/architecture.md draws (the data path plugin → protocol →
transport → board → executor → engine → pipeline, read from the top down). Every import counts, also one
inside a function: a lazy import is still a dependency a reader has to follow. The graph is read from the
source with ``ast``, so the test needs none of the heavy libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "backend" / "coolcolor"

# Bottom to top. A module belongs to the layer of its longest matching prefix; every command-line module
# (``coolcolor.cli`` and each package's ``cli.py``) is in the top layer, since it wires the others.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("coolcolor", "coolcolor.errors", "coolcolor.faults", "coolcolor.color", "coolcolor.chroma",
     "coolcolor.references", "coolcolor.job_args", "coolcolor.default_model", "coolcolor.cli_types"),
    ("coolcolor.model",),
    ("coolcolor.video",),
    ("coolcolor.world",),
    ("coolcolor.real", "coolcolor.scaleout"),
    ("coolcolor.train",),
    ("coolcolor.daemon",),
    ("coolcolor.cli", "coolcolor.plugins_install"),
)
TOP = len(LAYERS) - 1

def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import of a coolcolor module in ``path``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            found += [(sub, []) for sub in submodules]
            if target in modules:
                found.append((target, [n for n in names if f"{target}.{n}" not in modules]))
    return [(target, names) for target, names in found if target != name]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {target for target, _ in _imports(name, path, modules)} for name, path in modules.items()}


def layer_of(module: str) -> int:
    if module == "coolcolor.cli" or module.endswith(".cli") or module.endswith(".__main__"):
        return TOP
    best, best_length = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)"
    return best


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one module are the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_cycle_finder_finds_a_cycle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [frozenset({"a", "b", "c"})]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_every_module_is_in_a_layer_and_the_layers_are_the_documented_ones() -> None:
    for module in _modules():
        layer_of(module)
    assert layer_of("coolcolor.daemon.cli") == TOP and layer_of("coolcolor.cli_types") == 0
    architecture = (PACKAGE_ROOT.parents[1] / "docs" / "architecture.md").read_text()
    for prefixes in LAYERS:
        for prefix in prefixes[1:] if prefixes[0] == "coolcolor" else prefixes:
            assert f"`{prefix.removeprefix('coolcolor.')}" in architecture, f"{prefix} is not in docs/architecture.md"


def test_no_import_cycles() -> None:
    cycles = strongly_connected(_graph())
    assert not cycles, f"import cycle(s): {[sorted(c) for c in cycles]}"


def test_nothing_imports_upward() -> None:
    upward = [f"{importer} (layer {layer_of(importer)}) imports {target} (layer {layer_of(target)})"
              for importer, targets in sorted(_graph().items()) for target in sorted(targets)
              if layer_of(target) > layer_of(importer)]
    assert not upward, "\n".join(upward)


def test_no_private_name_is_imported_from_another_module() -> None:
    modules = _modules()
    private = sorted((name, target, imported) for name, path in modules.items()
                     for target, names in _imports(name, path, modules) for imported in names
                     if imported.startswith("_") and not imported.startswith("__"))
    assert not private, private


def test_every_imported_coolcolor_module_exists() -> None:
    """A lazy import of a moved module fails only when its function runs; this finds it at once."""
    modules = _modules()
    missing = []
    for name, path in sorted(modules.items()):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("coolcolor."):
                target = node.module or ""
            elif isinstance(node, ast.Import):
                target = next((a.name for a in node.names if a.name.startswith("coolcolor.")), "")
            else:
                continue
            if target and target not in modules:
                missing.append(f"{name} imports {target}")
    assert not missing, "\n".join(missing)


def test_the_layer_check_sees_an_upward_import() -> None:
    """The check itself: a model module importing the daemon would be caught."""
    graph = {"coolcolor.model.unet": {"coolcolor.daemon.board"}}
    assert [t for i, ts in graph.items() for t in ts if layer_of(t) > layer_of(i)] == ["coolcolor.daemon.board"]

