"""The architecture of docs/architecture.md, checked from the source: commands on top, libraries below,
dependencies pointing one way.

Read from every import statement and call (module level or inside a function), so a shortcut that only
runs on some path is caught too.

- **Commands on top.** A command module is ``cli.py`` or ``*_cli.py``: only these import click, print for
  the user or exit. Libraries raise the project's errors (``tsrnet.data.core.errors``) and report progress
  and notes through ``tsrnet.data.core.progress``, the one module that writes to the terminal.
- **Layers.** data (0) <- extract and detect (1) <- train (2) <- the commands (3); nothing imports a layer
  above its own, so no library imports a command module.
- **No cycles:** no group of files imports each other, within a folder or across folders.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
FOLDERS = ("data", "extract", "detect", "train")
LAYERS = {"data": 0, "extract": 1, "detect": 1, "train": 2}
COMMAND_LAYER = 3
PROGRESS = "data/core/progress.py"  # the one library module that writes to the terminal


def is_command(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name == "cli.py" or name.endswith("_cli.py")


def layer(path: str) -> int:
    return COMMAND_LAYER if is_command(path) else LAYERS[path.split("/")[0]]


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


def library_files() -> list[str]:
    return [p for p in project_files() if not is_command(p)]


def project_files() -> list[str]:
    return [f.relative_to(ROOT).as_posix() for folder in FOLDERS for f in sorted((ROOT / folder).rglob("*.py"))]


def imported_names(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import statement of ``path``."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT)
    pkg = ".".join(["tsrnet", *rel.parent.parts])
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


def imported_files(path: str) -> set[str]:
    """The project files ``path`` imports (``from pkg import sub`` counts as importing pkg/sub.py)."""
    targets = set()
    for name, names in imported_names(ROOT / path):
        for n in names or [None]:
            targets.add((n and module_file(f"{name}.{n}")) or module_file(name))
    return targets - {path, None}


def import_graph() -> dict[str, set[str]]:
    return {p: imported_files(p) for p in project_files()}


def command_behaviour(path: Path) -> list[str]:
    """What only a command may do, as ``line: what``: import click, print, exit."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == "click" or n.startswith("click.") for n in names):
                found.append(f"{node.lineno}: imports click")
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f"{getattr(f.value, 'id', '?')}.{f.attr}" \
                if isinstance(f, ast.Attribute) else ""
            if name in ("print", "exit", "quit", "sys.exit", "os._exit"):
                found.append(f"{node.lineno}: calls {name}")
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                found.append(f"{node.lineno}: raises SystemExit")
    return sorted(found, key=lambda s: int(s.split(":")[0]))


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


# -- the rules -------------------------------------------------------------------------------------------------
def test_only_commands_import_click_print_or_exit():
    wrong = {p: found for p in library_files() if p != PROGRESS and (found := command_behaviour(ROOT / p))}
    assert wrong == {}


def test_no_module_imports_a_higher_layer():
    wrong = [f"{p} imports {t}" for p, targets in import_graph().items() for t in sorted(targets)
             if layer(t) > layer(p)]
    assert wrong == []


def test_no_library_imports_a_command_module():
    assert [(p, t) for p in library_files() for t in imported_files(p) if is_command(t)] == []


def test_no_import_cycles_within_or_across_folders():
    # A cycle works only while every import of it sits inside a function or after the names it
    # needs; one reordering breaks it, and it means two files that cannot be understood apart.
    assert cycles(import_graph()) == []


# -- the checks see what they look for -------------------------------------------------------------------------
def test_the_behaviour_check_sees_click_print_and_exit(tmp_path):
    f = tmp_path / "lib.py"
    f.write_text("import sys\nimport click.testing\n\ndef g():\n    print('x')\n    sys.exit(2)\n"
                 "    raise SystemExit(1)\n    click.echo('y')\n")
    assert command_behaviour(f) == ["2: imports click", "5: calls print", "6: calls sys.exit",
                                    "7: raises SystemExit"]
    f.write_text("import sys\nfrom tsrnet.data.core.progress import report\n\ndef g():\n    report('x')\n")
    assert command_behaviour(f) == []


def test_the_layer_check_knows_commands_and_layers():
    assert is_command("detect/diagnose_cli.py") and is_command("extract/finetune/cli.py")
    assert not is_command("data/common_cli_helpers.py") and not is_command("train/compare.py")
    assert layer("train/trainer.py") == 2 > layer("detect/pipeline.py") == 1 > layer("data/format/store.py") == 0
    assert layer("detect/cli.py") == COMMAND_LAYER


def test_the_cycle_check_sees_a_cycle_and_resolves_imports():
    assert cycles({"a.py": {"b.py"}, "b.py": {"c.py"}, "c.py": {"a.py"}, "d.py": {"a.py"}}) == [
        ["a.py", "b.py", "c.py"]]
    assert cycles({"a.py": {"b.py"}, "b.py": set()}) == []
    graph = import_graph()
    # relative imports, a package's __init__, and `from package import submodule`
    assert "data/format/annotations/model.py" in graph["data/format/annotations/__init__.py"]
    assert "extract/writer.py" in graph["extract/cluster.py"]
    assert "data/format/store.py" in graph["train/trainer.py"]
    assert "detect/diagnosis/rules.py" in graph["detect/diagnosis/report.py"]
