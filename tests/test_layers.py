"""Dependencies point one way: data <- detect's core <- train (methods, trainer) <- the commands.

Read from the source (every import statement, module level or inside a
function), so a shortcut that only runs on some path is caught too.
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
    tree = ast.parse(path.read_text())
    pkg = ".".join(["tsrnet", *path.relative_to(ROOT).parent.parts])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.append(".".join(base + ([node.module] if node.module else [])))
            else:
                out.append(node.module)
    return out


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
