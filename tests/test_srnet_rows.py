"""Eq. (10)'s row class probability of the TSRNet family: a row is classified at the scale of the pooled features
the classifier was trained on (``row_input="mass"``), so attention pooling does not make row scores worse than
mean pooling's (docs/studies/defaults.md, issue 31)."""
import dataclasses

import numpy as np
import pytest
import torch

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.data.generators.synthetic import SyntheticSpec, generate
from tsrnet.detect.pipeline import score_store
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.methods import method_class
from tsrnet.train.rundir import load_run
from tsrnet.train.trainer import Trainer


def model(name, **options):
    cls = method_class(name)
    small = {"hidden_dim": 16} if name == "two-stream" else {"hidden_dim": 16, "attention_dim": 8}
    opts = dataclasses.replace(cls.Options(), **small, **options)
    torch.manual_seed(0)
    net = cls(opts).module(("rgb", "flow"), 6, ["a", "b", "c"])
    return net.eval()


def repeated_row_video(n=9):
    """Two videos, each one row repeated (the second padded): what a row "stands for" in Eq. (10)."""
    torch.manual_seed(1)
    row = torch.rand(2, 1, 6) * 4
    x = row.expand(2, n, 6).clone()
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 6:] = False
    return {"rgb": x, "flow": x.flip(-1)}, mask


@pytest.mark.parametrize("options", [{}, {"attention_hops": 2}, {"attention": "softmax"}])
def test_a_video_of_one_repeated_row_gets_its_rows_probability(options):
    # With a = g / n the pooled feature of such a video is (mean gate) x row, not the row: a row given to the
    # classifier as it is lies outside what it was trained on. With row_input "mass" every row's class
    # probability is the probability of the video made of it.
    net = model("srnet", **options)
    x, mask = repeated_row_video()
    out = net.score(x, mask)
    for s in ("rgb", "flow"):
        rows, video = out["rows"][s]["class_prob"], out["video_prob"][s]  # (B, T, C), (B, C)
        for b, n in enumerate(mask.sum(dim=1).tolist()):
            torch.testing.assert_close(rows[b, :n], video[b].expand(n, -1))


def test_the_row_as_it_is_differs_from_its_video_where_gates_are_below_one():
    net = model("srnet", row_input="row")
    x, mask = repeated_row_video()
    out = net.score(x, mask)
    assert (out["rows"]["rgb"]["class_prob"][0] - out["video_prob"]["rgb"][0]).abs().max() > 1e-3


def test_mean_pooling_is_unchanged():
    # Two-Stream's mass is 1: its row score is the classifier on the row, as before.
    net = model("two-stream")
    x, mask = repeated_row_video()
    x["rgb"][0, 3] += 1.0  # rows that differ
    out = net.score(x, mask)
    expect = torch.sigmoid(net.nets["rgb"].classifier(x["rgb"])[0])
    torch.testing.assert_close(out["rows"]["rgb"]["class_prob"], expect)


def fused_frame_ap(scores, net, dcfg, truth) -> float:
    """Frame AP of the fused row score the method's localisation thresholds (``evidence(...).shown``), over every
    row of the scored videos, against the rows ``truth``'s segments cover."""
    rows, labels = [], []
    for vs in scores:
        y = np.zeros((len(vs.times), len(net.classes)), bool)
        for seg in truth[vs.video_id].segments:
            y[(vs.times >= seg.start) & (vs.times <= seg.end), net.classes.index(seg.label)] = True
        rows.append(net.method.evidence(vs, dcfg).shown)
        labels.append(y)
    return frame_ap(np.concatenate(rows), np.concatenate(labels))


def frame_ap(scores, labels):
    """Mean over classes of the average precision of ranking every row by its score (labels: rows of the class)."""
    aps = []
    for c in range(labels.shape[1]):
        y = labels[np.argsort(-scores[:, c], kind="stable"), c]
        if y.any():
            hits = np.cumsum(y)
            aps.append(float((hits / np.arange(1, len(y) + 1))[y].mean()))
    return float(np.mean(aps))


def test_on_a_small_planted_set_srnets_row_scores_rank_at_least_as_well_as_mean_poolings(tmp_path):
    # The property of issue 31: attention is never worse than mean pooling. Measured on the rows themselves (the
    # fused score every localisation thresholds), ranked against the planted action rows of the test videos: a
    # row score that ranks worse cannot localise better. Before row_input "mass", SRNet's rows were classified
    # several times outside the scale it was trained on; on this set that cost it 3.6 points of frame AP
    # (37.7 against 41.3; mean pooling 36.5), and on the benchmark family it fell below mean pooling.
    spec = SyntheticSpec(n_classes=4, dim=32, n_train=40, n_test=20, n_trimmed=0, min_duration=40, max_duration=120,
                         seed=1)
    paths = generate(tmp_path / "set", spec)
    store, ann = FeatureStore(paths["untrimmed"]), load_annotations(paths["annotations"])
    test = ann.select("test")
    got = {}
    for name in ("two-stream", "srnet"):
        cfg = Config.for_method(name, {}, {"steps": 150, "seed": 1, "checkpoint_seconds": 0})
        data = prepare_data(cfg, paths["untrimmed"], paths["annotations"], "train", None)
        Trainer(cfg, data, tmp_path / name, progress=False).fit()
        net, run_cfg, _ = load_run(tmp_path / name, "cpu")
        for mode in (("row", "mass") if name == "srnet" else ("row",)):
            for stream in net.nets.values():
                stream.row_input = mode
            scores = score_store(net, store, test.video_ids(), torch.device("cpu"))
            got[f"{name}/{mode}"] = fused_frame_ap(scores, net, run_cfg.detect, test)
    assert got["srnet/mass"] >= got["two-stream/row"], got
    assert got["srnet/mass"] >= got["srnet/row"], got
