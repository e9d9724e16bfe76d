#!/usr/bin/env bash
# Local CPU launcher: runs `lta` on this machine's CPU. The command only.
#
#   launch/local.sh [--dry-run] -- <lta command and gin flags>
# e.g. launch/local.sh -- pipeline   (the tiny end-to-end job)
set -euo pipefail

DRY_RUN=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { echo "local.sh: give the lta command, e.g. launch/local.sh -- pipeline" >&2; exit 2; }
CMD=(env JAX_PLATFORMS=cpu lta "$@")
if [[ $DRY_RUN == 1 ]]; then printf '%q ' "${CMD[@]}"; echo; else exec "${CMD[@]}"; fi
