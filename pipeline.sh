#!/usr/bin/env bash
# The whole system in one command: videos -> extract-features -> train every method of the registry (Two-Stream,
# SRNet, TSRNet and its FC1-only variant, STPN, UntrimmedNet, MGFN, KT-MGFN; the demo leaves out the two MGFNs) -> detect --threshold 0.2
# -> evaluation table. With no arguments it runs the built-in demo.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: ./pipeline.sh [--out DIR] [--no-fine-tune] [--force]     the demo (synthetic videos)
       ./pipeline.sh --dataset thumos14 --videos DIR --annotations GT [--trimmed-videos UCF101_DIR] [...]
       ./pipeline.sh --dataset activitynet --videos DIR --annotations activity_net.v1-3.min.json [...]
       ./pipeline.sh --dataset thumos14 --features RELEASE --annotations ITS_ANNOTATIONS [--layout L] [...]
                     (a public feature release: import instead of extracting, then the same table,
                      with each method next to its paper's published numbers)

Stages, each skipped when its output exists (unless --force):
  1. (demo) make-synthetic-videos: untrimmed videos, trimmed clips, annotations
     (the demo, or --fine-tune) train-backbone: fine-tune both ResNet101 streams on the trimmed clips
                   (the demo: RGB from its random weights, then flow started from the RGB network)
  2. extract-features for the untrimmed videos and the trimmed clips
  3. compare-methods: train every method of the registry (the demo: all but MGFN and KT-MGFN; those
     that transfer from trimmed clips only with --trimmed-videos), each --repeats seeds, detect on the
     test subset, one table (the mean over seeds, then their standard deviation; a random-scores row
     gives the floor)
  4. detect --threshold 0.2 with TSRNet, timeline PNGs of the first test videos; (demo) detect on a raw
     test video, extracted with the run's recipe

Options:
  --out DIR             working folder [default: demo, or runs-<dataset>]
  --dataset NAME        demo | thumos14 (train on validation, test on test) |
                        activitynet (train on training, test on validation)
  --videos DIR          untrimmed videos (a folder, searched recursively, or a .txt list)
  --annotations GT      ground truth: ActivityNet JSON, the THUMOS14 folder of per-class
                        text files, or a CSV
  --trimmed-videos DIR  trimmed clips in <root>/<Class>/<clip> layout (UCF101) for TSRNet
  --features RELEASE    a feature release (file or folder) to import instead of videos
  --layout L            its layout: wtalc | basnet | acmnet | actionformer | bsn | auto [default: auto]
  --exclude SPEC        test videos left out [default for thumos14 releases: thumos14-210, the
                        210-video protocol most papers use; 'none' keeps all]
  --weights W           imagenet | random | checkpoint path [default: imagenet; demo: random]
  --fps R               feature rows per second [default: 4; demo: 1]
  --repeats N           train each method with N seeds and report mean and std [default: 1]
  --steps N             training steps per method [default: train-tsr's: 1500, and MGFN's and
                        KT-MGFN's 100 epochs (ActivityNet: about 62,700 steps)]
  --fine-tune           fine-tune the backbone on the trimmed clips first (the paper's recipe)
                        and extract with it [default for the demo: RGB 6 epochs from its random
                        weights, then flow 8 epochs from the RGB network, about 2.5 minutes on
                        2 CPU cores; elsewhere off, and its results go to features-tuned/,
                        runs-tuned/, table-tuned.txt beside the others]
  --no-fine-tune        extract with --weights as they are (the demo: into features-untuned/,
                        runs-untuned/, table-untuned.txt)
  --force               redo every stage
  -h, --help            this text

Everything is installed into .venv on first use (CPU torch unless a GPU build is present).
USAGE
}
DATASET=demo; OUT=; MODELS=; VIDEOS=; GT=; TRIMMED=; WEIGHTS=; FPS=; REPEATS=; FORCE=0; FEATURES=; LAYOUT=auto; EXCLUDE=; STEPS=
FINE_TUNE=; TVL1=(); JOBS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --dataset) DATASET=$2; shift 2 ;;
    --videos) VIDEOS=$2; shift 2 ;;
    --annotations) GT=$2; shift 2 ;;
    --trimmed-videos) TRIMMED=$2; shift 2 ;;
    --features) FEATURES=$2; shift 2 ;;
    --layout) LAYOUT=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --exclude) EXCLUDE=$2; shift 2 ;;
    --weights) WEIGHTS=$2; shift 2 ;;
    --fps) FPS=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    --fine-tune) FINE_TUNE=1; shift ;;
    --no-fine-tune) FINE_TUNE=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")"
START=$(date +%s)

# -- environment: CPU torch first, so that pip never pulls the multi-GB CUDA build ----------------
# A .venv installed before the modules moved under tsrnet.* (its scripts import extract.cli) is reinstalled.
if [ ! -x .venv/bin/extract-features ] || ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('tsrnet.extract') is None)" 2>/dev/null; then
  echo "== setting up .venv (first run only)"
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0 2>/dev/null \
    || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  .venv/bin/python -m pip install -q -e .
fi
B=.venv/bin
DEV=$($B/python -c "import torch; from tsrnet.data.core.devices import available_cpus
print(int(torch.cuda.is_available()), available_cpus())")  # one start of torch for both
read -r GPU CPUS <<< "$DEV"
DEFAULT_TUNE=$([ "$DATASET" = demo ] && echo 1 || echo 0); FINE_TUNE=${FINE_TUNE:-$DEFAULT_TUNE}

case "$DATASET" in
  demo)
    OUT=${OUT:-demo}; TRAIN=train; TEST=test
    WEIGHTS=${WEIGHTS:-random}; FPS=${FPS:-1}; REPEATS=${REPEATS:-1}
    # Small frames, 1 row/s, a cheaper TV-L1, 112-px crops and one seed keep the demo within minutes on 2 CPU
    # cores; on 40 training videos one seed can move mAP by several points, which --repeats 3 shows.
    # MGFN and KT-MGFN are left out: on the demo's features they localise at the random-scores floor, and
    # their training would take the demo past 10 minutes (docs/demo.md, Its limits).
    TVL1=(--tvl1-scales 3 --tvl1-warps 2 --tvl1-outer-iterations 3)
    EXTRA=(--resize 128 --crop 112 "${TVL1[@]}")
    MODELS=two-stream,srnet,tsrnet,tsrnet-fc1,stpn,untrimmednet-soft,untrimmednet-hard
    # From random weights TSN's partial BN would keep the residual branches closed, and the paper's rates
    # (for ImageNet weights) hardly move them in 10 epochs. A flow network from random weights did not learn
    # in 10 epochs; started from the fine-tuned RGB network (cross-modality, TSN's flow rate 0.005, partial
    # BN) its attention separates actions from the rest, though its training accuracy stays near 50%
    # (docs/backbone.md). So RGB first, then flow from it. Trained 10 epochs, RGB's training loss reaches 0
    # by the 4th, so it gets 6; flow's stays noisy throughout and gets 8, so that the demo fits 10 minutes.
    TUNE_RGB=(--weights random --size 112 --epochs 6 --no-partial-bn --lr-rgb 0.01)
    TUNE_FLOW=(--size 112 --epochs 8 --lr-flow 0.005)
    # STPN's default sparsity weight (beta 1) shut its attention on every row within the first epoch on the
    # demo's fine-tuned 2,048-d rows (mean 3; it classified at chance, 0.0 mAP@0.5), so it trains with 0.1.
    TRAIN_EXTRA=(--set "stpn:beta=0.1")
    # On a CPU two runs train side by side: a small model does not keep two cores busy (compare-methods --help).
    [ "$GPU" = 0 ] && [ "$CPUS" -ge 2 ] && JOBS=(--jobs 2)
    if [ "$FINE_TUNE" = 0 ]; then
      # Random-weight features carry little class evidence; there the paper-literal summed R_smooth with a
      # light sparsity localises better than the default R_SA (docs/demo.md). Per method, since --beta and
      # --alpha name other weights in STPN and KT-MGFN. On fine-tuned features the others keep their defaults.
      SA=srnet,tsrnet,tsrnet-fc1
      TRAIN_EXTRA=(--set "$SA:smoothness=sum" --set "$SA:alpha=0.5" --set "$SA:beta=0.1" --set "$SA:sparsity-keep=0"
                   --set "$SA:sparsity-confidence=false" --set "stpn:beta=0.1")
    fi
    ;;
  thumos14) OUT=${OUT:-runs-thumos14}; TRAIN=validation; TEST=test; EXTRA=(); TRAIN_EXTRA=() ;;
  activitynet) OUT=${OUT:-runs-activitynet}; TRAIN=training; TEST=validation; EXTRA=(); TRAIN_EXTRA=() ;;
  *) echo "error: --dataset must be demo, thumos14 or activitynet" >&2; exit 2 ;;
esac
WEIGHTS=${WEIGHTS:-imagenet}; FPS=${FPS:-4}; REPEATS=${REPEATS:-1}
case "$REPEATS" in ''|*[!0-9]*|0) echo "error: --repeats must be a positive integer, got '$REPEATS'" >&2; exit 2 ;; esac
case "$STEPS" in ''|*[!0-9]*|0) [ -n "$STEPS" ] && { echo "error: --steps must be a positive integer, got '$STEPS'" >&2; exit 2; } ;; esac
ST=(); [ -n "$STEPS" ] && ST=(--steps "$STEPS")
if [ "$DATASET" != demo ] && { { [ -z "$VIDEOS" ] && [ -z "$FEATURES" ]; } || [ -z "$GT" ]; }; then
  echo "error: --dataset $DATASET needs --videos (or --features) and --annotations (see --help)" >&2; exit 2
fi
if [ -n "$FEATURES" ] && [ "$DATASET" = demo ]; then
  echo "error: --features needs --dataset thumos14 or activitynet (see --help)" >&2; exit 2
fi
if [ "$FINE_TUNE" = 1 ] && [ "$DATASET" != demo ] && { [ -n "$FEATURES" ] || [ -z "$TRIMMED" ]; }; then
  echo "error: --fine-tune trains on trimmed clips: it needs --videos and --trimmed-videos (see --help)" >&2; exit 2
fi
[ "$FORCE" = 1 ] && rm -rf "$OUT"
# The dataset's own recipe (the demo: fine-tuned; real videos: --weights as given) writes features/, runs/;
# the other sits beside it, suffixed, so that both tables can be compared.
TAG=
if [ "$FINE_TUNE" != "$DEFAULT_TUNE" ]; then TAG=$([ "$FINE_TUNE" = 1 ] && echo -tuned || echo -untuned); fi
FEAT=$OUT/features$TAG; RUNS=$OUT/runs$TAG; PLOTS=$OUT/plots$TAG
mkdir -p "$FEAT"

if [ -n "$FEATURES" ]; then
  # A feature release: import it (each row timed by the release's own convention), write the ground truth
  # with the evaluation protocol, and compare the methods next to their papers' numbers. Rerunning skips
  # what is done: the store, the annotations, and every finished run.
  PUB=$([ "$DATASET" = thumos14 ] && echo thumos14 || echo activitynet13)
  if [ "$DATASET" = thumos14 ] && [ -z "$EXCLUDE" ]; then EXCLUDE=thumos14-210; fi
  [ "$EXCLUDE" = none ] && EXCLUDE=
  EX=(); [ -n "$EXCLUDE" ] && EX=(--exclude "$EXCLUDE")
  echo "== 1/3 import-features ($LAYOUT) -> $OUT/features/untrimmed.h5"
  if [ -f "$OUT/features/untrimmed.h5" ]; then echo "   exists, skipped"
  else $B/import-features "$OUT/features/untrimmed.h5" --layout "$LAYOUT" --features "$FEATURES" --annotations "$GT" --quiet; fi
  if [ ! -f "$OUT/annotations.json" ]; then
    $B/convert-annotations "$GT" "$OUT/annotations.json" "${EX[@]}"
  fi
  echo "== 2/3 compare-methods on '$TRAIN', evaluated on '$TEST'${EXCLUDE:+ without $EXCLUDE}"
  $B/compare-methods "$OUT/features/untrimmed.h5" --annotations "$OUT/annotations.json" --subset "$TRAIN" \
    --test-subset "$TEST" --models two-stream,srnet,stpn,untrimmednet-soft,untrimmednet-hard \
    --repeats "$REPEATS" "${ST[@]}" "${JOBS[@]}" --published "$PUB" --out "$OUT/runs" --quiet | tee "$OUT/table.txt"
  echo "== 3/3 tables: $OUT/runs/table.md, next to the papers: $OUT/runs/published.md, chart: $OUT/runs/table.png"
  echo "done in $(( $(date +%s) - START )) s"
  exit 0
fi

if [ "$DATASET" = demo ]; then
  if [ ! -f "$OUT/videos/annotations.json" ]; then
    echo "== 1/4 make-synthetic-videos -> $OUT/videos"
    $B/make-synthetic-videos "$OUT/videos"
  fi
  VIDEOS=$OUT/videos/untrimmed; GT=$OUT/videos/annotations.json; TRIMMED=$OUT/videos/trimmed
fi

X=(--weights "$WEIGHTS" --fps "$FPS" "${EXTRA[@]}")
# What made FEAT (and the backbone): a rerun into the same --out with another recipe would otherwise reuse
# features of other weights, or meet runs of other settings, so it is refused before anything is done.
RECIPE="weights=$WEIGHTS fine-tune=$FINE_TUNE fps=$FPS ${EXTRA[*]}"
if [ "$FINE_TUNE" = 1 ] && [ "$DATASET" = demo ]; then RECIPE+=" rgb: ${TUNE_RGB[*]} flow: ${TUNE_FLOW[*]}"; fi
if [ -f "$FEAT/recipe.txt" ]; then
  if [ "$(cat "$FEAT/recipe.txt")" != "$RECIPE" ]; then
    echo "error: $FEAT was made with another recipe ($(cat "$FEAT/recipe.txt")); this run's: $RECIPE." \
      "Rerun with --force to redo everything, or choose another --out" >&2; exit 2
  fi
elif [ -e "$FEAT/untrimmed.h5" ] || [ -e "$FEAT/untrimmed.h5.parts" ] || { [ "$FINE_TUNE" = 1 ] && [ -e "$OUT/backbone" ]; }; then
  echo "error: $OUT holds features or a backbone without a recorded recipe (made by another version of" \
    "pipeline.sh); rerun with --force to redo everything, or choose another --out" >&2; exit 2
fi
echo "$RECIPE" > "$FEAT/recipe.txt"
if [ "$FINE_TUNE" = 1 ]; then
  echo "== 1/4 (fine-tune) train-backbone on $TRIMMED -> $OUT/backbone"
  # With the extraction's TV-L1 settings, so the networks learn from the flow they will be given.
  if [ "$DATASET" = demo ]; then
    $B/train-backbone "$TRIMMED" "$OUT/backbone" --stream rgb "${TUNE_RGB[@]}" "${TVL1[@]}" --quiet
    $B/train-backbone "$TRIMMED" "$OUT/backbone" --stream flow --weights "$OUT/backbone/rgb.pt" "${TUNE_FLOW[@]}" \
      "${TVL1[@]}" --quiet
  else  # the paper's recipe: both streams from ImageNet weights (by default)
    $B/train-backbone "$TRIMMED" "$OUT/backbone" --weights "$WEIGHTS" "${TVL1[@]}" --quiet
  fi
  X+=(--rgb-weights "$OUT/backbone/rgb.pt" --flow-weights "$OUT/backbone/flow.pt")
fi

echo "== 2/4 extract-features (weights: $([ "$FINE_TUNE" = 1 ] && echo "fine-tuned from $WEIGHTS" || echo "$WEIGHTS"); device: $([ "$GPU" = 1 ] && echo GPU || echo CPU))"
if [ "$WEIGHTS" = random ] && [ "$FINE_TUNE" = 0 ]; then
  echo "   note: random ResNet101 weights (no download needed); the features carry no ImageNet knowledge."
  echo "   For real features: ./pipeline.sh --weights imagenet (needs the network once)."
fi
extract() {  # OUT.h5 SOURCE [options]: skip a finished store; go on when only some videos failed (exit 1)
  local out=$1; shift
  if [ -f "$out" ] && [ ! -d "$out.parts" ]; then echo "   $out exists, skipped"; return 0; fi
  local rc=0
  $B/extract-features "$@" "$out" "${X[@]}" || rc=$?
  if [ "$rc" = 1 ]; then echo "   warning: some videos failed (listed above and in $out); going on without them"
  elif [ "$rc" != 0 ]; then exit "$rc"; fi
}
extract "$FEAT/untrimmed.h5" "$VIDEOS" --annotations "$GT"
TR=()
if [ -n "$TRIMMED" ]; then
  extract "$FEAT/trimmed.h5" "$TRIMMED" --trimmed
  TR=(--trimmed "$FEAT/trimmed.h5")
fi

echo "== 3/4 compare-methods: train every method on '$TRAIN', evaluate on '$TEST'"
# Every registered method (the demo: its list above); those that transfer from trimmed clips only when there are some.
[ -n "${MODELS:-}" ] || MODELS=$($B/python -c "import sys; from tsrnet.train.methods import REGISTRY
print(','.join(m for m, c in REGISTRY.items() if sys.argv[1] == '1' or not c.uses_trimmed))" "$([ -n "$TRIMMED" ] && echo 1 || echo 0)")
$B/compare-methods "$FEAT/untrimmed.h5" --annotations "$GT" --subset "$TRAIN" --test-subset "$TEST" \
  "${TR[@]}" "${TRAIN_EXTRA[@]}" "${ST[@]}" "${JOBS[@]}" --models "$MODELS" --repeats "$REPEATS" --out "$RUNS" --quiet \
  | tee "$OUT/table$TAG.txt"

echo "== 4/4 detect --threshold 0.2 (TSRNet) with timelines"
BEST=$([ -n "$TRIMMED" ] && echo tsrnet || echo srnet)
if [ "$REPEATS" -gt 1 ]; then BEST=$BEST-seed0; fi  # compare-methods' run of the first seed
# The viewer refers to the videos where they are; the demo's are MPEG-4 Part 2, which browsers do not play,
# so it gets H.264 copies beside the page (small). Real videos are usually H.264 already: not copied.
VIEW=(--view "$OUT/view$TAG"); [ "$DATASET" = demo ] && VIEW+=(--view-copy)
$B/detect --run "$RUNS/$BEST" --threshold 0.2 --plot "$PLOTS" "${VIEW[@]}" --quiet > "$OUT/detect$TAG.txt"
echo "detections: $RUNS/$BEST/detections.json   timelines: $PLOTS/*.png   methods: $RUNS/table.png"
echo "viewer (open in a browser): $OUT/view$TAG/index.html"
if [ "$DATASET" = demo ]; then
  # A raw video, extracted as the run's store was (its weights, rate, crop, TV-L1), cached in the run's videos.h5.
  echo "== and from a raw video: detect $VIDEOS/video_test_0000.mp4 --run $RUNS/$BEST"
  $B/detect "$VIDEOS/video_test_0000.mp4" --run "$RUNS/$BEST" --threshold 0.2 --quiet > "$OUT/detect-video$TAG.txt"
  echo "detections: $RUNS/$BEST/videos-detections.json"
fi
echo "done in $(( $(date +%s) - START )) s"
