#!/usr/bin/env bash
# scripts/fuzz.sh TARGET [SECONDS]: one fuzz harness (fuzz/harness.h) for SECONDS (default
# $CAUSVID_FUZZ_SECONDS or 60): first every saved crash of fuzz/regressions/TARGET/ is
# replayed, then libFuzzer mutates from the seeds (fuzz/corpus/TARGET/) and, with
# CAUSVID_FUZZ_KEEP_CORPUS=1, the inputs earlier runs found (build/fuzz/work/TARGET/; else it
# starts afresh from the seeds). Exit 0 when nothing was found;
# a finding is saved under build/fuzz/artifacts/TARGET/ (copy it to fuzz/regressions/TARGET/
# once fixed). The ctest label `fuzz` runs this for every target (docs/fuzzing.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}"
secs="${2:-${CAUSVID_FUZZ_SECONDS:-60}}"
fuzz_dir="${CAUSVID_FUZZ_DIR:-$root/build/fuzz}"
bin="$fuzz_dir/causvid_fuzz"
[ -x "$bin" ] || { echo "scripts/fuzz.sh: $bin not built (needs clang; docs/fuzzing.md)" >&2; exit 1; }
seeds="$root/fuzz/corpus/$target"
[ -d "$seeds" ] || { echo "scripts/fuzz.sh: no seed corpus $seeds" >&2; exit 1; }
work="$fuzz_dir/work/$target"
art="$fuzz_dir/artifacts/$target"
# The inputs found by earlier runs are kept only on request: the ctest runs stay the same size.
[ -n "${CAUSVID_FUZZ_KEEP_CORPUS:-}" ] || rm -rf "$work"
mkdir -p "$work" "$art"
export CAUSVID_FUZZ_TARGET="$target"
# Leak checking is off (LibTorch and FFmpeg keep process-lifetime allocations, which LSan
# would report): leaks are not findings here. Options the caller sets come last and win.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
regs=("$root/fuzz/regressions/$target"/*)
if [ -e "${regs[0]}" ]; then
  echo "[fuzz] $target: replaying ${#regs[@]} saved crash inputs"
  "$bin" -runs=1 "${regs[@]}" >"$art/replay.log" 2>&1 || { tail -40 "$art/replay.log"; exit 1; }
fi
echo "[fuzz] $target: ${secs} s from $(ls "$seeds" | wc -l) seeds + $(ls "$work" | wc -l) saved inputs"
"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
  -artifact_prefix="$art/" -print_final_stats=1 "$work" "$seeds" >"$art/run.log" 2>&1 || {
  grep -v "^#[0-9]" "$art/run.log" | tail -60 || true
  grep -a "causvid fuzz finding" "$art/run.log" | tail -1 || true
  echo "[fuzz] $target: FINDING, input saved under $art/" >&2
  exit 1
}
grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^Done" "$art/run.log" | tr '\n' ' ' || true
echo
