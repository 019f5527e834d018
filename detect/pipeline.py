"""Detection over a whole store: the one path shared by ``detect``, ``compare-methods`` and the tests."""
from __future__ import annotations

import numpy as np
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from data.annotations import Annotations, detections_frame
from data.batching import VideoDataset, collate
from data.store import FeatureStore
from train.config import DetectConfig

from .evaluate import THUMOS_TIOUS, DetectionResult, classification_metrics, evaluate_detections
from .localize import VideoScores, detect_video, score_videos


def score_store(model, store: FeatureStore, ids: list[str], device, batch_size: int = 4,
                progress: bool = False) -> list[VideoScores]:
    """Per-row and video scores of ``ids``, every row of each video (no subsampling)."""
    ds = VideoDataset(store, ids, np.zeros((len(ids), len(model.classes)), np.float32), model.streams)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
    durations = {v: store.info(v).duration for v in ids}
    it = tqdm(loader, desc="detect", unit="batch", disable=not progress, leave=False)
    return score_videos(model, it, durations, device)


def detections(scores: list[VideoScores], classes: list[str], cfg: DetectConfig) -> dict:
    """ActivityNet ``results`` mapping: video id -> list of detections."""
    return {vs.video_id: detect_video(vs, classes, cfg) for vs in scores}


def video_level(scores: list[VideoScores], theta: float) -> np.ndarray:
    """Fused video-level class scores (V, C), in the order of ``scores``."""
    return np.stack([vs.fused_video_prob(theta) for vs in scores])


def evaluate_scores(scores: list[VideoScores], results: dict, ann: Annotations, classes: list[str], theta: float,
                    tious=THUMOS_TIOUS) -> tuple[DetectionResult, dict]:
    """Detection mAP of ``results`` and video-level classification metrics of ``scores`` against ``ann``."""
    ev = evaluate_detections(ann.ground_truth_frame(), detections_frame(results), tious)
    y = np.array([[c in ann[vs.video_id].labels for c in classes] for vs in scores], dtype=float)
    return ev, classification_metrics(video_level(scores, theta), y, classes)
