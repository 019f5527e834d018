#!/usr/bin/env bash
# KT-MGFN's Table V rows on the planted-action set of tests/test_methods_localise.py, three seeds each
# (docs/studies/table-v.md), in float32 as the study's table; PRECISION=bf16 gives its bf16 column. About 15
# minutes on 2 idle CPU cores in float32, 7 in bf16.
#
#   [PRECISION=fp32|auto|bf16] benchmarks/study_table_v.sh [OUT_DIR]     (default study-table-v); prints one
#   table per row
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-study-table-v}
B=.venv/bin
[ -f "$OUT/data/annotations.json" ] || $B/make-synthetic-features "$OUT/data" --n-classes 5 --dim 64 --n-train 40 \
  --n-test 20 --n-trimmed 100 --min-duration 40 --max-duration 80 --seed 1
D=$OUT/data
COMMON=(--annotations "$D/annotations.json" --subset train --test-subset test --trimmed "$D/trimmed.h5" --repeats 3
        --steps 300 --pretrain-steps 100 --hidden-dim 64 --precision "${PRECISION:-fp32}" --quiet)
row() {  # NAME MODEL [OPTIONS...]
  local name=$1 model=$2; shift 2
  echo "== $name: $model $*"
  $B/compare-methods "$D/untrimmed.h5" "${COMMON[@]}" --models "$model" "$@" --out "$OUT/$name" \
    | sed -n '/^mean/,$p'
}
START=$(date +%s)
row simple-cas mgfn --dilations 1 --stages 1 --no-brm
row mdcm mgfn --stages 1 --no-brm
row ccm mgfn --no-brm
row ktm kt-mgfn --no-brm
row kt-mgfn kt-mgfn
row mgfn mgfn
row mgfn-brm-after-0 mgfn --brm-after 0
echo "done in $(( $(date +%s) - START )) s"
