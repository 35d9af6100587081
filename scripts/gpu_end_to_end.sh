#!/usr/bin/env bash
# The three end-to-end pose stages at GPU size (recipes/pose/gpu/end_to_end.yaml), a few steps
# each on synthetic frames with the built-in tiny PPCA model: the recipes run on the GPU and how
# long a step takes there, not accuracy (the data in ../shared is not on a lent GPU machine).
#   OUT=gpu_out scripts/gpu_end_to_end.sh               # from the repository root; gpu_checks.sh calls it
#   ACCEL=cpu STEPS=2 OUT=/tmp/e2e scripts/gpu_end_to_end.sh   # the same wiring on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}/end_to_end
ACCEL=${ACCEL:-gpu}
STEPS=${STEPS:-30}
mkdir -p "$OUT"
common=(--config recipes/pose/gpu/end_to_end.yaml --trainer.accelerator "$ACCEL"
        --trainer.max_steps "$STEPS" --trainer.val_check_interval "$STEPS"
        --trainer.limit_val_batches 2 --trainer.logger false --trainer.enable_progress_bar false
        --data.init_args.root null --data.init_args.synthetic_frames 256)
stage() {  # name, recipe, extra arguments…: fit one stage, print its seconds
  local name=$1 recipe=$2; shift 2
  local start=$SECONDS
  python -m lightning_energy fit --config "recipes/pose/$recipe" "$@" "${common[@]}" \
      --trainer.default_root_dir "$OUT/$name"
  echo "stage $name: $STEPS steps in $((SECONDS - start)) s (start-up included)"
}
stage detector end_to_end_detector.yaml
stage staged end_to_end_staged.yaml --config recipes/pose/overlays/tiny_ppca.yaml \
    --model.init_args.init_weights "$OUT/detector/checkpoints/last.ckpt"
stage end_to_end end_to_end.yaml --config recipes/pose/overlays/tiny_ppca.yaml \
    --model.init_args.init_weights "$OUT/staged/checkpoints/last.ckpt"
