#!/usr/bin/env bash
# The README's main command: install what is missing, build, run the main job on its
# embedded default. Extra arguments go to `causvid smoke`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
build="${CAUSVID_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target causvid
"$build/causvid" smoke "$@"
