"""Run W-TALC's main.py (the authors' code, from CODE) as `python main.py ARGS` would, with three
pieces of glue that leave its files as they are (the device edit is made by peerlib.py patch):

1. numpy.load defaults to allow_pickle=True, as numpy did before 1.16.3 (the authors used
   PyTorch 0.4.1-era numpy); W-TALC reads pickled object arrays with plain np.load. Under
   numpy 1.x, numpy._core is aliased to numpy.core so that numpy 2's pickles (this project's
   release) load.
2. --feature-size and --num-class are declared in options.py without type=, so a value given on
   the command line reaches nn.Linear as a string; they are set as parser defaults (ints) instead:
   the release's joint width 2 D and its class count.
3. Detections: W-TALC computes its proposals inside detectionMAP.getLocMAP and keeps none of them.
   filter_segments (which getLocMAP calls once per class with all of that class's proposals
   [video index, start row, end row, score], before dropping those that touch an Ambiguous span)
   is wrapped to record them; after each test() the record of the first getLocMAP call (all five
   IoU thresholds get the same proposals) is written to OUT/detections_itr<itr>.json. The
   Ambiguous filter itself is left to W-TALC (it affects only W-TALC's own printed mAP).

usage: wtalc_launch.py CODE OUT FEATURE_SIZE NUM_CLASS -- main.py-args...
(run from the working folder that holds Thumos14reduced-I3D-JOINTFeatures.npy and its annotations)
"""
import functools
import json
import os
import runpy
import sys

code, out, feature_size, num_class = sys.argv[1:5]
rest = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
sys.path.insert(0, code)

import torch  # noqa: E402,F401  (before the numpy._core alias below: torch probes numpy on import)
import numpy as np  # noqa: E402

_np_load = np.load
np.load = functools.partial(_np_load, allow_pickle=True)          # glue 1
if not hasattr(np, "_core"):
    # glue 1b: this project's release is pickled by numpy 2, whose pickles name numpy._core; the
    # peer venv's numpy 1.x (for the peers' removed aliases such as np.float) calls it numpy.core.
    import numpy.core.multiarray
    sys.modules.setdefault("numpy._core", numpy.core)
    sys.modules.setdefault("numpy._core.multiarray", numpy.core.multiarray)

import options  # noqa: E402  (the authors' module)

options.parser.set_defaults(feature_size=int(feature_size), num_class=int(num_class))   # glue 2

import detectionMAP  # noqa: E402  (the authors' module)

_state = {"recording": False, "calls": 0, "classes": {}, "itr": None}
_filter_segments = detectionMAP.filter_segments
_get_loc_map = detectionMAP.getLocMAP
_get_detection_map = detectionMAP.getDetectionMAP


def filter_segments(segment_predict, videonames, ambilist, factor):
    if _state["recording"]:
        caller = sys._getframe(1).f_locals            # getLocMAP's loop: c, classlist
        name = str(caller["classlist"][caller["c"]])
        rows = np.asarray(segment_predict).reshape(-1, 4) if len(segment_predict) else np.zeros((0, 4))
        _state["classes"][name] = [(str(videonames[int(i)]), int(s), int(e), float(sc)) for i, s, e, sc in rows]
    return _filter_segments(segment_predict, videonames, ambilist, factor)


def get_loc_map(predictions, th, annotation_path, args):
    _state["recording"] = _state["calls"] == 0
    _state["calls"] += 1
    try:
        return _get_loc_map(predictions, th, annotation_path, args)
    finally:
        _state["recording"] = False


def get_detection_map(predictions, annotation_path, args):
    _state.update(calls=0, classes={})
    result = _get_detection_map(predictions, annotation_path, args)
    dets: dict = {}
    for name, rows in _state["classes"].items():
        for vid, s, e, sc in rows:
            dets.setdefault(vid, []).append([name, s, e, sc])
    path = os.path.join(out, f"detections_itr{_state['itr']}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"itr": _state["itr"], "units": "rows [start, end)", "classes_done": list(_state["classes"]),
                   "w_talc_dmap": [float(x) for x in result[0]], "w_talc_iou": list(result[1]),
                   "detections": dets}, f)
    os.replace(path + ".tmp", path)
    return result


detectionMAP.filter_segments = filter_segments
detectionMAP.getLocMAP = get_loc_map
detectionMAP.getDetectionMAP = get_detection_map      # before test.py binds it as dmAP

import test as _test  # noqa: E402  (the authors' test.py: CODE is first on sys.path)

_run_test = _test.test


def test(itr, *a, **k):
    _state["itr"] = itr
    return _run_test(itr, *a, **k)


_test.test = test                                     # before main.py binds it

os.makedirs(out, exist_ok=True)
sys.argv = [os.path.join(code, "main.py")] + rest
runpy.run_path(sys.argv[0], run_name="__main__")
