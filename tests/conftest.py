"""What the tests share: a tiny planted-action set, a seeded generator, and the way commands are invoked.

Test modules import the helpers below (``from conftest import FAST_TRAIN, invoke``): pytest puts this folder
on the import path.
"""
import numpy as np
import pytest
from click.testing import CliRunner

from tsrnet.data.generators.synthetic import SyntheticSpec, generate

TINY = SyntheticSpec(n_classes=4, dim=24, n_train=16, n_test=8, n_trimmed=32, min_duration=20, max_duration=40,
                     seed=3)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny planted-action set: untrimmed.h5, trimmed.h5, annotations.json."""
    return generate(tmp_path_factory.mktemp("tiny"), TINY)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Training short enough for a test, on the tiny set: a few steps and small layers (every method accepts these).
FAST_TRAIN = ["--steps", "8", "--pretrain-steps", "2", "--quiet", "--hidden-dim", "16", "--attention-dim", "8"]


def invoke(cmd, args, catch_exceptions: bool = True):
    """Run a click command with ``args`` of any type (paths, numbers), as the shell would pass them."""
    return CliRunner().invoke(cmd, [str(a) for a in args], catch_exceptions=catch_exceptions)

