"""Draw docs/images/architecture.png: the layers, and the folders in each, read from the repository.

    python docs/make_architecture.py

The layers are those tests/test_architecture.py checks; the folders and command modules are listed from the
source tree, so a new folder or command appears on the next drawing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_architecture import FOLDERS, LAYERS, is_command  # noqa: E402

LAYER_NAMES = {3: "commands", 2: "training", 1: "extraction, detection", 0: "data"}
ROLES = {"core": "errors, io, settings, devices, progress", "format": "store, batching, annotations, subsets",
         "importers": "releases, npy", "generators": "synthetic features and videos",
         "diagnosis": "DETAD and its report", "methods": "the registry", "finetune": "train-backbone"}
COLOURS = {3: "#fde2c8", 2: "#d9e8fb", 1: "#dff3df", 0: "#eeeeee"}


def groups() -> dict[int, list[tuple[str, list[str]]]]:
    """Layer -> [(box title, its lines)]: a box per top folder, and the command modules on top."""
    out: dict[int, list] = {k: [] for k in LAYER_NAMES}
    commands = []
    for folder in FOLDERS:
        files = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py"))
        commands += [f for f in files if is_command(f)]
        subs = sorted({p.parent.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).rglob("__init__.py")}
                      - {"."})
        mods = sorted(Path(f).stem for f in files if Path(f).parent == Path(folder) and not is_command(f)
                      and Path(f).stem != "__init__")
        lines = [f"{s + '/':<12}{ROLES.get(s, '')}" for s in subs if "/" not in s]
        lines += [", ".join(mods[i:i + 5]) for i in range(0, len(mods), 5)]
        out[LAYERS[folder]].append((folder + "/", lines))
    out[3].append(("commands", [", ".join(commands[i:i + 3]) for i in range(0, len(commands), 3)]))
    return out


def draw(path: Path) -> Path:
    layers = groups()
    fig, ax = plt.subplots(figsize=(9, 5.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.3)
    ax.axis("off")
    for level, boxes in layers.items():
        y = 0.15 + level * 1.05
        ax.text(0.05, y + 0.45, LAYER_NAMES[level], rotation=90, va="center", ha="left", fontsize=9, color="#555")
        width = 9.4 / max(1, len(boxes))
        for i, (title, lines) in enumerate(boxes):
            x = 0.5 + i * width
            ax.add_patch(FancyBboxPatch((x, y), width - 0.15, 0.85, boxstyle="round,pad=0.02",
                                        facecolor=COLOURS[level], edgecolor="#888"))
            ax.text(x + 0.08, y + 0.74, title, fontsize=10, fontweight="bold", va="top", family="monospace")
            ax.text(x + 0.08, y + 0.52, "\n".join(lines), fontsize=6.5, va="top", family="monospace")
        if level:
            for x in (3.0, 7.0):
                ax.annotate("", xy=(x, y - 0.18), xytext=(x, y + 0.02), arrowprops=dict(arrowstyle="->", color="#444"))
    ax.text(9.9, 4.25, "imports point down only", fontsize=8, ha="right", color="#444")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(draw(ROOT / "docs" / "images" / "architecture.png"))
