#!/usr/bin/env bash
# launch/local.sh: start N ranks of a program on this machine, without Python or a scheduler.
# Sets the torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
# MASTER_ADDR, MASTER_PORT) that core::parse_dist_env reads. Rank output is prefixed with
# "[rank R]". Exits with the first non-zero rank status; when a rank fails, the others get
# --grace seconds to exit (they fail their next collective) and are then killed.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch/local.sh [-n N] [--port P] [--addr A] [--grace S] [--] PROGRAM [ARGS...]
  -n, --nproc N   ranks to start (default 2)
  --port P        MASTER_PORT (default: a random free port)
  --addr A        MASTER_ADDR (default 127.0.0.1; IPv6 as ::1)
  --grace S       seconds the other ranks get after one fails (default 60)
  PROGRAM ARGS    run as-is by every rank, e.g. build/causvid train --config c.yaml
example: launch/local.sh -n 2 build/causvid train --config configs/tiny_dmd.yaml
USAGE
}

nproc=2; port=""; addr=127.0.0.1; grace=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -n|--nproc|--nproc_per_node) nproc="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --addr) addr="$2"; shift 2 ;;
    --grace) grace="$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "local.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { usage >&2; exit 2; }
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || { echo "local.sh: -n: got '$nproc', want a positive integer" >&2; exit 2; }

if [[ -z "$port" ]]; then
  for _ in $(seq 50); do
    cand=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$cand") 2>/dev/null; then port=$cand; break; fi
  done
fi

set -m  # each rank in its own process group, so a kill reaches the whole pipeline
pids=()
for ((r = 0; r < nproc; r++)); do
  (
    export RANK=$r WORLD_SIZE=$nproc LOCAL_RANK=$r LOCAL_WORLD_SIZE=$nproc GROUP_RANK=0
    export MASTER_ADDR="$addr" MASTER_PORT="$port"
    set +e
    "$@" 2>&1 | sed -u "s/^/[rank $r] /"
    exit "${PIPESTATUS[0]}"
  ) &
  pids+=($!)
done
set +m

status=0
deadline=""
while :; do
  alive=0
  for i in "${!pids[@]}"; do
    p=${pids[$i]}
    [[ -n "$p" ]] || continue
    if kill -0 "$p" 2>/dev/null; then alive=1; continue; fi
    set +e; wait "$p"; rc=$?; set -e
    pids[$i]=""
    if [[ $rc -ne 0 && $status -eq 0 ]]; then
      status=$rc
      deadline=$((SECONDS + grace))
      echo "local.sh: a rank exited with status $rc; the others get ${grace}s" >&2
    fi
  done
  [[ $alive -eq 1 ]] || break
  if [[ -n "$deadline" && $SECONDS -ge $deadline ]]; then
    for p in "${pids[@]}"; do [[ -z "$p" ]] || kill -- "-$p" 2>/dev/null || true; done
    deadline=""
  fi
  sleep 0.2
done
exit "$status"
