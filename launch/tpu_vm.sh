#!/usr/bin/env bash
# Cloud TPU VM launcher: the gcloud commands only, no hidden logic.
#
#   launch/tpu_vm.sh create --name N --zone Z [--accelerator v4-32] [--version tpu-ubuntu2204-base]
#   launch/tpu_vm.sh setup  --name N --zone Z --repo URL [--branch B] [--python python3.11]
#   launch/tpu_vm.sh run    --name N --zone Z -- <lta command and gin flags>
#   launch/tpu_vm.sh logs   --name N --zone Z
#   launch/tpu_vm.sh delete --name N --zone Z
# Add --dry-run to print the commands instead of running them; --help prints
# this. `setup` clones lta on every worker, installs Python 3.11 (the image's
# python3 is 3.10; jax 0.10 and numpy 2.4 need 3.11 or newer), makes ~/lta/
# .venv from requirements/lock.txt (make install) and adds the [tpu] extra
# (libtpu for the locked jax). `run` starts the job with that venv on every
# worker (JAX's distributed init on), logging to ~/lta_run.log there;
# MODEL_DIR and data dirs may be gs:// paths.
set -euo pipefail

# The header above is the help: on stdout for --help, else on stderr.
usage() {
  local code=${1:-2}
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" |
    if [[ $code == 0 ]]; then cat; else cat >&2; fi
  exit "$code"
}
[[ $# -ge 1 ]] || usage
[[ $1 == --help || $1 == -h ]] && usage 0
ACTION=$1; shift
NAME=""; ZONE=""; ACCELERATOR="v4-32"; VERSION="tpu-ubuntu2204-base"
REPO=""; BRANCH="main"; PYTHON="python3.11"; DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) NAME=$2; shift 2 ;;
    --zone) ZONE=$2; shift 2 ;;
    --accelerator) ACCELERATOR=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --repo) REPO=$2; shift 2 ;;
    --branch) BRANCH=$2; shift 2 ;;
    --python) PYTHON=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage 0 ;;
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
    run "${SSH[@]}" --command="git clone --branch $BRANCH $REPO lta && cd lta && sudo apt-get update -qq && sudo apt-get install -y -qq $PYTHON $PYTHON-venv && make PYTHON=$PYTHON install && .venv/bin/python -m pip install --quiet --no-build-isolation -e '.[tpu]'" ;;
  run)
    [[ $# -ge 1 ]] || { echo "tpu_vm.sh run: give the lta command after --" >&2; exit 2; }
    printf -v LTA_ARGS '%q ' "$@"
    run "${SSH[@]}" --command="cd lta && nohup .venv/bin/python -m lta.cli.main ${LTA_ARGS}--gin.initialize_distributed.enabled=True > ~/lta_run.log 2>&1 &" ;;
  logs)
    run "${SSH[@]}" --command="tail -n 100 -f ~/lta_run.log" ;;
  delete)
    run gcloud compute tpus tpu-vm delete "$NAME" --zone="$ZONE" --quiet ;;
  *) echo "tpu_vm.sh: unknown action $ACTION" >&2; usage ;;
esac
