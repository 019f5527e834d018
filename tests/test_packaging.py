"""The installed distribution holds every module: setup.cfg lists each package explicitly."""
import configparser
from pathlib import Path

ROOT = Path(__file__).parents[1]
FOLDERS = {"data": "tsrnet.data", "train": "tsrnet.train", "detect": "tsrnet.detect", "extract": "tsrnet.extract"}


def listed_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}


def test_every_package_folder_is_listed_in_setup_cfg():
    want = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            want.add(".".join([name, *rel]))
    assert want - listed_packages() == set(), "add these to [options] packages in setup.cfg"
    assert listed_packages() - want == set(), "setup.cfg lists packages that do not exist"
