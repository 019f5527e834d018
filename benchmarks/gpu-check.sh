#!/usr/bin/env bash
# Every GPU test and every --device cuda benchmark in one go, with a one-line summary per figure at the end.
#
#   benchmarks/gpu-check.sh [OUT_DIR]        # logs and intermediate files in OUT_DIR [default: a temporary folder]
#
# Without a CUDA device the GPU tests run (and skip, saying so) and every GPU benchmark is reported as skipped:
# the script's CPU-only parts work on any machine. The figures it prints go to docs/benchmarks.md with the
# GPU's name. Sized to finish in under 8 minutes on an H100; each step has its own time limit.
#
# Figures (goals from the issue that asked for them, where one is set):
#   - TV-L1 pairs/s at 340x256, batch 32 (bench_flow.py)                       goal >= 300 on an H100
#   - extraction, video seconds per second on a 60 s clip (bench_extract.py)   goal >= 10x real time
#   - the trainer's step against its raw matmuls (bench_train.py)               goal <= 2x
#   - detect on videos, end to end (generated videos: extract, then score)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-$(mktemp -d -t gpu-check-XXXX)}
mkdir -p "$OUT"
export PYTHONPATH="benchmarks${PYTHONPATH:+:$PYTHONPATH}"  # the bench scripts import each other
SUMMARY=()
say() { SUMMARY+=("$1"); echo "gpu-check: $1"; }

GPU=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>/dev/null)
echo "gpu-check: device: ${GPU:-no CUDA device}; logs in $OUT"

# 1. The tests that need a GPU (each skips, with its reason, where there is none).
GPU_TESTS=(tests/test_flow.py::test_gpu_matches_cpu tests/test_extract.py::test_gpu_extraction_matches_cpu
           tests/test_batching.py::test_pinned_batch)
if timeout 300 "$PY" -m pytest -p no:cacheprovider -o addopts= -q -rs "${GPU_TESTS[@]}" > "$OUT/tests.log" 2>&1; then
  say "GPU tests: $(tail -n 1 "$OUT/tests.log")"
else
  say "GPU tests: FAILED (see $OUT/tests.log): $(tail -n 1 "$OUT/tests.log")"
fi

if [ -z "$GPU" ]; then
  for what in "TV-L1 pairs/s at 340x256, batch 32" "extraction on a 60 s clip" "trainer step / raw matmuls" \
              "detect on videos, end to end"; do
    say "$what: skipped (no CUDA device)"
  done
else
  # 2. TV-L1 on the GPU, batch 32 at 340x256.
  if timeout 150 "$PY" benchmarks/bench_flow.py --device cuda --skip-cpu --gpu-sizes 340x256 --gpu-batches 32 \
       --json "$OUT/flow.json" > "$OUT/flow.log" 2>&1; then
    say "TV-L1 ($GPU), 340x256 batch 32: $(grep -m1 -i '340x256' "$OUT/flow.log" | tr -s ' ')"
  else
    say "TV-L1: FAILED (see $OUT/flow.log)"
  fi
  # 3. Extraction of a 60 s clip on the GPU, end to end and by phase.
  if timeout 200 "$PY" benchmarks/bench_extract.py --device cuda --seconds 60 --pairs 8 > "$OUT/extract.log" 2>&1; then
    say "extraction ($GPU), 60 s clip: $(grep -m1 'end to end' "$OUT/extract.log" | tr -s ' ')"
  else
    say "extraction: FAILED (see $OUT/extract.log)"
  fi
  # 4. The trainer's step against its raw matmuls, on the GPU (the trainer's --device auto takes it).
  if timeout 150 "$PY" benchmarks/bench_train.py --videos 50 --clips 500 --epochs 2 \
       > "$OUT/train.log" 2>&1; then
    say "trainer ($GPU): $(grep -m1 'step time / raw matmul' "$OUT/train.log")"
  else
    say "trainer: FAILED (see $OUT/train.log)"
  fi
  # 5. detect on videos end to end: a run trained on extracted features, then new videos extracted and scored.
  B=$(dirname "$PY")
  D="$OUT/detect"
  if timeout 240 bash -c "set -e
      '$B/make-synthetic-videos' '$D/videos' --n-train 8 --n-test 4 --clips-per-class 0 --quiet > /dev/null
      '$B/extract-features' '$D/videos/untrimmed' '$D/f.h5' --weights random --fps 2 --annotations \
          '$D/videos/annotations.json' --device cuda --quiet > /dev/null 2>&1
      '$B/train-tsr' '$D/f.h5' --model srnet --steps 50 --out '$D/run' --quiet --device cuda > /dev/null
      mkdir -p '$D/new' && cp '$D'/videos/untrimmed/video_test_000[0-3].mp4 '$D/new/'
      start=\$(date +%s.%N)
      '$B/detect' '$D/new' --run '$D/run' --features '$D/new.h5' --device cuda --quiet > /dev/null 2>&1
      end=\$(date +%s.%N)
      echo \"\$start \$end\" > '$D/time'" > "$OUT/detect.log" 2>&1; then
    read -r t0 t1 < "$D/time"
    secs=$("$PY" -c "import h5py; f = h5py.File('$D/new.h5'); print(sum(f['videos'][v].attrs['duration'] for v in f['videos']))")
    say "detect on videos ($GPU): $(awk -v a="$t0" -v b="$t1" -v s="$secs" \
         'BEGIN { printf "%.0f s of video in %.1f s, %.1fx real time (extraction and scoring)", s, b - a, s / (b - a) }')"
  else
    say "detect on videos: FAILED (see $OUT/detect.log)"
  fi
fi

echo
echo "== gpu-check summary (${GPU:-no CUDA device})"
printf '%s\n' "${SUMMARY[@]}"
