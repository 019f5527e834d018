"""One diagnosis report for trained runs from anywhere (several compare-methods folders, single train-tsr runs).

``compare-methods --diagnose`` covers the runs of one comparison; this puts runs trained with different
settings (a shortened MGFN next to default-trained ones) side by side. Each run detects with the
localisation recorded in it, on the test subset less its training videos, as compare-methods scores it.

::

    python benchmarks/diagnose_runs.py --features th14s0/untrimmed.h5 --annotations th14s0/annotations.json \\
        --subset test --report report/ runs/cmp/two-stream runs/cmp/srnet runs/cmp-mgfn/mgfn
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tsrnet.data.format.ground_truth import load_annotations
from tsrnet.data.format.store import FeatureStore
from tsrnet.detect.diagnose_cli import print_diagnosis
from tsrnet.detect.diagnosis.diagnose import diagnose_runs, write_diagnosis
from tsrnet.train.scoring import score_run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--features", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("--subset", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    ann = load_annotations(args.annotations)
    store = FeatureStore(args.features)
    tested = {}
    for run in args.runs:
        scored = score_run(run, store, ann, args.subset, device="cpu")
        tested[run.name] = (scored.truth, scored.detections(scored.detect_config()))
    runs, truth = diagnose_runs(tested)
    print_diagnosis(runs, write_diagnosis(runs, truth, report_dir=args.report, title=args.title))


if __name__ == "__main__":
    main()
