#!/usr/bin/env bash
# scripts/toy_lora_extract.sh RUN_DIR: issue #15's extraction measurement on the toy world.
# Extracts the LoRA that turns the toy teacher (the base model) into the causal DMD student of
# a finished `causvid toy run --out RUN_DIR` at ranks 8 / 32 / 128, merges each into the
# teacher and scores the result with the causal 3-step sampler, next to the full student,
# with the toy run's own evaluation settings (eval prompts, batch 96, seed 4242).
set -euo pipefail
run=${1:?usage: scripts/toy_lora_extract.sh RUN_DIR [CAUSVID]}
bin=${2:-build/causvid}
teacher=assets/toy_teacher.safetensors
student=$(ls -d "$run"/causal_dmd/checkpoint_model_* | sort | tail -1)  # the stage's last
out=$run/lora_extract
mkdir -p "$out"
score() {  # NAME CHECKPOINT
  "$bin" eval toy --prompts "$run/data/eval_prompts.txt" --config configs/toy/causal_dmd.yaml \
    --set "dit_path=$teacher" --checkpoint "$2" --sampler causal --batch 96 --seed 4242 \
    --name "$1" --no-header
}
score "full student" "$student"
for r in 8 32 128; do
  "$bin" lora extract --base "$teacher" --tuned "$student" --rank "$r" \
    --out "$out/lora_r$r.safetensors"
  "$bin" lora extract --base "$teacher" --tuned "$student" --rank "$r" --no-diffs \
    --out "$out/lora_r${r}_nodiffs.safetensors" > /dev/null
  "$bin" lora merge --base "$teacher" --lora "$out/lora_r$r.safetensors" \
    --out "$out/merged_r$r.safetensors" 2> /dev/null
  "$bin" lora merge --base "$teacher" --lora "$out/lora_r${r}_nodiffs.safetensors" \
    --out "$out/merged_r${r}_nodiffs.safetensors" 2> /dev/null
  score "LoRA rank $r" "$out/merged_r$r.safetensors"
  score "LoRA rank $r, linears only" "$out/merged_r${r}_nodiffs.safetensors"
done
