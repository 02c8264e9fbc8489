#!/usr/bin/env bash
# launch/mpirun.sh: run a native program as N ranks under OpenMPI's mpirun. Each rank reads
# OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE (core::parse_dist_env); MPI only starts the
# processes: the rendezvous is our TCPStore at MASTER_ADDR:MASTER_PORT (exported to all).
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: launch/mpirun.sh [-n N] [--hostfile FILE] [--master_addr A] [--master_port P]
                        [--] PROGRAM [ARGS...]
  -n N              total ranks (default 2)
  --hostfile FILE   OpenMPI hostfile (ranks fill hosts in order; first host = master)
  --master_addr A   rank 0's host (default: first host of the hostfile, else 127.0.0.1)
  --master_port P   rendezvous port (default 29500)
  MPIRUN_ARGS       environment: extra mpirun flags (e.g. "--bind-to none", or
                    "--oversubscribe" for more ranks than cores on one machine)
  Run as root (containers), --allow-run-as-root is added: OpenMPI refuses root otherwise.
example: launch/mpirun.sh -n 16 --hostfile hosts -- build/causvid train --config c.yaml
USAGE
}

n=2; hostfile=""; addr=""; port=29500
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -n|-np) n="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --master_addr) addr="$2"; shift 2 ;;
    --master_port) port="$2"; shift 2 ;;
    --) shift; break ;;
    -*) echo "mpirun.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { usage >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun.sh: mpirun not found (install OpenMPI)" >&2; exit 2; }
if [[ -z "$addr" ]]; then
  if [[ -n "$hostfile" ]]; then addr="$(grep -v '^\s*#' "$hostfile" | awk 'NF{print $1; exit}')"; else addr=127.0.0.1; fi
fi
hf=(); [[ -z "$hostfile" ]] || hf=(--hostfile "$hostfile")
root=(); [[ "$(id -u)" != 0 ]] || root=(--allow-run-as-root)
# shellcheck disable=SC2086
exec mpirun "${root[@]}" -np "$n" "${hf[@]}" ${MPIRUN_ARGS:-} -x MASTER_ADDR="$addr" -x MASTER_PORT="$port" "$@"
