#!/usr/bin/env bash
# Installs what causvid-cpp needs, only what is missing; idempotent and quiet when all is there.
#  1. Debian packages (apt-get; needs root or sudo).
#  2. LibTorch: PyPI's torch wheel of the version pinned in scripts/torch_pin.env (CUDA-enabled,
#     runs on CPU too; ~4.7 GB with its CUDA libraries), installed into a virtual environment
#     in a versioned cache outside the clone (scripts/torch_env.sh prints where), so a fresh
#     clone on the same machine reuses it. It is built under a temporary name and renamed when
#     complete, so an interrupted download is never taken for an installed torch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/torch_pin.env"

pkgs=(cmake ninja-build ccache g++ libgloo-dev liblmdb-dev libyaml-cpp-dev libavcodec-dev
      libavformat-dev libavutil-dev libswscale-dev libabsl-dev libgtest-dev
      libsentencepiece-dev nlohmann-json3-dev libcli11-dev ffmpeg clang libclang-rt-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
command -v python3 >/dev/null || pkgs+=(python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$(bash "$here/torch_env.sh")"
want="$CAUSVID_TORCH_VERSION"
have_torch() {
  "$1/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$want')" \
    2>/dev/null
}
if ! have_torch "$venv"; then
  echo "[setup] torch $want -> $venv (one-time download, several GB)" >&2
  start=$(date +%s)
  mkdir -p "$(dirname "$venv")"
  tmp="$venv.tmp.$$"
  rm -rf "$tmp"
  python3 -m venv "$tmp"
  "$tmp/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check \
    "torch==$want" numpy
  have_torch "$tmp" || { echo "[setup] torch $want did not import from $tmp" >&2; exit 1; }
  rm -rf "$venv"
  mv "$tmp" "$venv"
  echo "[setup] torch $want installed in $(( $(date +%s) - start )) s," \
       "$(du -sh "$venv" | cut -f1) on disk" >&2
fi
