#!/usr/bin/env bash
# The README's main command: install what is missing, build, run the main job on its
# embedded default: the CPU toy pipeline (`causvid toy run`: toy data, the shipped toy
# teacher, bidirectional DMD, ODE pairs, causal ODE, causal DMD, then the metric table).
# Extra arguments go to `causvid toy run` (e.g. --teacher train, --out DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
build="${CAUSVID_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target causvid
cd "$root"
# Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads made
# these small models 5-20x slower; on an idle machine the cost is small.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
"$build/causvid" toy run --out "${CAUSVID_TOY_OUT:-outputs/toy}" "$@"
