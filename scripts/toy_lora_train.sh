#!/usr/bin/env bash
# scripts/toy_lora_train.sh RUN_DIR RANK [LR]: issue #15's LoRA training measurement on the
# toy world. Re-runs the causal DMD stage of a finished `causvid toy run --out RUN_DIR` with
# LoRA adapters of rank RANK on the generator (base = the causal ODE student, frozen), merges
# the trained adapters into that base and scores it like the toy run scores its students.
set -euo pipefail
run=${1:?usage: scripts/toy_lora_train.sh RUN_DIR RANK [LR] [CAUSVID]}
rank=${2:?rank}
lr=${3:-1e-4}
bin=${4:-build/causvid}
out=$run/lora_dmd_r${rank}_lr$lr
base=$(ls -d "$run"/causal_ode/checkpoint_model_* | sort | tail -1)  # the stage's last
"$bin" train --config "$run/causal_dmd/config.yaml" --quiet --set "output_path=$out" \
  --set "lora_rank=$rank" --set "lr=$lr" 2>&1 | grep -E "LoRA|steps" || true
ckpt=$(ls -d "$out"/checkpoint_model_* | sort | tail -1)
"$bin" lora merge --base "$base" --lora "$ckpt/generator_lora.safetensors" \
  --out "$out/merged.safetensors" 2> /dev/null
"$bin" eval toy --prompts "$run/data/eval_prompts.txt" --config configs/toy/causal_dmd.yaml \
  --set dit_path=assets/toy_teacher.safetensors --checkpoint "$out/merged.safetensors" \
  --sampler causal --batch 96 --seed 4242 --name "LoRA r$rank causal DMD (lr $lr)" --no-header
