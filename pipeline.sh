#!/usr/bin/env bash
# Feature-level demo of the cached-feature core: synthetic planted-action features ->
# train Two-Stream, SRNet and TSRNet -> detect -> evaluate, one table.
# (The video-level demo with extract-features arrives with the extraction stage.)
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: ./pipeline.sh [--out DIR] [--force]

Runs the cached-feature pipeline on a synthetic planted-action feature store:
make-synthetic-features, then compare-methods (train-tsr for two-stream, srnet and
tsrnet, detect --threshold 0.2, ActivityNet-protocol evaluation), and prints the table.
  --out DIR   working folder [default: demo]
  --force     regenerate the data and retrain everything
USAGE
}
OUT=demo; FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")"
if [ ! -x .venv/bin/train-tsr ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0 \
    || .venv/bin/python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
  .venv/bin/python -m pip install -q -e .
fi
B=.venv/bin
[ "$FORCE" = 1 ] && rm -rf "$OUT"
[ -f "$OUT/data/annotations.json" ] || $B/make-synthetic-features "$OUT/data"
$B/compare-methods "$OUT/data/untrimmed.h5" --annotations "$OUT/data/annotations.json" --subset train \
  --trimmed "$OUT/data/trimmed.h5" --out "$OUT/runs" $([ "$FORCE" = 1 ] && echo --overwrite)
$B/detect --run "$OUT/runs/tsrnet" --threshold 0.2 --plot "$OUT/plots" --quiet >/dev/null
echo "timelines: $OUT/plots/"
