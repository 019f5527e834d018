#!/usr/bin/env bash
# The demo's features with and without train-backbone: SRNet and TSRNet mAP and the flow attention.
#
#   benchmarks/study_backbone.sh [OUT_DIR]     (default study-backbone; 1-2 hours on 2 CPU cores)
#   EPOCHS=10 LR=0.01 CLIP=20 benchmarks/study_backbone.sh ...   (the fine-tuning's settings; these are the defaults)
#
# On the demo's synthetic videos (make-synthetic-videos defaults, as ./pipeline.sh makes them): extract with
# the demo's random weights; fine-tune both streams on the demo's trimmed clips from those weights (the
# demo's recipe: random weights, so no partial BN and a larger learning rate than the paper's fine-tuning
# of ImageNet weights); extract again with the fine-tuned networks; train SRNet and TSRNet three seeds on
# each store with the demo's settings; print mAP@0.5 per store and the attention on actions against
# elsewhere. Writes OUT_DIR/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-study-backbone}
B=.venv/bin
mkdir -p "$OUT"
START=$(date +%s)
FLOW=(--tvl1-scales 3 --tvl1-warps 2 --tvl1-outer-iterations 3)
X=(--fps 1 --resize 128 --crop 112 "${FLOW[@]}" --quiet)
SA=srnet,tsrnet
TRAIN=(--set "$SA:smoothness=sum" --set "$SA:alpha=0.5" --set "$SA:beta=0.1" --set "$SA:sparsity-keep=0"
       --set "$SA:sparsity-confidence=false")
FT=(--weights random --size 112 --epochs "${EPOCHS:-10}" --no-partial-bn --lr-rgb "${LR:-0.01}" --lr-flow "${LR:-0.01}"
    --clip-gradient "${CLIP:-20}" "${FLOW[@]}" --quiet)

[ -f "$OUT/videos/annotations.json" ] || $B/make-synthetic-videos "$OUT/videos" --quiet
V=$OUT/videos
t=$(date +%s)
[ -f "$OUT/random/untrimmed.h5" ] || $B/extract-features "$V/untrimmed" "$OUT/random/untrimmed.h5" --annotations "$V/annotations.json" --weights random "${X[@]}"
[ -f "$OUT/random/trimmed.h5" ] || $B/extract-features "$V/trimmed" "$OUT/random/trimmed.h5" --trimmed --weights random "${X[@]}"
echo "extract (random): $(( $(date +%s) - t )) s"
t=$(date +%s)
$B/train-backbone "$V/trimmed" "$OUT/backbone" "${FT[@]}"
echo "train-backbone: $(( $(date +%s) - t )) s"
t=$(date +%s)
W=(--rgb-weights "$OUT/backbone/rgb.pt" --flow-weights "$OUT/backbone/flow.pt")
[ -f "$OUT/tuned/untrimmed.h5" ] || $B/extract-features "$V/untrimmed" "$OUT/tuned/untrimmed.h5" --annotations "$V/annotations.json" "${W[@]}" "${X[@]}"
[ -f "$OUT/tuned/trimmed.h5" ] || $B/extract-features "$V/trimmed" "$OUT/tuned/trimmed.h5" --trimmed "${W[@]}" "${X[@]}"
echo "extract (fine-tuned): $(( $(date +%s) - t )) s"
for F in random tuned; do
  $B/compare-methods "$OUT/$F/untrimmed.h5" --trimmed "$OUT/$F/trimmed.h5" --annotations "$V/annotations.json" \
    --subset train --test-subset test "${TRAIN[@]}" --models srnet,tsrnet --repeats 3 --out "$OUT/$F/runs" --quiet \
    > "$OUT/$F/table.txt"
  for run in "$OUT/$F/runs"/*-seed*; do
    $B/detect --run "$run" --threshold 0.2 --quiet > "$run/detect.txt" 2>&1 || true
  done
done
$B/python - "$OUT" <<'PY'
import re, sys
from pathlib import Path
out = Path(sys.argv[1])
lines = ["| features | method | mAP@0.5 (3 seeds) | flow attention on actions / elsewhere | rgb attention on actions / elsewhere |",
         "|---|---|---|---|---|"]
for f in ("random", "tuned"):
    table = (out / f / "table.txt").read_text()
    for m in ("srnet", "tsrnet"):
        row = next((l for l in table.splitlines() if l.strip().lower().startswith(("| " + m + " ", m + " "))), "")
        att = {"flow": [], "rgb": []}
        for run in sorted((out / f / "runs").glob(f"{m}-seed*")):
            txt = (run / "detect.txt").read_text()
            for s in att:
                g = re.search(rf"attention \(÷ max\) {s} ([\d.]+) on actions, ([\d.]+) elsewhere", txt)
                if g:
                    att[s].append((float(g[1]), float(g[2])))
        fmt = lambda v: " / ".join(f"{sum(x[i] for x in v) / len(v):.2f}" for i in (0, 1)) if v else "n/a"
        lines.append(f"| {f} | {m} | {row.strip()} | {fmt(att['flow'])} | {fmt(att['rgb'])} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "done in $(( $(date +%s) - START )) s"
