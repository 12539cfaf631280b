"""The import graph follows the pipeline (recipe -> data -> model -> train -> tune / doctor / compare -> report).

Read with `ast` from the sources; nothing is imported. An edge is any `import tunesmith...`,
`from tunesmith... import ...` or relative import, at module level or inside a function: a lazy
import still runs, so it counts. `from pkg import name` is an edge to `pkg` (it reads the package's
namespace) and, when `pkg.name` is a module, to it too; `import pkg.sub` and `from pkg.sub import x`
are edges to `pkg.sub` alone, so a package `__init__` importing its own submodules is no cycle, but
a submodule that imports its package back (`from tunesmith.report import plots`) closes one.
Imports under `if TYPE_CHECKING:` count for the layer rules (a train/ annotation naming a tuning
type is still train depending on tuning) but not for cycles: they never run, and they are how two
modules name each other's types (train/callbacks.py and train/trainer.py) without a runtime cycle.
Module names in strings (`importlib.import_module`, the lazy `_API` tables) are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LOWER = ("tunesmith.errors", "tunesmith.recipe", "tunesmith.tuneconfig", "tunesmith.data", "tunesmith.models")
LOWER += ("tunesmith.train",)
UPPER = ("tunesmith.tuning", "tunesmith.diagnosis", "tunesmith.comparison", "tunesmith.report")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # path:line of the import
    typing_only: bool  # under `if TYPE_CHECKING:`

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where}{', TYPE_CHECKING' if self.typing_only else ''})"


def modules(root: Path) -> dict[str, Path]:
    """Every module under root/tunesmith by dotted name (a package by its `__init__.py`)."""
    out = {}
    for path in sorted((root / "tunesmith").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_edges(root: Path) -> list[Edge]:
    mods = modules(root)
    edges = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, typing_only in _imports(ast.parse(path.read_text(), filename=str(path)).body):
            for target in _targets(node, package, mods):
                if target != name:
                    edges.append(Edge(name, target, f"{path.relative_to(root)}:{node.lineno}", typing_only))
    return edges


def _imports(nodes: Iterable[ast.AST], typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.body, True)
            yield from _imports(node.orelse, typing_only)
        else:
            yield from _imports(ast.iter_child_nodes(node), typing_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str, mods: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        stem = node.module or ""
        if node.level:  # relative: from the importing module's package, one level up per extra dot
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            stem = ".".join([*base, *([node.module] if node.module else [])])
        names = [stem, *(f"{stem}.{a.name}" for a in node.names if f"{stem}.{a.name}" in mods)]
    return {_known(n, mods) for n in names if n == "tunesmith" or n.startswith("tunesmith.")}


def _known(name: str, mods: dict[str, Path]) -> str:
    """The module `name` lands in: itself, or its longest prefix that is a module (`tunesmith.x.func`)."""
    while name not in mods:
        name = name.rpartition(".")[0]
    return name


def find_cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """One shortest cycle per strongly connected component, as its edges; TYPE_CHECKING imports excluded."""
    graph: dict[str, dict[str, Edge]] = {}
    for e in edges:
        if not e.typing_only:
            graph.setdefault(e.source, {}).setdefault(e.target, e)
    cycles = []
    for component in _components(graph):
        start = min(component)
        paths: dict[str, list[Edge]] = {start: []}
        frontier = [start]
        while frontier and start not in graph.get(frontier[0], {}):  # breadth first, inside the component
            node = frontier.pop(0)
            for nxt, e in sorted(graph.get(node, {}).items()):
                if nxt in component and nxt not in paths:
                    paths[nxt] = [*paths[node], e]
                    frontier.append(nxt)
        cycles.append([*paths[frontier[0]], graph[frontier[0]][start]])
    return cycles


def _components(graph: dict[str, dict[str, Edge]]) -> list[set[str]]:
    """Tarjan's strongly connected components with a cycle (two or more modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while (top := stack.pop()) != node:
                component.add(top)
            if component:
                found.append({node, *component})

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def upward(edges: Iterable[Edge], sources: tuple[str, ...], targets: tuple[str, ...]) -> list[Edge]:
    return [e for e in edges if within(e.source, sources) and within(e.target, targets)]


def trainer_privates(trainer_py: Path) -> set[str]:
    """The `_name`s class Trainer defines: methods, `self._x = ...` attributes, class-level fields."""
    tree = ast.parse(trainer_py.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Trainer")
    names = {t.id for s in cls.body if isinstance(s, ast.Assign | ast.AnnAssign) for t in _assigned(s)}
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_name(node.value, "self"):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def _assigned(stmt: ast.Assign | ast.AnnAssign) -> list[ast.Name]:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return [t for t in targets if isinstance(t, ast.Name)]


def _is_name(node: ast.expr, *names: str) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def private_uses(root: Path, names: set[str]) -> list[str]:
    """`<expr>._name` outside tunesmith.train for a Trainer private `_name` (`self.`/`cls.` are a class's own)."""
    uses = []
    for module, path in modules(root).items():
        if within(module, ("tunesmith.train",)):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in names and not _is_name(node.value, "self", "cls"):
                uses.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return uses


@cache
def real_edges() -> list[Edge]:
    return import_edges(SRC)


def test_no_import_cycle() -> None:
    cycles = find_cycles(real_edges())
    assert not cycles, "import cycles:\n" + "\n".join(" | ".join(map(str, c)) for c in cycles)


def test_recipe_data_models_and_train_import_nothing_from_tune_doctor_compare_or_report() -> None:
    bad = upward(real_edges(), LOWER, UPPER)
    assert not bad, "upward imports:\n" + "\n".join(map(str, bad))


def test_diagnosis_does_not_import_tuning() -> None:
    bad = upward(real_edges(), ("tunesmith.diagnosis",), ("tunesmith.tuning",))
    assert not bad, "diagnosis imports tuning:\n" + "\n".join(map(str, bad))


def test_no_private_trainer_member_is_used_outside_train() -> None:
    names = trainer_privates(SRC / "tunesmith" / "train" / "trainer.py")
    assert names  # the collection found the class (it has private helpers)
    uses = private_uses(SRC, names)
    assert not uses, f"private Trainer members {sorted(names)} used outside train/:\n" + "\n".join(uses)


def test_the_checker_finds_a_cycle_an_upward_edge_and_a_private_use(tmp_path: Path) -> None:
    files = {
        "__init__.py": "",
        "a.py": "from tunesmith import b\n",
        "b.py": "def f(trainer):\n    from . import c\n    return trainer._step()\n",  # lazy + relative + private
        "c.py": "import tunesmith.a.helper\n",  # a name inside a module lands in the module
        "train/__init__.py": "",
        "train/trainer.py": "class Trainer:\n    def _step(self):\n        self._seen = 1\n        return self._seen\n",
        "train/loop.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..tuning.space import X\n",
        "tuning/__init__.py": "from .space import X\n",  # a package importing its own submodule: no cycle
        "tuning/space.py": "from tunesmith.train import loop\n",  # a cycle only through TYPE_CHECKING: none
    }
    for name, text in files.items():
        (tmp_path / "tunesmith" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tunesmith" / name).write_text(text)
    edges = import_edges(tmp_path)
    cycles = [[(e.source, e.target) for e in c] for c in find_cycles(edges)]
    assert cycles == [[("tunesmith.a", "tunesmith.b"), ("tunesmith.b", "tunesmith.c"), ("tunesmith.c", "tunesmith.a")]]
    assert [str(e) for e in upward(edges, LOWER, UPPER)] == [
        "tunesmith.train.loop -> tunesmith.tuning.space (tunesmith/train/loop.py:3, TYPE_CHECKING)"
    ]
    names = trainer_privates(tmp_path / "tunesmith" / "train" / "trainer.py")
    assert names == {"_step", "_seen"}
    assert private_uses(tmp_path, names) == ["tunesmith/b.py:3: trainer._step"]
