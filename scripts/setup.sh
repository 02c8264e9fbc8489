#!/usr/bin/env bash
# Installs the Debian packages causvid-cpp needs, only those that are missing.
# Idempotent and quiet when everything is already there. Needs root (apt-get).
set -euo pipefail
pkgs=(cmake ninja-build ccache g++ libtorch-dev libgloo-dev libopenblas0-openmp
      liblmdb-dev libyaml-cpp-dev libavcodec-dev libavformat-dev libavutil-dev
      libswscale-dev libabsl-dev libgtest-dev libsentencepiece-dev nlohmann-json3-dev
      python3-torch ffmpeg)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "[setup] installing: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "[setup] done" >&2
