#!/usr/bin/env bash
# Prints the virtual environment that holds the pinned torch wheel (scripts/torch_pin.env):
#   ${CAUSVID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causvid}/torch-<version>
# A fresh clone on the same machine reuses it; `CAUSVID_TORCH_VENV` overrides the path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=torch_pin.env
source "$here/torch_pin.env"
if [ -n "${CAUSVID_TORCH_VENV:-}" ]; then echo "$CAUSVID_TORCH_VENV"; exit 0; fi
cache="${CAUSVID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causvid}"
echo "$cache/torch-$CAUSVID_TORCH_VERSION"
