#!/usr/bin/env bash
# The GPU checks in one run, for whenever a GPU is lent (CI has none): the card, the GPU tests and
# every benchmark suite on CUDA, each into $OUT (default gpu_out/) as text and JSON.
#   OUT=/path/to/results scripts/gpu_checks.sh          # from the repository root
# Budget: about 10 minutes on an H100/H200 before the end-to-end stages (Theseus, if installed, is
# compared at B <= 1024 only); give the end-to-end stages their own call if time is short.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
run() {  # name, command…: keep going when one step fails, and say so
  local name=$1; shift
  echo "== $name: $*" | tee -a "$OUT/steps.log"
  local start=$SECONDS
  if "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err"; then status=ok; else status="failed ($?)"; fi
  echo "   $status in $((SECONDS - start)) s" | tee -a "$OUT/steps.log"
}
run card nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
run torch python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"
run gpu_tests python -m pytest -m gpu -q -p no:cacheprovider
run bench_adjoints python -m lightning_energy bench adjoints --device cuda --format json
run bench_pose python -m lightning_energy bench pose --device cuda \
    --batch-sizes 1 1024 16384 65536 --compare theseus --theseus-max-batch 1024 --format json
# The GPU throughput targets: pose-shaped problems (n = 30, m = 161), 10 LM steps, float32.
# --profile: kernels, launches and host syncs of one step per row, for where a target is missed.
run bench_adjoints_16k python -m lightning_energy bench adjoints --device cuda --dtype float32 \
    --batch-size 16384 --reference-batch 0 --profile --format json
run bench_adjoints_64k python -m lightning_energy bench adjoints --device cuda --dtype float32 \
    --batch-size 65536 --reference-batch 0 --profile --format json
run bench_tracking python -m lightning_energy bench tracking --device cuda --format json
run bench_scaling python -m lightning_energy bench scaling --device cuda --format json
run bench_sequence python -m lightning_energy bench sequence --device cuda \
    --frames 8 16 32 64 128 256 --dense-max 64 --format json
# Last, as the longest: the three end-to-end pose stages at GPU size, a few steps each.
run end_to_end env OUT="$OUT" scripts/gpu_end_to_end.sh
echo "results in $OUT/"
