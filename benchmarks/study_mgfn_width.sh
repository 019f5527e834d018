#!/usr/bin/env bash
# MGFN and KT-MGFN against the MDCM's width (--hidden-dim) on make-synthetic-features' default set, three
# seeds each, at a shortened schedule (--steps 300 --pretrain-steps 100), in float32 as the study ran
# (docs/studies/mgfn-width.md). About 50 minutes on 2 idle CPU cores, half of it at width 512.
#
#   benchmarks/study_mgfn_width.sh [OUT_DIR] [WIDTHS]   (default study-mgfn-width, "64 256 512")
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-study-mgfn-width}
WIDTHS=${2:-64 256 512}
B=.venv/bin
[ -f "$OUT/syn/annotations.json" ] || $B/make-synthetic-features "$OUT/syn"
S=$OUT/syn
START=$(date +%s)
for w in $WIDTHS; do
  echo "== width $w"
  t0=$(date +%s)
  $B/compare-methods "$S/untrimmed.h5" --annotations "$S/annotations.json" --subset train --trimmed "$S/trimmed.h5" \
    --models mgfn,kt-mgfn --repeats 3 --steps 300 --pretrain-steps 100 --hidden-dim "$w" --precision fp32 --quiet \
    --out "$OUT/w$w" | sed -n '/^mean/,$p'
  echo "width $w: $(( $(date +%s) - t0 )) s"
done
echo "done in $(( $(date +%s) - START )) s"
