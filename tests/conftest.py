import numpy as np
import pytest

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
