"""Glue between this project's W-TALC feature releases and public WTAL implementations.

Nothing here is the peers' code: it reads a release that ``make-synthetic-features --release
wtalc`` wrote, lays it out the way a peer's code reads it, edits the device and data-size lines
of a *copy* of the peer's code, turns the peer's detections into this project's detections JSON
(docs/formats.md section 3) and scores them with ``evaluate``.

Subcommands (run with this project's venv; numpy, and h5py for the exact row rate):

  info RELEASE                         what the glue reads off a release (JSON)
  basnet-data RELEASE DATA             features/{train,test}/{rgb,flow}/*.npy, split_*.txt, gt.json
  wtalc-data RELEASE WORK              WORK/Thumos14reduced-{I3D-JOINTFeatures.npy,Annotations/}
  patch CODE PEER RELEASE [--cpu]      the device / feature-size / class-list edits (listed below)
  convert PEER PEER_OUTPUT RELEASE OUT.json
  score RELEASE DETECTIONS.json --peer P --commit C --seed S [--label K=V ...]

Time base: the peers assume rows of 16 frames at 25 fps (row k starts at 16 k / 25 s) and turn
rows a..b into [16 a / 25, 16 (b + 1) / 25]. A family's rows come at ``rows_per_second`` (25/16
for th14-i3d, th14-tsn-scene, th14-weak; 1 or 2 for th14-runup and the ActivityNet presets).
The glue gives a peer every time in its own base, t_peer = t * rps * 16 / 25 (so its internal
evaluation and model selection see consistent numbers), and maps its detections back,
t = t_peer * 25 / 16 / rps; for the th14 families at 25/16 rows/s both are the identity.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

MAIN = Path(__file__).resolve().parents[2]
EVALUATE = os.environ.get("EVALUATE", str(MAIN / ".venv" / "bin" / "evaluate"))
PEER_RATE = 25.0 / 16.0          # rows per second every peer assumes (16-frame rows at 25 fps)
TIOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
# BaS-Net's config.class_dict is THUMOS14's 20 classes in this order (the W-TALC classlist).
THUMOS20 = ["BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
            "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow",
            "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput", "SoccerPenalty",
            "TennisSwing", "ThrowDiscus", "VolleyballSpiking"]


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class Release:
    """A W-TALC release folder: <Dataset>-I3D-JOINTFeatures.npy and <Dataset>-Annotations/."""

    def __init__(self, path):
        self.path = Path(path).resolve()
        feats = sorted(self.path.glob("*-I3D-JOINTFeatures.npy"))
        if len(feats) != 1:
            sys.exit(f"error: {self.path}: expected one *-I3D-JOINTFeatures.npy, found {len(feats)}")
        self.features_path = feats[0]
        self.dataset = feats[0].name[: -len("-I3D-JOINTFeatures.npy")]
        self.ann_dir = self.path / f"{self.dataset}-Annotations"
        a = {n: np.load(self.ann_dir / f"{n}.npy", allow_pickle=True, encoding="bytes")
             for n in ("videoname", "subset", "duration", "labels", "segments", "classlist")}
        self.videos = [_text(v) for v in a["videoname"]]
        self.subsets = [_text(s) for s in a["subset"]]
        self.durations = [float(d) for d in np.ravel(a["duration"])]
        self.labels = [[_text(x) for x in row] for row in a["labels"]]
        self.segments = [[[float(s), float(e)] for s, e in row] for row in a["segments"]]
        self.classes = [_text(c) for c in a["classlist"]]
        la = self.ann_dir / "labels_all.npy"
        self.labels_all = ([[_text(x) for x in row] for row in np.load(la, allow_pickle=True, encoding="bytes")]
                           if la.exists() else [sorted(set(l)) for l in self.labels])
        present = set(self.subsets)
        if "test" in present:
            self.train_subset, self.test_subset = "validation", "test"      # THUMOS14 layout
        elif present <= {"training", "validation"}:
            self.train_subset, self.test_subset = "training", "validation"  # ActivityNet layout
        else:
            sys.exit(f"error: {self.ann_dir}: subsets {sorted(present)}: neither THUMOS14's nor ActivityNet's")
        self.family_dir = self.path.parent
        self.annotations_json = self.family_dir / "annotations.json"
        self.family = self.family_dir.name
        self._feats = None
        self.rate = self._rows_per_second()
        self.to_peer = self.rate / PEER_RATE      # seconds -> the peer's seconds

    def features(self):
        if self._feats is None:
            self._feats = np.load(self.features_path, allow_pickle=True, encoding="bytes")
            if len(self._feats) != len(self.videos):
                sys.exit(f"error: {self.features_path}: {len(self._feats)} entries, {len(self.videos)} videos")
        return self._feats

    @property
    def dim(self) -> int:
        """Width of the joint (RGB then flow) rows, 2 D."""
        return int(self.features()[0].shape[1])

    def _rows_per_second(self) -> float:
        h5 = self.family_dir / "untrimmed.h5"
        if h5.exists():
            try:
                import h5py
                with h5py.File(h5, "r") as f:
                    if "rows_per_second" in f.attrs:
                        return float(f.attrs["rows_per_second"])
            except ImportError:
                pass
        ratios = [len(x) / d for x, d in zip(self.features(), self.durations) if d > 0]
        return float(np.median(ratios))

    def info(self) -> dict:
        return {"release": str(self.path), "dataset": self.dataset, "family": self.family,
                "rows_per_second": self.rate, "to_peer_time": self.to_peer, "joint_dim": self.dim,
                "n_classes": len(self.classes), "thumos20_classes": self.classes == THUMOS20,
                "train_subset": self.train_subset, "test_subset": self.test_subset,
                "n_train": self.subsets.count(self.train_subset),
                "n_test": self.subsets.count(self.test_subset),
                "annotations_json": str(self.annotations_json)}


def _atomic_json(obj, path: Path):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.replace(path)


def basnet_data(rel: Release, out: Path):
    """BaS-Net's THUMOS14 layout. Subsets: train = the release's training subset, test = its test
    subset; gt.json's subset is 'validation' / 'test' as in BaS-Net's own file (its evaluator
    scores subset 'test'); times are in the peer's base."""
    feats = rel.features()
    d = rel.dim // 2
    split = {"train": [], "test": []}
    db = {}
    f = rel.to_peer
    for i, vid in enumerate(rel.videos):
        mode = "train" if rel.subsets[i] == rel.train_subset else "test"
        split[mode].append(vid)
        x = np.asarray(feats[i], dtype=np.float32)
        for k, stream in enumerate(("rgb", "flow")):
            p = out / "features" / mode / stream
            p.mkdir(parents=True, exist_ok=True)
            np.save(p / f"{vid}.npy", x[:, k * d:(k + 1) * d])
        db[vid] = {"subset": "validation" if mode == "train" else "test",
                   "duration": rel.durations[i] * f,
                   "annotations": [{"label": l, "segment": [s * f, e * f]}
                                   for l, (s, e) in zip(rel.labels[i], rel.segments[i])]}
    # BaS-Net's evaluator (eval/eval_detection.py) indexes every detection's label in the classes
    # of the test ground truth and stops with a KeyError on a class that has no test instance
    # (small or ActivityNet-like sets). Such a class gets one placeholder instance on a video id
    # that has no features: its AP is 0, which scales BaS-Net's own average mAP by a constant and
    # leaves its choice of checkpoint unchanged. The score printed by the scripts comes from this
    # project's evaluate on the family's annotations.json, which has no placeholder.
    in_test = {c for labs, s in zip(rel.labels, rel.subsets) if s == rel.test_subset for c in labs}
    for c in rel.classes:
        if c not in in_test:
            db[f"tsrnet_peers_placeholder_{len(db)}"] = {
                "subset": "test", "duration": 1.0, "annotations": [{"label": c, "segment": [0.0, 1.0]}]}
    for mode, vids in split.items():
        (out / f"split_{mode}.txt").write_text("".join(v + "\n" for v in vids))
    _atomic_json({"version": "tsrnet-peers", "database": db}, out / "gt.json")


def _objects(rows):
    a = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        a[i] = r
    return a


def wtalc_data(rel: Release, work: Path):
    """W-TALC reads '<Dataset>-I3D-JOINTFeatures.npy' and '<Dataset>-Annotations/' from its working
    directory. The features are linked; the annotation folder is rewritten:
    - labels, labels_all as str (the original release is a Python 2 pickle whose strings numpy
      reads as str; releases written before dbec6be stored bytes, which W-TALC's 'label == name' misses);
    - subsets 'validation' (train) / 'test' (W-TALC trains on 'validation', tests on the rest);
    - classlist: the classes some video is labelled with;
    - segments, durations and Ambiguous_test.txt in the peer's time base."""
    work.mkdir(parents=True, exist_ok=True)
    link = work / "Thumos14reduced-I3D-JOINTFeatures.npy"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(rel.features_path)
    ann = work / "Thumos14reduced-Annotations"
    ann.mkdir(exist_ok=True)
    f = rel.to_peer
    sub = ["validation" if s == rel.train_subset else "test" for s in rel.subsets]
    # The class list: the release's classes that some video is labelled with (a release made with
    # --n-layout-classes keeps THUMOS14's whole list). W-TALC draws a class and two training videos
    # of it for every batch, and maps every video's labels to the list, so each class must have a
    # training video: a class with none stops here rather than inside W-TALC's sampler.
    used = {c for labs in rel.labels_all for c in labs} | {c for labs in rel.labels for c in labs}
    classes = [c for c in rel.classes if c in used]
    trained = {c for labs, s in zip(rel.labels_all, sub) if s == "validation" for c in labs}
    missing = [c for c in classes if c not in trained]
    if missing:
        sys.exit(f"error: {rel.ann_dir}: W-TALC needs a training video of every class; none of "
                 f"{', '.join(missing)} (use a family with more videos)")
    arrays = {
        "videoname": np.array([v.encode() for v in rel.videos]),
        "subset": np.array([s.encode() for s in sub]),
        "duration": np.array([[d * f] for d in rel.durations]),
        "labels": _objects([list(l) for l in rel.labels]),
        "labels_all": _objects([list(l) for l in rel.labels_all]),
        "segments": _objects([[[s * f, e * f] for s, e in row] for row in rel.segments]),
        "classlist": np.array([c.encode() for c in classes]),
    }
    for name, a in arrays.items():
        np.save(ann / f"{name}.npy", a, allow_pickle=True)
    lines = []
    amb = rel.ann_dir / "Ambiguous_test.txt"
    if amb.exists():
        for line in amb.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                # W-TALC splits on single spaces and reads fields 0, 2, 3 (the release's own form)
                lines.append(f"{parts[0]}  {float(parts[-2]) * f:.2f} {float(parts[-1]) * f:.2f}\n")
    (ann / "Ambiguous_test.txt").write_text("".join(lines))
    return len(classes)


# --- code edits -------------------------------------------------------------------------------
# Each edit is (file, old, new, expected count); a count that differs stops the run, so an edit
# never silently misses on another commit.

def _edit(code: Path, name: str, old: str, new: str, count: int | None, done: list):
    p = code / name
    s = p.read_text()
    n = s.count(old)
    if count is not None and n != count:
        sys.exit(f"error: {p}: expected {count} of {old!r}, found {n}: the edits were written for another commit")
    if n:
        p.write_text(s.replace(old, new))
        done.append(f"{name}: {old!r} -> {new!r} (x{n})")


def patch_basnet(code: Path, rel: Release, cpu: bool, test_every: int = 1) -> list[str]:
    done: list[str] = []
    if test_every > 1:   # test cost: main.py tests after every iteration, most of a CPU run's time. Only
        # when it tests changes; each test's DataLoader takes one draw of torch's random state (its base seed),
        # so the training's later draws (sampling, dropout) differ from an every-iteration run's: the same
        # training, other random numbers. best-test chooses among the tested iterations only.
        t = "        test(net, config, logger, test_loader, test_info, step)\n"
        _edit(code, "main.py", t, f"        if step % {test_every} and step != config.num_iters:"
              "  # tsrnet peers glue: test every N iterations\n            continue\n" + t, 1, done)
    if cpu:   # device: run on the CPU
        for name, n in (("main.py", 1), ("main_eval.py", 1), ("train.py", 4), ("test.py", 2)):
            _edit(code, name, ".cuda()", "", n, done)
    d = rel.dim
    if d != 2048:   # feature size (config.py hard-codes two-stream I3D: 2048, 1024 per stream)
        _edit(code, "config.py", "self.len_feature = 2048", f"self.len_feature = {d}", 1, done)
        _edit(code, "config.py", "self.len_feature = 1024", f"self.len_feature = {d // 2}", 1, done)
    if rel.classes != THUMOS20:   # class list (config.py hard-codes THUMOS14's 20 classes)
        _edit(code, "config.py", "self.num_classes = 20", f"self.num_classes = {len(rel.classes)}", 1, done)
        p = code / "config.py"
        p.write_text(p.read_text() + "\n\n# tsrnet peers glue: this family's class list\nclass_dict = "
                     + repr(dict(enumerate(rel.classes))) + "\n")
        done.append(f"config.py: class_dict replaced by the release's {len(rel.classes)} classes")
    return done


def patch_wtalc(code: Path, rel: Release, cpu: bool) -> list[str]:
    done: list[str] = []
    if cpu:   # device: run on the CPU
        for name, n in (("main.py", 1), ("model.py", 1), ("train.py", 1), ("test.py", 1)):
            _edit(code, name, "torch.set_default_tensor_type('torch.cuda.FloatTensor')",
                  "torch.set_default_tensor_type('torch.FloatTensor')", n, done)
        _edit(code, "main.py", 'torch.device("cuda")', 'torch.device("cpu")', 1, done)
    # feature size and class count: options.py declares them without type=, so they are given as
    # parser defaults by wtalc_launch.py (ints), not edited here.
    return done


# --- detections -------------------------------------------------------------------------------

def convert(peer: str, src: Path, rel: Release, out: Path):
    back = 1.0 / rel.to_peer
    results: dict[str, list] = {}
    if peer == "basnet":
        # BaS-Net's test() writes ActivityNet results JSON, times in its base.
        doc = json.loads(src.read_text())
        for vid, dets in doc["results"].items():
            results[vid] = [{"label": d["label"], "score": float(d["score"]),
                             "segment": [float(d["segment"][0]) * back, float(d["segment"][1]) * back]}
                            for d in dets]
    elif peer == "wtalc":
        # wtalc_launch.py's record of getLocMAP's per-class proposals: rows [start, end) of a video.
        doc = json.loads(src.read_text())
        for vid, dets in doc["detections"].items():
            results[vid] = [{"label": c, "score": float(sc), "segment": [s / rel.rate, e / rel.rate]}
                            for c, s, e, sc in dets]
    else:
        sys.exit(f"error: unknown peer {peer}")
    _atomic_json({"version": "tsrnet-0.1", "external_data": {}, "results": results,
                  "run": f"peer:{peer}:{src}"}, out)
    n = sum(len(v) for v in results.values())
    print(f"converted {n} detections on {len(results)} videos from {src}", file=sys.stderr)


def score(rel: Release, dets: Path, peer: str, commit: str, seed: str, labels: list[str]) -> str:
    js = dets.with_suffix(".eval.json")
    cmd = [EVALUATE, str(rel.annotations_json), str(dets), "--subset", rel.test_subset,
           "--json", str(js), "--no-per-class"]
    for t in TIOUS:
        cmd += ["--tiou", str(t)]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    r = json.loads(js.read_text())
    maps = [100 * r["mAP"][f"{t:.2f}"] for t in TIOUS]
    extra = "".join(f" {kv}" for kv in labels)
    return (f"peer={peer} commit={commit[:12]} family={rel.family} seed={seed}{extra} "
            + " ".join(f"mAP@{t:.1f}={m:.2f}" for t, m in zip(TIOUS, maps))
            + f" avg0.1:0.7={np.mean(maps):.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("info"); p.add_argument("release")
    p.add_argument("--key", help="print only this key")
    p = sp.add_parser("basnet-data"); p.add_argument("release"); p.add_argument("out")
    p = sp.add_parser("wtalc-data"); p.add_argument("release"); p.add_argument("out")
    p = sp.add_parser("patch"); p.add_argument("code"); p.add_argument("peer", choices=["basnet", "wtalc"])
    p.add_argument("release")
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--test-every", type=int, default=1, help="BaS-Net: test every N iterations and at the last")
    p = sp.add_parser("convert"); p.add_argument("peer"); p.add_argument("src"); p.add_argument("release")
    p.add_argument("out")
    p = sp.add_parser("score"); p.add_argument("release"); p.add_argument("detections")
    p.add_argument("--peer", required=True); p.add_argument("--commit", required=True)
    p.add_argument("--seed", required=True); p.add_argument("--label", action="append", default=[])
    a = ap.parse_args(argv)
    rel = Release(a.release)
    if a.cmd == "info":
        i = rel.info()
        print(json.dumps(i[a.key]) if a.key else json.dumps(i, indent=1))
    elif a.cmd == "basnet-data":
        basnet_data(rel, Path(a.out))
    elif a.cmd == "wtalc-data":
        print(wtalc_data(rel, Path(a.out)))      # the class count W-TALC is given
    elif a.cmd == "patch":
        if a.peer == "basnet":
            edits = patch_basnet(Path(a.code), rel, a.cpu, a.test_every)
        elif a.test_every != 1:
            sys.exit("error: --test-every is BaS-Net's glue; W-TALC tests every 500 iterations already")
        else:
            edits = patch_wtalc(Path(a.code), rel, a.cpu)
        for line in edits or ["(no edits)"]:
            print(f"glue edit: {line}", file=sys.stderr)
    elif a.cmd == "convert":
        convert(a.peer, Path(a.src), rel, Path(a.out))
    elif a.cmd == "score":
        print(score(rel, Path(a.detections), a.peer, a.commit, a.seed, a.label))


if __name__ == "__main__":
    main()
