#!/usr/bin/env bash
# scripts/train_toy_teacher.sh [OUT] [CAUSVID]: trains the shipped toy teacher from random
# weights, both phases of its recipe (docs/toy_world.md, "The torus"), about 2 hours on this
# 2-core machine:
#   1. configs/toy/teacher.yaml, 30000 steps on clips that stay inside the frame (--no-wrap),
#      where the model learns motion and the sign of its direction (94 minutes);
#   2. configs/toy/teacher_torus.yaml, 6000 steps from phase 1's EMA on the torus world (the
#      default data), where it learns to wrap around the edges (20 minutes).
# Writes OUT/toy_teacher.safetensors (phase 2's EMA: what assets/toy_teacher.safetensors is)
# and prints its score at 50 steps. OUT defaults to outputs/toy. PHASE1_STEPS / PHASE2_STEPS
# override the phases' steps (a smoke run: PHASE1_STEPS=4 PHASE2_STEPS=4).
set -euo pipefail
out=${1:-outputs/toy}
bin=${2:-build/causvid}
p1=${PHASE1_STEPS:-30000}
p2=${PHASE2_STEPS:-6000}
last() { ls -d "$1"/checkpoint_model_* | sort | tail -1; }
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
[ -e "$out/data_nowrap" ] || "$bin" toy data --out "$out/data_nowrap" --no-wrap --num 4096 --seed 0
[ -e "$out/data" ] || "$bin" toy data --out "$out/data" --num 4096 --seed 0
"$bin" train --config configs/toy/teacher.yaml --set "output_path=$out/teacher" \
  --set "data_path=$out/data_nowrap/latents_lmdb" --set "max_iters=$p1"
"$bin" export "$(last "$out/teacher")" --ema --format safetensors \
  --out "$out/teacher/teacher_ema.safetensors"
"$bin" train --config configs/toy/teacher_torus.yaml --set "output_path=$out/teacher_torus" \
  --set "data_path=$out/data/latents_lmdb" --set "dit_path=$out/teacher/teacher_ema.safetensors" --set "max_iters=$p2"
"$bin" export "$(last "$out/teacher_torus")" --ema --format safetensors \
  --out "$out/toy_teacher.safetensors"
"$bin" eval toy --config configs/toy/teacher.yaml --checkpoint "$out/toy_teacher.safetensors" \
  --sampler teacher --steps 50 --prompts "$out/data/eval_prompts.txt" --name "toy teacher, 50 steps"
