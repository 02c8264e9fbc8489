#!/usr/bin/env bash
# scripts/dead_rank_check.sh: a dead rank never hangs the job (issue #14), measured on a real
# 2-rank `causvid train` (Gloo on loopback, launch/local.sh, the toy teacher widened so that a
# checkpoint write takes a moment). One rank is killed with SIGKILL
#   startup      rank 1, as soon as its process exists (before the rendezvous),
#   collective   rank 1, in the middle of training (rank 0 is in a collective within a step),
#   checkpoint   rank 1, as soon as the temporary checkpoint directory appears,
#   store-host   rank 0 (which hosts the store), in the middle of training,
# and the script reports how long the survivor took to exit after the kill, the job's exit
# status and the survivor's error. It fails if the job exits 0, the survivor does not name
# the failure, or takes longer than the start-up timeout + 15 s.   scripts/dead_rank_check.sh [STARTUP_TIMEOUT_S=20]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
startup="${1:-20}"
bin="${CAUSVID_BIN:-$root/build/causvid}"
work="$(mktemp -d)"
trap 'pkill -9 -f "$work/" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
"$bin" toy data --out "$work/data" --num 64 >"$work/data.log" 2>&1 ||
  { echo "dead_rank_check: toy data failed"; cat "$work/data.log"; exit 1; }

rank_pid() {  # the `causvid train` process of rank $1 of this run
  local p
  for p in $(pgrep -f "output_path=$work/$2" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "RANK=$1" &&
       tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "^$bin train"; then
      echo "$p"; return 0
    fi
  done
  return 1
}

now() { date +%s.%N; }
fail=0
printf '%-11s %-44s %8s %4s  %s\n' scenario "kill moment" "exit_s" rc "the survivor's error"
for scenario in startup collective checkpoint store-host; do
  victim=1 survivor=0
  [ "$scenario" = store-host ] && victim=0 survivor=1
  run="run_$scenario"
  save=1000
  [ "$scenario" = checkpoint ] && save=4
  CAUSVID_STARTUP_TIMEOUT="$startup" OMP_NUM_THREADS=1 "$root/launch/local.sh" -n 2 --grace 600 -- \
    "$bin" train --quiet --samples 0 --config "$root/configs/toy/teacher.yaml" \
    --set data_path="$work/data/latents_lmdb" --set dit_path=random \
    --set output_path="$work/$run" --set max_iters=400 --set save_iters=$save \
    --set keep_latest=1 --set batch_size=2 --set model_dim=256 --set model_ffn_dim=1024 \
    --set model_num_layers=8 --set num_workers=0 >"$work/$scenario.log" 2>&1 &
  launcher=$!
  moment=""
  t_kill=""
  for _ in $(seq 6000); do  # 10 ms polls, up to 60 s
    if p=$(rank_pid "$victim" "$run"); then
      case "$scenario" in
        startup) moment="at process start (before the rendezvous)" ;;
        collective|store-host) [ "$(cat "$work/$run/metrics.jsonl" 2>/dev/null | wc -l)" -ge 5 ] &&
                      moment="after step 5 (mid-training)" ;;
        checkpoint) compgen -G "$work/$run/.checkpoint_model_*" >/dev/null &&
                      moment="temporary checkpoint dir present" ;;
      esac
      if [ -n "$moment" ]; then kill -9 "$p"; t_kill=$(now); break; fi
    fi
    sleep 0.01
  done
  # Never reached the kill moment: stop the run instead of waiting for all its steps.
  [ -n "$t_kill" ] || pkill -9 -f "output_path=$work/$run" 2>/dev/null || true
  rc=0
  wait "$launcher" || rc=$?
  t_end=$(now)
  if [ -z "$t_kill" ]; then
    echo "dead_rank_check: $scenario: never reached the kill moment"; tail -5 "$work/$scenario.log"
    fail=1; continue
  fi
  dt=$(python3 -c "print(f'{$t_end - $t_kill:.2f}')")
  msg=$(grep -a "^\[rank $survivor\] \[cv\] [0-9:]* $survivor E " "$work/$scenario.log" | head -1 |
        sed 's/^.* E [a-z_]*\.cpp:[0-9]* //' | cut -c1-160 || true)
  printf '%-11s %-44s %8s %4s  %s\n' "$scenario" "$moment" "$dt" "$rc" "$msg"
  if [ "$rc" -eq 0 ] || [ -z "$msg" ] || ! python3 -c "import sys; sys.exit(0 if $dt <= $startup + 15 else 1)"; then
    echo "dead_rank_check: $scenario: FAILED (full log follows)"; tail -30 "$work/$scenario.log"; fail=1
  fi
done
exit "$fail"
