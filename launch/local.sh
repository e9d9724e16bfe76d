#!/usr/bin/env bash
# Local CPU launcher: runs `lta` on this machine's CPU. The command only.
#
#   launch/local.sh [--dry-run] -- <lta command and gin flags>
# e.g. launch/local.sh -- pipeline   (the tiny end-to-end job)
# `lta` must be on PATH (make install, then . .venv/bin/activate).
# --help prints this.
set -euo pipefail

# The header above is the help: on stdout for --help, else on stderr.
usage() {
  local code=${1:-2}
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" |
    if [[ $code == 0 ]]; then cat; else cat >&2; fi
  exit "$code"
}
DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1; shift ;;
    --help|-h) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "local.sh: give the lta command, e.g. launch/local.sh -- pipeline" >&2; exit 2; }
CMD=(env JAX_PLATFORMS=cpu lta "$@")
if [[ $DRY_RUN == 1 ]]; then printf '%q ' "${CMD[@]}"; echo; else exec "${CMD[@]}"; fi
