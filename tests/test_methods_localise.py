"""Every registered method, trained briefly on planted-action features, localises clearly better than chance."""
import numpy as np
import pytest

from tsrnet.data.generators.synthetic import SyntheticSpec, generate
from tsrnet.detect.config import DetectConfig
from tsrnet.detect.pipeline import detections, evaluate_scores, random_scores, score_store
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.methods import REGISTRY, method_class
from tsrnet.train.trainer import Trainer

SPEC = SyntheticSpec(n_classes=5, dim=64, n_train=40, n_test=20, n_trimmed=100, min_duration=40, max_duration=80,
                     seed=1)
TIOUS = (0.3, 0.5, 0.7)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    paths = generate(tmp_path_factory.mktemp("planted"), SPEC)
    from tsrnet.data.format.ground_truth import load_annotations
    from tsrnet.data.format.store import FeatureStore

    return paths, FeatureStore(paths["untrimmed"]), load_annotations(paths["annotations"]).select("test")


def average_map(scores, classes, test, dcfg, localise=None) -> float:
    kw = {} if localise is None else {"localise": localise}
    res = detections(scores, classes, dcfg, **kw)
    ev, _ = evaluate_scores(scores, res, test, classes, dcfg, tious=TIOUS, **kw)
    return float(np.mean(ev.map))


@pytest.fixture(scope="module")
def floor(planted):
    paths, store, test = planted
    from tsrnet.data.format.ground_truth import load_annotations

    classes = load_annotations(paths["annotations"]).classes()
    return max(average_map(random_scores(store, test.video_ids(), len(classes), seed), classes, test, DetectConfig())
               for seed in range(3))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_beats_random_scores(name, planted, floor, tmp_path):
    paths, store, test = planted
    own = {f for f in method_class(name).Options.__dataclass_fields__}
    opts = {k: v for k, v in {"hidden_dim": 64, "attention_dim": 32}.items() if k in own}
    cfg = Config.for_method(name, opts, {"steps": 600, "pretrain_steps": 100, "checkpoint_seconds": 1e9})
    data = prepare_data(cfg, paths["untrimmed"], paths["annotations"], "train",
                        paths["trimmed"] if method_class(name).uses_trimmed else None)
    tr = Trainer(cfg, data, tmp_path / "run", progress=False)
    tr.fit()
    scores = score_store(tr.model, store, test.video_ids(), tr.device)
    got = average_map(scores, data.classes, test, cfg.detect, tr.model.method.evidence)
    # "Clearly above": three times the best of three random draws and 4 points more (mean mAP over tIoU
    # 0.3, 0.5, 0.7; random scores give about 2 here). 600 steps: at 300 no SRNet setting classified this set
    # above chance (top-1 15%), and its attention opens only as the class is recognised (--sparsity-confidence).
    assert got > max(3 * floor, floor + 0.04), (name, got, floor)
