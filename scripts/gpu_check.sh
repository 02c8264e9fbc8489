#!/usr/bin/env bash
# The GPU check: one command for a machine with an NVIDIA GPU and PyTorch 2.11 (CUDA 13)
# already installed and no network. It runs a build made on a CPU machine and carried over
# by scripts/gpu_bundle.sh (build/gpu_bundle.tar.xz: our binaries and the non-torch libraries
# they need), resolving LibTorch and the CUDA libraries from the PyTorch installed there.
#   bash scripts/gpu_check.sh [BUNDLE]   (a folder, or the .tar.xz; default build/gpu_bundle,
#                                         unpacked from build/gpu_bundle.tar.xz if absent)
# Runs, and prints one summary at the end:
#   1. the `gpu` test label (tests/gpu: every fixture on cuda in fp32 and bf16, 2 training steps
#      vs CPU, streaming generate vs CPU),
#   2. a few steps of tiny causal DMD training on cuda with 1 rank,
#   3. generate of 2 blocks at the real wan-1.3b size with random weights (bf16),
#   4. bench dit and bench generate at the wan-1.3b size on cuda (MFU against the measured
#      bf16 GEMM roof, per-block latency, frames per second).
# Budget: under 8 minutes on one H100/H200.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="${1:-$root/build/gpu_bundle}"
out="${OUT:-$root/outputs/gpu_check}"
mkdir -p "$out"
if [ ! -d "$bundle" ]; then
  archive="$bundle"
  [ -f "$archive" ] || archive="$bundle.tar.xz"
  [ -f "$archive" ] || { echo "gpu_check: no bundle at $bundle(.tar.xz): run scripts/gpu_bundle.sh" >&2; exit 1; }
  bundle="$(mktemp -d -t causvid_bundle_XXXXXX)"
  tar -C "$bundle" -xJf "$archive" || { echo "gpu_check: cannot unpack $archive" >&2; exit 1; }
fi
py="${PYTHON:-python3}"
torch_dir="$($py -c 'import os, torch; print(os.path.dirname(torch.__file__))')" || {
  echo "gpu_check: $py cannot import torch" >&2; exit 1; }
torch_ver="$($py -c 'import torch; print(torch.__version__)')"
pin="$(sed -n 's/^CAUSVID_TORCH_VERSION=//p' "$root/scripts/torch_pin.env")"
[[ "$torch_ver" == "$pin"* ]] || echo "gpu_check: WARNING: torch $torch_ver here, the build pins $pin"
nv_libs="$(ls -d "$torch_dir"/../nvidia/*/lib 2>/dev/null | tr '\n' ':')"
export LD_LIBRARY_PATH="$bundle/lib:$torch_dir/lib:${nv_libs}${LD_LIBRARY_PATH:-}"
export CAUSVID_SPM_SHIM="$bundle/bin/libcausvid_spm.so"
export CAUSVID_SHARED_DIR="$root/../shared"
bin="$bundle/bin"
summary=()
step() {  # step NAME TIMEOUT CMD...: runs, logs to $out/NAME.log, records pass/fail + seconds
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s%N)
  echo "=== $name: $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$? ds=$(( ($(date +%s%N) - t0) / 100000000 ))
  local t="$((ds / 10)).$((ds % 10))"
  tail -n 25 "$out/$name.log"
  summary+=("$(printf '%-16s %-4s %6ss  (log %s)' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL:$rc)" "$t" "$out/$name.log")")
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
echo "torch $torch_ver at $torch_dir"

step gpu_tests 240 "$bin/causvid_tests" --gtest_filter='Gpu*'
step train_dmd 120 bash -c "cd '$root' && '$bin/causvid' toy data --out '$out/toy' --num 64 --overwrite >/dev/null && \
  '$bin/causvid' train --config configs/toy/causal_dmd.yaml --device cuda --quiet --samples 0 \
  --set data_path='$out/toy/latents_lmdb' --set generator_ckpt= --set max_iters=5 --set save_iters=5 --output '$out/train'"
step generate_1p3b 120 "$bin/causvid" generate --config "$root/configs/wan_causal_dmd.yaml" \
  --random-init 1 --num-frames 6 --text-encoder hash --no-vae --device cuda --dtype bf16 --quiet \
  --prompt "a red fox running through snow" --out "$out/generate"
step bench_dit 150 "$bin/causvid" bench dit --preset wan-1.3b --device cuda --dtypes bf16 \
  --frames 21 --height 60 --width 104 --reps 3
step bench_generate 150 "$bin/causvid" bench generate --device cuda --dtype bf16 --wan \
  --wan-layers 30 --wan-stream --blocks 8

echo
echo "================ GPU check summary ================"
for s in "${summary[@]}"; do echo "$s"; done
grep -h "^bf16\|wan-1.3b streaming\|wan-1.3b block 1" "$out"/bench_*.log 2>/dev/null
! printf '%s\n' "${summary[@]}" | grep -q FAIL
