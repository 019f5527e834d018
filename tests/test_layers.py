"""Dependencies point one way: data <- detect's core <- train (methods, trainer) <- the commands.

Read from the source (every import statement, module level or inside a
function), so a shortcut that only runs on some path is caught too; and no
group of files imports each other, within a folder or across folders.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
COMMANDS = {"train/cli.py", "detect/cli.py", "data/cli.py", "extract/cli.py"}


def layer(path: str) -> int:
    if path in COMMANDS:
        return 3
    return {"data": 0, "extract": 1, "detect": 1, "train": 2}[path.split("/")[0]]


def module_layer(name: str) -> int | None:
    parts = name.split(".")
    if parts[0] != "tsrnet" or len(parts) < 2:
        return None
    path = "/".join(parts[1:]) + ".py"
    return layer(path) if path in COMMANDS else {"data": 0, "extract": 1, "detect": 1, "train": 2}[parts[1]]


def imports(path: Path) -> list[str]:
    return [module for module, _ in imported_names(path)]


def test_no_module_imports_a_higher_layer():
    wrong = []
    for folder in ("data", "extract", "detect", "train"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            own = layer(rel)
            for name in imports(f):
                other = module_layer(name)
                if other is not None and other > own:
                    wrong.append(f"{rel} imports {name}")
    assert wrong == []


def test_the_check_sees_a_violation(tmp_path):
    assert module_layer("tsrnet.train.trainer") == 2 > layer("detect/pipeline.py")
    assert module_layer("tsrnet.detect.cli") == 3 > layer("train/trainer.py")


def module_file(name: str) -> str | None:
    """The repository file that defines module ``name`` (a package's __init__.py), or None."""
    parts = name.split(".")
    if parts[0] != "tsrnet" or len(parts) < 2:
        return None
    base = ROOT.joinpath(*parts[1:])
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f.relative_to(ROOT).as_posix()
    return None


def import_graph() -> dict[str, set[str]]:
    """File -> the project files it imports (``from pkg import sub`` counts as importing pkg/sub.py)."""
    graph: dict[str, set[str]] = {}
    for folder in ("data", "extract", "detect", "train"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            targets = set()
            for name, names in imported_names(f):
                for n in names or [None]:
                    targets.add((n and module_file(f"{name}.{n}")) or module_file(name))
            graph[rel] = targets - {rel, None}
    return graph


def imported_names(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement of ``path``."""
    tree = ast.parse(path.read_text())
    pkg = ".".join(["tsrnet", *path.relative_to(ROOT).parent.parts])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.append((".".join(base + ([node.module] if node.module else [])), [a.name for a in node.names]))
            else:
                out.append((node.module, [a.name for a in node.names]))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one file: groups that import each other."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    nodes = sorted(graph)
    index = {n: i for i, n in enumerate(nodes)}
    edges = [(index[a], index[b]) for a in nodes for b in graph[a] if b in index]
    rows, cols = zip(*edges) if edges else ((), ())
    m = csr_matrix(([1] * len(edges), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(m, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for n, g in zip(nodes, label):
        groups.setdefault(g, []).append(n)
    return sorted(g for g in groups.values() if len(g) > 1)


def test_no_import_cycles_within_or_across_folders():
    # A cycle works only while every import of it sits inside a function or after the names it
    # needs; one reordering breaks it, and it means two files that cannot be understood apart.
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle_and_resolves_imports():
    assert cycles({"a.py": {"b.py"}, "b.py": {"c.py"}, "c.py": {"a.py"}, "d.py": {"a.py"}}) == [
        ["a.py", "b.py", "c.py"]]
    assert cycles({"a.py": {"b.py"}, "b.py": set()}) == []
    graph = import_graph()
    # relative imports, a package's __init__, and `from package import submodule`
    assert "data/annotations/model.py" in graph["data/annotations/__init__.py"]
    assert "extract/writer.py" in graph["extract/cluster.py"]
    assert "data/store.py" in graph["train/trainer.py"]
