#!/usr/bin/env bash
# launch/torchrun.sh: run a native program under torchrun (torch.distributed.run --no_python),
# single- or multi-node. torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
# GROUP_RANK, MASTER_ADDR, MASTER_PORT, which core::parse_dist_env reads.
# The torchrun used is the pinned torch's (scripts/torch_env.sh: `python -m torch.distributed.run`
# from the virtual environment scripts/setup.sh made), so launcher and LibTorch match.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch/torchrun.sh [--nnodes N] [--nproc_per_node P] [--node_rank R]
                          [--rdzv_endpoint HOST:PORT] [--rdzv_id ID] [--log_dir DIR]
                          [--] PROGRAM [ARGS...]
  --nnodes N            nodes (default 1; > 1 needs --rdzv_endpoint, run once per node)
  --nproc_per_node P    ranks per node (default 1)
  --node_rank R         this node (optional with c10d rendezvous)
  --rdzv_endpoint H:P   rendezvous host:port on the first node (IPv6 as [::1]:29500)
  --rdzv_id ID          job id shared by all nodes (default causvid)
  --log_dir DIR         per-rank logs (torchrun's --log_dir)
  TORCHRUN              environment: the torchrun command (default: the pinned torch's
                        <venv>/bin/python -m torch.distributed.run, else torchrun on PATH)
example (2 nodes x 8): launch/torchrun.sh --nnodes 2 --nproc_per_node 8 \
    --rdzv_endpoint node01:29500 -- build/causvid train --config configs/wan_causal_dmd.yaml
USAGE
}

nnodes=1; nproc=1; node_rank=""; endpoint=""; rdzv_id=causvid; log_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --nnodes) nnodes="$2"; shift 2 ;;
    --nproc_per_node|--nproc-per-node) nproc="$2"; shift 2 ;;
    --node_rank|--node-rank) node_rank="$2"; shift 2 ;;
    --rdzv_endpoint|--rdzv-endpoint) endpoint="$2"; shift 2 ;;
    --rdzv_id|--rdzv-id) rdzv_id="$2"; shift 2 ;;
    --log_dir|--log-dir) log_dir="$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "torchrun.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { usage >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(bash "$here/../scripts/torch_env.sh" 2>/dev/null || true)"
if [[ -n "${TORCHRUN:-}" ]]; then
  read -r -a trun <<<"$TORCHRUN"
elif [[ -n "$venv" && -x "$venv/bin/python" ]]; then
  trun=("$venv/bin/python" -m torch.distributed.run)
elif command -v torchrun >/dev/null 2>&1; then
  trun=(torchrun)
else
  echo "torchrun.sh: no torchrun: run scripts/setup.sh (installs the pinned torch) or set TORCHRUN" >&2
  exit 2
fi
extra=()
[[ -z "$log_dir" ]] || extra+=(--log_dir "$log_dir")

args=(--nnodes "$nnodes" --nproc_per_node "$nproc")
if [[ "$nnodes" == 1 && -z "$endpoint" ]]; then
  args+=(--standalone)
else
  [[ -n "$endpoint" ]] || { echo "torchrun.sh: --nnodes $nnodes needs --rdzv_endpoint HOST:PORT" >&2; exit 2; }
  args+=(--rdzv_backend c10d --rdzv_endpoint "$endpoint" --rdzv_id "$rdzv_id")
  [[ -z "$node_rank" ]] || args+=(--node_rank "$node_rank")
fi
exec "${trun[@]}" "${args[@]}" "${extra[@]}" --no_python "$@"
