#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs onto a GPU machine that has PyTorch (the pinned
# version, CUDA 13) but none of our Debian libraries: the two binaries, the sentencepiece
# shim and every shared library they load that is neither torch's / NVIDIA's (the GPU machine's
# torch provides those) nor the C runtime. Output: build/gpu_bundle/{bin,lib} and the file to
# carry, build/gpu_bundle.tar.xz, which must stay under 64 MiB (the limit of what is carried to
# the GPU machine; FFmpeg's codec libraries make the unpacked folder ~170 MiB, the archive
# ~50 MiB). scripts/gpu_check.sh unpacks it.
#   bash scripts/gpu_bundle.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${CAUSVID_BUILD_DIR:-$root/build}}"
out="$build/gpu_bundle"
for f in causvid causvid_tests; do
  [ -x "$build/$f" ] || { echo "gpu_bundle: $build/$f missing: build first (scripts/test.sh)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
cp "$build/causvid" "$build/causvid_tests" "$build/libcausvid_spm.so" "$out/bin/"
skip='/(libtorch[^/]*|libc10[^/]*|libcaffe2[^/]*|libshm[^/]*|libgomp[^/]*|libcu[^/]*|libnv[^/]*|libnccl[^/]*)\.so|/nvidia/|/torch/lib/|/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so'
for f in "$out"/bin/*; do
  ldd "$f" | awk '/=> \//{print $3}'
done | sort -u | grep -Ev "$skip" | while read -r lib; do cp -L "$lib" "$out/lib/"; done
strip --strip-unneeded "$out"/bin/* "$out"/lib/* 2>/dev/null || true
tar -C "$out" -cf - . | xz -T0 -6 > "$out.tar.xz.tmp"
mv "$out.tar.xz.tmp" "$out.tar.xz"
size=$(( $(stat -c %s "$out.tar.xz") / 1048576 ))
echo "gpu_bundle: $out: $(ls "$out/lib" | wc -l) libraries, $(du -sm "$out" | cut -f1) MiB;" \
     "carry $out.tar.xz: ${size} MiB"
[ "$size" -lt 64 ] || { echo "gpu_bundle: $out.tar.xz is over 64 MiB" >&2; exit 1; }
