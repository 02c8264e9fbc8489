#!/usr/bin/env bash
# scripts/load_check.sh: a long tiny training run (issue #14 "Load"): thousands of steps with
# frequent checkpoints and keep_latest, sampling the process's RSS, open file descriptors and
# the checkpoint directories every second. Prints a table and fails (exit 1) if the number of
# complete checkpoints ever exceeds keep_latest, more than one temporary one exists, or RSS /
# FDs grow by more than the given slack between the first and the last quarter of the run.
#   scripts/load_check.sh [STEPS=2000] [SAVE_ITERS=20] [KEEP=2]   (the toy teacher, random init)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
steps="${1:-2000}" save="${2:-20}" keep="${3:-2}"
bin="${CAUSVID_BIN:-$root/build/causvid}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" toy data --out "$work/data" --num 64 >"$work/data.log" 2>&1 ||
  { echo "load_check: toy data failed:"; cat "$work/data.log"; exit 1; }
"$bin" train --quiet --samples 0 --config "$root/configs/toy/teacher.yaml" \
  --set data_path="$work/data/latents_lmdb" --set dit_path=random --set output_path="$work/run" \
  --set max_iters="$steps" --set save_iters="$save" --set keep_latest="$keep" \
  --set batch_size=2 >"$work/train.log" 2>&1 &
pid=$!
echo "t_s rss_mib fds complete_ckpts tmp_ckpts" > "$work/samples"
set +e +o pipefail  # sampling races the process and its directories: a failed probe is a 0
t=0
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
  done_n=$(find "$work/run" -maxdepth 1 -name 'checkpoint_model_*' -type d 2>/dev/null | wc -l)
  tmp_n=$(find "$work/run" -maxdepth 1 -name '.checkpoint_model_*' -type d 2>/dev/null | wc -l)
  echo "$t $rss $fds $done_n $tmp_n" >> "$work/samples"
  sleep 1
  t=$((t + 1))
done
wait "$pid" || { echo "load_check: training failed:"; tail -20 "$work/train.log"; exit 1; }
python3 - "$work/samples" "$keep" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]).read().split("\n")[1:] if l.strip()]
keep = int(sys.argv[2])
rows = [r for r in rows if r[1] > 0]
q = max(1, len(rows) // 4)
first, last = rows[q:2 * q], rows[-q:]
mean = lambda rs, i: sum(r[i] for r in rs) / len(rs)
print(f"samples {len(rows)} (1/s); RSS MiB: 2nd quarter {mean(first, 1):.0f}, last quarter "
      f"{mean(last, 1):.0f}, max {max(r[1] for r in rows)}; FDs: {mean(first, 2):.1f} -> "
      f"{mean(last, 2):.1f}, max {max(r[2] for r in rows)}; complete checkpoints max "
      f"{max(r[3] for r in rows)} (keep_latest {keep}), temporary max {max(r[4] for r in rows)}")
bad = []
if max(r[3] for r in rows) > keep: bad.append("more complete checkpoints than keep_latest")
if max(r[4] for r in rows) > 1: bad.append("more than one temporary checkpoint")
if mean(last, 1) > mean(first, 1) * 1.10 + 16: bad.append("RSS grew")
if mean(last, 2) > mean(first, 2) + 2: bad.append("file descriptors grew")
print("load_check: " + ("FAIL: " + "; ".join(bad) if bad else "OK"))
sys.exit(1 if bad else 0)
PY
