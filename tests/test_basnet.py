"""BaS-Net's own parts against hand-worked examples, its localisation through the shared post-processing, and a
tiny training that learns."""
import numpy as np
import pytest
import torch

from tsrnet.data.format.batching import Batch
from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.localize import VideoScores, detect_video
from tsrnet.detect.pipeline import score_store
from tsrnet.train.config import Config
from tsrnet.train.data import prepare_data
from tsrnet.train.methods.basnet import (KEY, BaSNet, BaSNetModel, BaSNetOptions, FilteringModule, branch_labels,
                                         branch_loss, l1_norm, video_scores)
from tsrnet.train.trainer import Trainer


def test_video_score_is_the_mean_of_the_top_t_over_r_rows():
    # Video 0: 16 real rows, r = 8 -> k = 2. Video 1: 9 real rows (k = 1), padded with rows that would win.
    cas = torch.zeros(2, 16, 2)
    cas[0, :, 0] = torch.arange(16.0)  # top 2: 15, 14
    cas[0, :, 1] = torch.tensor([3.0, -1, 7, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])  # top 2: 7, 5
    cas[1, :9, 0] = torch.tensor([1.0, 4, 2, 0, 0, 0, 0, 0, -3])
    cas[1, :9, 1] = -1.0
    cas[1, 9:] = 99.0
    mask = torch.tensor([[True] * 16, [True] * 9 + [False] * 7])
    torch.testing.assert_close(video_scores(cas, mask, 8), torch.tensor([[14.5, 6.0], [4.0, -1.0]]))
    # r = 4: k = 4 and 2.
    torch.testing.assert_close(video_scores(cas, mask, 4), torch.tensor([[13.5, (7 + 5 + 3 + 2) / 4],
                                                                         [3.0, -1.0]]))
    # Fewer rows than r: k = 1, the maximum.
    short = torch.tensor([[True] * 5 + [False] * 11, [True] * 9 + [False] * 7])
    torch.testing.assert_close(video_scores(cas, short, 8)[0], torch.tensor([4.0, 7.0]))


def test_branch_labels_background_1_in_the_base_branch_and_0_in_the_suppression_branch():
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    base, supp = branch_labels(targets)
    torch.testing.assert_close(base, torch.tensor([[1 / 3, 0, 1 / 3, 1 / 3], [0, 0.5, 0, 0.5], [0, 0, 0, 1.0]]))
    torch.testing.assert_close(supp, torch.tensor([[0.5, 0, 0.5, 0], [0, 1.0, 0, 0], [0, 0, 0, 0.0]]))


def test_branch_losses_hand_worked():
    scores = torch.log(torch.tensor([[1.0, 1.0, 2.0]]))  # softmax: 0.25, 0.25, 0.5
    label = torch.tensor([[0.5, 0.0, 0.5]])
    # The paper's cross-entropy: -(0.5 log 0.25 + 0.5 log 0.5).
    assert float(branch_loss(scores, label, "ce")) == pytest.approx(-(0.5 * np.log(0.25) + 0.5 * np.log(0.5)))
    # The code's BCELoss on the softmax, averaged over the 3 classes.
    bce = (-(0.5 * np.log(0.25) + 0.5 * np.log(0.75)) - np.log(0.75) - np.log(0.5)) / 3
    assert float(branch_loss(scores, label, "bce")) == pytest.approx(bce)


def test_filter_weights_lie_in_0_1_and_are_0_beyond_the_video():
    torch.manual_seed(0)
    f = FilteringModule(6, 5, 3)
    x = 50 * torch.randn(2, 9, 6)  # large inputs saturate the sigmoid at both ends
    mask = torch.tensor([[True] * 9, [True] * 4 + [False] * 5])
    w = f(x, mask)
    assert w.shape == (2, 9) and (w >= 0).all() and (w <= 1).all()
    assert (w[1, 4:] == 0).all() and (w[0] > 0).any()
    # A video's weights do not depend on what pads it, nor on the rows of the video next to it.
    torch.testing.assert_close(f(x[1:, :4], mask[1:, :4]), w[1:, :4])


def test_l1_term_is_the_mean_weight_times_its_weight():
    w = torch.tensor([[0.2, 0.4, 0.6, 0.9], [1.0, 0.0, 0.5, 0.5]])
    mask = torch.tensor([[True, True, True, False], [True] * 4])
    assert float(l1_norm(w, mask)) == pytest.approx((0.4 + 0.5) / 2)  # (0.2+0.4+0.6)/3, (1+0+0.5+0.5)/4

    # In the loss: total = L_base + L_supp + norm_weight x the mean foreground weight over the real rows.
    torch.manual_seed(0)
    unit = BaSNet(BaSNetOptions(hidden_dim=8, filter_dim=4, norm_weight=0.3))
    model = unit.module(("rgb", "flow"), 3, ["a", "b"]).eval()
    x = {"rgb": torch.randn(2, 10, 3), "flow": torch.randn(2, 10, 3)}
    mask = torch.tensor([[True] * 10, [True] * 6 + [False] * 4])
    for s in x:
        x[s][1, 6:] = 0.0
    batch = Batch(x, mask, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), ["u", "v"], [None, None])
    total, parts = unit.loss(model, batch, "main")
    with torch.no_grad():
        weights = model(x, mask)["weights"]
    mean_weight = (weights[0, :10].mean() + weights[1, :6].mean()) / 2
    assert float(parts["norm"]) == pytest.approx(float(mean_weight), rel=1e-6)
    assert float(total.detach()) == pytest.approx(float(parts["class_base"] + parts["class_supp"] + 0.3 * mean_weight),
                                         rel=1e-6)


def test_a_video_scores_the_same_alone_and_padded_in_a_batch():
    """The temporal convolutions read zeros beyond a video's last row, whatever pads it in the batch."""
    torch.manual_seed(0)
    model = BaSNetModel(("rgb",), 4, ["a", "b", "c"], BaSNetOptions(hidden_dim=6, filter_kernel=3)).eval()
    long, short = torch.randn(1, 8, 4), torch.randn(1, 5, 4)
    both = torch.cat([long, torch.cat([short, 7 + torch.zeros(1, 3, 4)], dim=1)])  # junk after the short video
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    alone = model({"rgb": short}, torch.ones(1, 5, dtype=torch.bool))
    batched = model({"rgb": both}, mask)
    for k in ("cas_base", "cas_supp", "weights"):
        torch.testing.assert_close(batched[k][1, :5], alone[k][0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batched["video_supp"][1], alone["video_supp"][0], atol=1e-6, rtol=1e-5)
    s = model.score({"rgb": both}, mask)
    assert s["rows"][KEY]["cas"].shape == (2, 8, 3) and s["video_prob"][KEY].shape == (2, 3)
    assert (s["video_prob"][KEY].sum(dim=1) < 1).all()  # the background class takes the rest


def basnet_video(cas, video_prob):
    cas = np.asarray(cas, float)
    t = np.arange(len(cas)) + 0.5
    rows = {KEY: {"cas": cas, "cas_base": cas, "attention": np.ones(len(cas))}}
    return VideoScores("v", t, float(len(cas)), rows, {KEY: np.asarray(video_prob, float)})


def test_localisation_with_the_defaults_hand_worked():
    # Class a: logits with one action on rows 2-4; min-max: 0 outside, 0.6, 1, 0.6 inside. Threshold 0 takes
    # every row (the whole video, which has no outer area: contrast = its mean, 2.2 / 8); 0.025 ... 0.225 take
    # rows 2-4: [2, 5), contrast 2.2 / 3 - 0 (one row each side, a quarter of 3 rounded). Each + 0.2 x 0.8.
    # Their tIoU, 3 / 8, is under NMS's 0.7: both stay.
    a = [-1, -1, 2, 4, 2, -1, -1, -1]
    b = [-1, -1, -1, -1, -1, -1, 3, -1]  # class b: one row; video score 0.2 < 0.25, and not the best: dropped
    cas = np.stack([a, b], axis=1)
    unit = BaSNet()
    cfg = unit.detect_config()
    assert cfg.threshold == pytest.approx(list(np.arange(0, 0.25, 0.025)))
    dets = detect_video(basnet_video(cas, [0.8, 0.2]), ["a", "b"], cfg, unit.evidence)
    assert [(d["label"], d["segment"]) for d in dets] == [("a", [2.0, 5.0]), ("a", [0.0, 8.0])]
    assert [d["score"] for d in dets] == pytest.approx([2.2 / 3 + 0.16, 2.2 / 8 + 0.16], abs=1e-6)
    # Class b at 0.3 is kept: its one-row run (min_rows 1) has contrast 1 - 0 (outer rows 5 and 7).
    dets = detect_video(basnet_video(cas, [0.8, 0.3]), ["a", "b"], cfg, unit.evidence)
    b_dets = {tuple(d["segment"]): d["score"] for d in dets if d["label"] == "b"}
    assert b_dets == {(6.0, 7.0): pytest.approx(1 + 0.06, abs=1e-6), (0.0, 8.0): pytest.approx(1 / 8 + 0.06, abs=1e-6)}


def test_localisation_with_the_codes_clamped_scale_hand_worked():
    # --scale clamped (the authors' code): class a's logits divided by their maximum, so the rows at -1 sit at
    # -0.25 and no threshold >= 0 takes them: one proposal [2, 5), contrast 2 / 3 + 0.25, scored on that scale.
    a = [-1, -1, 2, 4, 2, -1, -1, -1]
    cas = np.stack([a, [-1.0] * 8], axis=1)
    unit = BaSNet()
    cfg = unit.detect_config(scale="clamped")
    dets = detect_video(basnet_video(cas, [0.8, 0.1]), ["a", "b"], cfg, unit.evidence)
    assert [(d["label"], d["segment"]) for d in dets] == [("a", [2.0, 5.0])]
    assert dets[0]["score"] == pytest.approx(2 / 3 + 0.25 + 0.2 * 0.8, abs=1e-6)
    # A class whose logits are nowhere positive passes no threshold there, however high its video score.
    dets = detect_video(basnet_video(cas, [0.8, 0.8]), ["a", "b"], cfg, unit.evidence)
    assert [d["label"] for d in dets] == ["a"]


def test_a_tiny_training_learns(tiny, tmp_path):
    """On the tiny planted set: the test videos are classified far above chance (4 classes), and the filter's
    foreground weights are higher on the ground truth's action rows than on the rest."""
    cfg = Config.for_method("basnet", {"hidden_dim": 32, "filter_dim": 16},
                            {"steps": 150, "checkpoint_seconds": 1e9, "seed": 0})
    data = prepare_data(cfg, tiny["untrimmed"], tiny["annotations"], "train")
    tr = Trainer(cfg, data, tmp_path / "run", progress=False)
    tr.fit()
    store = FeatureStore(tiny["untrimmed"])
    ann = load_annotations(tiny["annotations"]).select("test")
    classes = data.classes
    right, on, off = 0, [], []
    for vs in score_store(tr.model, store, ann.video_ids(), "cpu"):
        a = ann[vs.video_id]
        right += classes[int(vs.video_prob[KEY].argmax())] in a.labels
        inside = np.zeros(len(vs.times), dtype=bool)
        for s in a.segments:
            inside |= (vs.times >= s.start) & (vs.times < s.end)
        w = vs.rows[KEY]["attention"]
        on += list(w[inside])
        off += list(w[~inside])
    assert right / len(ann.video_ids()) >= 0.75, right
    # After 120 steps: 0.88 against 0.74 (seed 0), 0.76 against 0.64 (seed 1); it widens with training.
    assert np.mean(on) > np.mean(off) + 0.05, (np.mean(on), np.mean(off))
