#!/usr/bin/env bash
# BaS-Net (Lee et al., AAAI 2020), the authors' code, as a referee on a W-TALC release of this
# project's synthetic families. Not run by CI. See README.md beside this file.
#
#   basnet.sh CLONE RELEASE OUT [SEED [ITERS]]
#
# CLONE    a git clone of github.com/Pilhyeon/BaSNet-pytorch (tested: c8c6bbd84a33)
# RELEASE  FAMILY/release, from make-synthetic-features FAMILY --preset P --release wtalc
# OUT      output folder (made; reused runs are overwritten)
# SEED     --seed of BaS-Net (default 0)
# ITERS    iterations (default: the authors' 1500, lr 1e-4 constant; with ITERS the learning
#          rate stays constant at $PEER_LR, default 1e-4); e.g. 3 for a smoke test
#
# What it does:
#  1. exports the clone's HEAD (git archive: the committed code, nothing local) to OUT/code;
#  2. edits that copy, never the clone (peerlib.py patch_basnet, each edit counted):
#       device        '.cuda()' removed in main.py, main_eval.py, train.py, test.py when torch
#                     sees no GPU (nothing edited on a GPU machine);
#       feature size  config.py's len_feature 2048/1024 -> 2D/D when the release is not 2048-d;
#       class list    config.py's num_classes 20 and class_dict -> the release's classes when
#                     they are not THUMOS14's 20 (ActivityNet-structured presets);
#  3. writes the release in BaS-Net's layout to OUT/data (peerlib.py basnet-data; times in the
#     peer's 16-frames-at-25-fps base, so its own evaluation is consistent on any row rate);
#  4. runs, as run.sh does, main.py --data_path OUT/data --model_path/--output_path/--log_path
#     under OUT --seed SEED [--lr '[0.0001]*ITERS'] (--num_workers from $PEER_WORKERS, default
#     the authors' 8). main.py tests on the test split after every iteration and keeps the
#     checkpoint with the best test average mAP (the authors' protocol);
#  5. scores, with this project's evaluate on FAMILY/annotations.json (test subset):
#       selection=last       the detections of the last iteration (OUT/outputs/temp_result.json
#                            as main.py leaves it): no model selection on the test set;
#       selection=best-test  the authors' reported protocol: main_eval.py (run_eval.sh) on the
#                            checkpoint main.py kept, i.e. chosen by mAP on the test set itself.
#     and prints one line for each.
# Environment: PEER_PYTHON (default /work/peers/venv/bin/python), MAIN_PYTHON (this project's
# venv python), PEER_WORKERS, PEER_ARGS (more of BaS-Net's own options for main.py and
# main_eval.py, e.g. PEER_ARGS='--class_th 0' in a smoke test, so that an untrained model, whose
# class scores stay under the default 0.25, still yields detections to convert and score).
set -euo pipefail
if [ $# -lt 3 ]; then sed -n '2,12p' "$0"; exit 2; fi
CLONE=$(cd "$1" && pwd); RELEASE=$(cd "$2" && pwd); OUT=$3; SEED=${4:-0}; ITERS=${5:-}
HERE=$(cd "$(dirname "$0")" && pwd)
MAIN_PYTHON=${MAIN_PYTHON:-$HERE/../../.venv/bin/python}
PEER_PYTHON=${PEER_PYTHON:-/work/peers/venv/bin/python}
TESTED=c8c6bbd84a33d14fa7e6d7bbfdbd0d6db286d9b6
LIB="$MAIN_PYTHON $HERE/peerlib.py"

COMMIT=$(git -C "$CLONE" rev-parse HEAD)
[ "$COMMIT" = "$TESTED" ] || echo "warning: $CLONE is at $COMMIT; these scripts were tested at $TESTED" >&2
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/code" "$OUT/data"
mkdir -p "$OUT/code" "$OUT/data"
git -C "$CLONE" archive HEAD | tar -x -C "$OUT/code"
echo "$COMMIT" > "$OUT/code/COMMIT"

CPU=""
if [ "$("$PEER_PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')" = 0 ]; then CPU=--cpu; fi
$LIB patch "$OUT/code" basnet "$RELEASE" $CPU --test-every "${PEER_TEST_EVERY:-1}" 2> >(tee "$OUT/glue.txt" >&2)
$LIB basnet-data "$RELEASE" "$OUT/data"
$LIB info "$RELEASE" > "$OUT/release-info.json"

ARGS=(--data_path "$OUT/data" --model_path "$OUT/models" --output_path "$OUT/outputs"
      --log_path "$OUT/logs" --seed "$SEED")
[ -n "$ITERS" ] && ARGS+=(--lr "[${PEER_LR:-0.0001}]*$ITERS")
[ -n "${PEER_WORKERS:-}" ] && ARGS+=(--num_workers "$PEER_WORKERS")
read -r -a EXTRA <<< "${PEER_ARGS:-}"
# tensorboard_logger 0.1.0's generated protobuf code needs the pure-Python protobuf runtime
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
cd "$OUT/code"
START=$(date +%s)
fail() { echo "error: $1 failed; the end of $2:" >&2; tail -n 15 "$2" >&2; exit 1; }
"$PEER_PYTHON" -W ignore ./main.py "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tr '\r' '\n' > "$OUT/train.log" \
  || fail "BaS-Net's main.py" "$OUT/train.log"
END=$(date +%s)
N=${ITERS:-1500}
echo "trained $N iterations in $((END - START)) s" | tee "$OUT/time.txt" >&2
cp "$OUT/outputs/temp_result.json" "$OUT/peer_last.json"

# the authors' evaluation script (run_eval.sh) on the checkpoint main.py kept
"$PEER_PYTHON" -W ignore ./main_eval.py --data_path "$OUT/data" --model_path "$OUT/models_eval" \
    --output_path "$OUT/outputs_eval" --log_path "$OUT/logs_eval" \
    --model_file "$OUT/models/BaS_Net_model_seed_${SEED}.pkl" \
    ${PEER_WORKERS:+--num_workers "$PEER_WORKERS"} ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/eval.log" 2>&1 \
  || fail "BaS-Net's main_eval.py" "$OUT/eval.log"
cp "$OUT/outputs_eval/temp_result.json" "$OUT/peer_best_test.json"
BEST_STEP=$(sed -n 's/^Step: //p' "$OUT/outputs/best_record_seed_${SEED}.txt")

for SEL in last best_test; do
  $LIB convert basnet "$OUT/peer_$SEL.json" "$RELEASE" "$OUT/detections_$SEL.json"
done
{
  $LIB score "$RELEASE" "$OUT/detections_last.json" --peer basnet --commit "$COMMIT" --seed "$SEED" \
      --label selection=last --label iters=$N ${PEER_LR:+--label lr=$PEER_LR} ${PEER_ARGS:+--label "args=${PEER_ARGS// /_}"}
  $LIB score "$RELEASE" "$OUT/detections_best_test.json" --peer basnet --commit "$COMMIT" --seed "$SEED" \
      --label selection=best-test --label iters=$N --label best_step=$BEST_STEP ${PEER_LR:+--label lr=$PEER_LR} \
      ${PEER_ARGS:+--label "args=${PEER_ARGS// /_}"}
} | tee "$OUT/result.txt"
