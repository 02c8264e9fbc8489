#!/usr/bin/env bash
# Compiles every translation unit with CUDA/NCCL code paths with -fsyntax-only as if built
# against a CUDA LibTorch, so those paths cannot rot unseen on CPU-only machines.
# Needs the CUDA toolkit headers (cuda_runtime_api.h, nccl.h); exits 77 (skip) without them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cuda_inc=""
for d in "${CUDA_HOME:-}/include" /usr/local/cuda/include /usr/include; do
  if [ -f "$d/cuda_runtime_api.h" ] && [ -f "$d/nccl.h" ]; then cuda_inc="$d"; break; fi
done
if [ -z "$cuda_inc" ]; then
  echo "cuda_syntax_check: no CUDA toolkit headers (cuda_runtime_api.h + nccl.h): skipped"
  exit 77
fi
torch_api=/usr/include/torch/csrc/api/include
files=$(cd "$root" && grep -rl --include='*.cpp' -e CAUSVID_WITH_NCCL -e CAUSVID_WITH_CUDA \
  core models data losses trainer inference checks bench cli 2>/dev/null || true)
[ -n "$files" ] || { echo "cuda_syntax_check: no CUDA translation units"; exit 0; }
for f in $files; do
  echo "cuda_syntax_check: $f"
  g++ -std=c++17 -fsyntax-only -DCAUSVID_WITH_CUDA=1 -DCAUSVID_WITH_NCCL=1 -DUSE_C10D_NCCL \
    -DUSE_C10D_GLOO -I"$root" -I"$root/cmake/cuda_syntax" -I"$torch_api" -I"$cuda_inc" \
    "$root/$f"
done
echo "cuda_syntax_check: ok"
