#!/usr/bin/env bash
# GPU launcher: one node, or one process per node of a multi-node job
# through JAX's distributed initialisation. The commands only.
#
#   launch/gpu.sh [--dry-run] -- <lta command and gin flags>
#   launch/gpu.sh --num_nodes 2 --node_rank 0 --coordinator host0:1234 \
#     [--dry-run] -- <lta command and gin flags>      # on node 0
#   ... the same with --node_rank 1 on node 1.
#   srun --nodes=2 --ntasks=16 --gpus-per-task=1 launch/gpu.sh \
#     [--dry-run] -- <lta command and gin flags>      # under SLURM
# Under srun with several tasks there is one process per task, and
# lta.partitioning reads SLURM_STEP_NODELIST, SLURM_NTASKS and SLURM_PROCID
# itself (docs/scale.md); gpu.sh passes them on unchanged, and --num_nodes
# is refused there.
# Otherwise every GPU of a node is used by its one process. MODEL_DIR must be shared
# by all nodes (a network filesystem or gs://). Install once per node, then
# activate the venv (`lta` must be on PATH):
#   make install && .venv/bin/python -m pip install -e '.[gpu]'
# make install is the CPU-tested lock (requirements/lock.txt); the [gpu]
# extra adds the CUDA 12 plugin and NVIDIA libraries for the locked jax
# version (not hash-locked). --help prints this.
set -euo pipefail

# The header above is the help: on stdout for --help, else on stderr.
usage() {
  local code=${1:-2}
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" |
    if [[ $code == 0 ]]; then cat; else cat >&2; fi
  exit "$code"
}
NUM_NODES=1; NODE_RANK=0; COORDINATOR=""; DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --num_nodes) NUM_NODES=$2; shift 2 ;;
    --node_rank) NODE_RANK=$2; shift 2 ;;
    --coordinator) COORDINATOR=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage 0 ;;
    --) shift; break ;;
    *) echo "gpu.sh: unknown flag $1" >&2; usage ;;
  esac
done
[[ $# -ge 1 ]] || { echo "gpu.sh: give the lta command after --" >&2; exit 2; }

if [[ ${SLURM_NTASKS:-1} != 1 && $NUM_NODES != 1 ]]; then
  echo "gpu.sh: under srun (SLURM_NTASKS=$SLURM_NTASKS) each task finds its place from SLURM; drop --num_nodes" >&2; exit 2
fi
DIST=()
if [[ $NUM_NODES -gt 1 ]]; then
  [[ -n $COORDINATOR ]] || { echo "gpu.sh: --coordinator host:port is required with --num_nodes > 1" >&2; exit 2; }
  DIST=(--gin.initialize_distributed.enabled=True
        "--gin.initialize_distributed.coordinator_address=\"$COORDINATOR\""
        "--gin.initialize_distributed.num_processes=$NUM_NODES"
        "--gin.initialize_distributed.process_id=$NODE_RANK")
fi
CMD=(env JAX_PLATFORMS=cuda lta "$@" "${DIST[@]}")
if [[ $DRY_RUN == 1 ]]; then printf '%q ' "${CMD[@]}"; echo; else exec "${CMD[@]}"; fi
