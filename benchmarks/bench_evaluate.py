"""Evaluator speed: 200 videos x 20 classes x 20,000 predictions (the issue's target: under a second)."""
import time

import numpy as np
import pandas as pd

from tsrnet.detect.evaluate import THUMOS_TIOUS, evaluate_detections


def main(seed: int = 0, repeats: int = 5) -> None:
    rng = np.random.default_rng(seed)
    n_gt, n_pred = 3000, 20000
    gs = rng.uniform(0, 200, n_gt)
    gt = pd.DataFrame({"video-id": [f"v{v}" for v in rng.integers(0, 200, n_gt)],
                       "label": [f"c{c}" for c in rng.integers(0, 20, n_gt)], "t-start": gs,
                       "t-end": gs + rng.uniform(1, 10, n_gt)})
    ps = rng.uniform(0, 200, n_pred)
    pred = pd.DataFrame({"video-id": [f"v{v}" for v in rng.integers(0, 200, n_pred)],
                         "label": [f"c{c}" for c in rng.integers(0, 20, n_pred)], "score": rng.random(n_pred),
                         "t-start": ps, "t-end": ps + rng.uniform(1, 10, n_pred)})
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        evaluate_detections(gt, pred, THUMOS_TIOUS)
        times.append(time.perf_counter() - t)
    print(f"evaluate: {n_gt} GT, {n_pred} predictions, 20 classes, 200 videos, 9 tIoUs: "
          f"best {min(times):.3f} s, median {np.median(times):.3f} s")


if __name__ == "__main__":
    main()
