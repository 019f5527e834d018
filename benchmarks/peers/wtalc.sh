#!/usr/bin/env bash
# W-TALC (Paul et al., ECCV 2018), the authors' PyTorch code, as a referee on a W-TALC release of
# this project's synthetic families. Not run by CI. See README.md beside this file.
#
#   wtalc.sh CLONE RELEASE OUT [SEED [ITERS]]
#
# CLONE    a git clone of github.com/sujoyp/wtalc-pytorch (tested: 81ea98264a84)
# RELEASE  FAMILY/release, from make-synthetic-features FAMILY --preset P --release wtalc
# OUT      output folder (made; code/ and work/ are remade)
# SEED     --seed (default 1, the authors' default)
# ITERS    --max-iter (default: the authors' 100000). main.py tests every 500 iterations
#          (itr % 500 == 0, itr > 0): give at least 501; e.g. 501 for a smoke test
#
# What it does:
#  1. exports the clone's HEAD (git archive) to OUT/code;
#  2. device: on a machine where torch sees no GPU, edits that copy (peerlib.py patch_wtalc,
#     each edit counted): 'torch.cuda.FloatTensor' -> 'torch.FloatTensor' in main.py, model.py,
#     train.py, test.py, and torch.device("cuda") -> "cpu" in main.py;
#  3. data (peerlib.py wtalc-data): OUT/work/ gets a link to the release's feature file and a
#     rewritten Thumos14reduced-Annotations/ (labels as str, subsets 'validation'/'test', the
#     classes some video has, times in the peer's 16-frames-at-25-fps base); main.py runs with OUT/work as its working folder
#     (it reads and writes ckpt/, logs/, *-results.log there);
#  4. runs main.py --seed SEED --max-iter ITERS through wtalc_launch.py, which sets
#     --feature-size (2 D) and --num-class from the release, gives np.load numpy<1.16.3's
#     allow_pickle default, and records the proposals of each test (every 500 iterations);
#  5. converts the last test's proposals (rows [s, e) -> seconds s / rps, e / rps) and scores
#     them with this project's evaluate on FAMILY/annotations.json (test subset); prints one
#     line. W-TALC keeps no model selection: the last test is the model at the end of training.
# Environment: PEER_PYTHON (default /work/peers/venv/bin/python), MAIN_PYTHON, PEER_ARGS (more of
# W-TALC's own options, e.g. '--lr 0.001').
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,13p' "$0"; exit 2; fi
CLONE=$(cd "$1" && pwd); RELEASE=$(cd "$2" && pwd); OUT=$3; SEED=${4:-1}; ITERS=${5:-}
HERE=$(cd "$(dirname "$0")" && pwd)
MAIN_PYTHON=${MAIN_PYTHON:-$HERE/../../.venv/bin/python}
PEER_PYTHON=${PEER_PYTHON:-/work/peers/venv/bin/python}
TESTED=81ea98264a8456881eb7e98df4872b66d307c6cb
LIB="$MAIN_PYTHON $HERE/peerlib.py"

COMMIT=$(git -C "$CLONE" rev-parse HEAD)
[ "$COMMIT" = "$TESTED" ] || echo "warning: $CLONE is at $COMMIT; these scripts were tested at $TESTED" >&2
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/code" "$OUT/work" "$OUT/detections"
mkdir -p "$OUT/code" "$OUT/work" "$OUT/detections"
git -C "$CLONE" archive HEAD | tar -x -C "$OUT/code"
echo "$COMMIT" > "$OUT/code/COMMIT"

CPU=""
if [ "$("$PEER_PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')" = 0 ]; then CPU=--cpu; fi
$LIB patch "$OUT/code" wtalc "$RELEASE" $CPU 2> >(tee "$OUT/glue.txt" >&2)
NCLS=$($LIB wtalc-data "$RELEASE" "$OUT/work")
$LIB info "$RELEASE" > "$OUT/release-info.json"
DIM=$($LIB info "$RELEASE" --key joint_dim)

ARGS=(--seed "$SEED")
[ -n "$ITERS" ] && ARGS+=(--max-iter "$ITERS")
read -r -a EXTRA <<< "${PEER_ARGS:-}"
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python   # tensorboard_logger 0.1.0's protobuf code
cd "$OUT/work"
START=$(date +%s)
"$PEER_PYTHON" -W ignore "$HERE/wtalc_launch.py" "$OUT/code" "$OUT/detections" "$DIM" "$NCLS" -- \
    "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/train.log" 2>&1 \
  || { echo "error: W-TALC's main.py failed; the end of $OUT/train.log:" >&2; tail -n 15 "$OUT/train.log" >&2; exit 1; }
END=$(date +%s)
N=${ITERS:-100000}
echo "trained $N iterations in $((END - START)) s" | tee "$OUT/time.txt" >&2
LAST=$(ls "$OUT/detections" | sed -n 's/^detections_itr\([0-9]*\)\.json$/\1/p' | sort -n | tail -n 1)
[ -n "$LAST" ] || { echo "error: no test ran (W-TALC tests every 500 iterations: ITERS must be > 500)" >&2; exit 1; }
$LIB convert wtalc "$OUT/detections/detections_itr$LAST.json" "$RELEASE" "$OUT/detections_last.json"
$LIB score "$RELEASE" "$OUT/detections_last.json" --peer wtalc --commit "$COMMIT" --seed "$SEED" \
    --label selection=last --label iters=$N --label tested_at=$LAST ${PEER_ARGS:+--label "args=${PEER_ARGS// /_}"} \
  | tee "$OUT/result.txt"
