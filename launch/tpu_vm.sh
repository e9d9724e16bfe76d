#!/usr/bin/env bash
# Cloud TPU VM launcher: the gcloud commands only, no hidden logic.
#
#   launch/tpu_vm.sh create --name N --zone Z [--accelerator v4-32] [--version tpu-ubuntu2204-base]
#   launch/tpu_vm.sh setup  --name N --zone Z --repo URL [--branch B]
#   launch/tpu_vm.sh run    --name N --zone Z -- <lta command and gin flags>
#   launch/tpu_vm.sh logs   --name N --zone Z
#   launch/tpu_vm.sh delete --name N --zone Z
# Add --dry-run to print the commands instead of running them. `run` starts
# the job on every worker (JAX's distributed init on), logging to
# ~/lta_run.log there; MODEL_DIR and data dirs may be gs:// paths.
set -euo pipefail

usage() { sed -n '2,12p' "$0"; exit 2; }
[[ $# -ge 1 ]] || usage
ACTION=$1; shift
NAME=""; ZONE=""; ACCELERATOR="v4-32"; VERSION="tpu-ubuntu2204-base"
REPO=""; BRANCH="main"; DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --accelerator) ACCELERATOR=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --repo) REPO=$2; shift 2 ;;
    --branch) BRANCH=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; break ;;
    *) echo "tpu_vm.sh: unknown flag $1" >&2; usage ;;
  esac
done
[[ -n $NAME && -n $ZONE ]] || { echo "tpu_vm.sh: --name and --zone are required" >&2; exit 2; }

run() {
  if [[ $DRY_RUN == 1 ]]; then printf '%q ' "$@"; echo; else "$@"; fi
}

SSH=(gcloud compute tpus tpu-vm ssh "$NAME" --zone="$ZONE" --worker=all)
case $ACTION in
  create)
    run gcloud compute tpus tpu-vm create "$NAME" --zone="$ZONE" \
      --accelerator-type="$ACCELERATOR" --version="$VERSION" ;;
  setup)
    [[ -n $REPO ]] || { echo "tpu_vm.sh setup: --repo URL (the lta git repository) is required" >&2; exit 2; }
    run "${SSH[@]}" --command="git clone --branch $BRANCH $REPO lta && cd lta && python3 -m pip install -e '.[tpu]'" ;;
  run)
    [[ $# -ge 1 ]] || { echo "tpu_vm.sh run: give the lta command after --" >&2; exit 2; }
    printf -v LTA_ARGS '%q ' "$@"
    run "${SSH[@]}" --command="cd lta && nohup python3 -m lta.main.cli ${LTA_ARGS}--gin.initialize_distributed.enabled=True > ~/lta_run.log 2>&1 &" ;;
  logs)
    run "${SSH[@]}" --command="tail -n 100 -f ~/lta_run.log" ;;
  delete)
    run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet ;;
  *) echo "tpu_vm.sh: unknown action $ACTION" >&2; usage ;;
esac
