#!/usr/bin/env bash
# Local CPU launcher: runs `lta` on this machine's CPU, as one process or as
# N processes of one multi-process job. The command only.
#
#   launch/local.sh [--dry-run] [--processes N] -- <lta command and gin flags>
# e.g. launch/local.sh -- pipeline   (the tiny end-to-end job)
#      launch/local.sh --processes 2 -- train --gin_file=...
# With N > 1 each process gets LTA_COORDINATOR_ADDRESS (127.0.0.1 and a free
# port, or LTA_COORDINATOR_PORT), LTA_NUM_PROCESSES and LTA_PROCESS_ID
# (docs/scale.md). The launcher waits for all of them; when one fails it
# kills the others (each with its children) and exits with that process's
# code. SIGINT and SIGTERM are passed on to every process (they save and
# exit 75). `lta` must be on PATH (make install, then . .venv/bin/activate).
# --help prints this.
set -euo pipefail

# The header above is the help: on stdout for --help, else on stderr.
usage() {
  local code=${1:-2}
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" |
    if [[ $code == 0 ]]; then cat; else cat >&2; fi
  exit "$code"
}
DRY_RUN=0; PROCESSES=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1; shift ;;
    --processes) PROCESSES=${2:-}; shift 2 || shift ;;
    --help|-h) usage 0 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[[ $PROCESSES =~ ^[1-9][0-9]*$ ]] || {
  echo "local.sh: --processes '$PROCESSES' must be a positive integer" >&2; exit 2; }
[[ $# -ge 1 ]] || { echo "local.sh: give the lta command, e.g. launch/local.sh -- pipeline" >&2; exit 2; }
CMD=(env JAX_PLATFORMS=cpu lta "$@")
if [[ $PROCESSES == 1 ]]; then
  if [[ $DRY_RUN == 1 ]]; then printf '%q ' "${CMD[@]}"; echo; exit 0; fi
  exec "${CMD[@]}"
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=${LTA_COORDINATOR_PORT:-$(free_port)}
process_cmd() {  # the command of process $1
  PROCESS_CMD=(env "LTA_COORDINATOR_ADDRESS=127.0.0.1:$PORT"
               "LTA_NUM_PROCESSES=$PROCESSES" "LTA_PROCESS_ID=$1"
               "${CMD[@]:1}")
}
if [[ $DRY_RUN == 1 ]]; then
  for ((i = 0; i < PROCESSES; i++)); do
    process_cmd "$i"; printf '%q ' "${PROCESS_CMD[@]}"; echo
  done
  exit 0
fi

# Job control puts each process in its own process group: killing the group
# also ends what the process started.
set -m
PIDS=()
for ((i = 0; i < PROCESSES; i++)); do
  process_cmd "$i"; "${PROCESS_CMD[@]}" & PIDS+=("$!")
done
signal_all() {
  for pid in "${PIDS[@]}"; do kill "-$1" -- "-$pid" 2>/dev/null || true; done
}
# A killed process dies when next scheduled, after kill returns, and `wait`
# reaps only our children: wait (up to 10 s) until no member of the
# processes' groups is alive (zombies whose parent died may never be reaped).
wait_groups_gone() {
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)) && ps -A -o pgid=,stat= | awk -v groups=" ${PIDS[*]} " \
      'index(groups, " " $1 " ") && $2 !~ /^[ZX]/ {alive = 1} END {exit !alive}'; do
    sleep 0.05
  done
}
SIGNALLED=0; FORWARDED=0  # a signal since the last wait; any signal
trap 'SIGNALLED=1; FORWARDED=1; signal_all INT' INT
trap 'SIGNALLED=1; FORWARDED=1; signal_all TERM' TERM
declare -A RUNNING  # pid -> process id
for i in "${!PIDS[@]}"; do RUNNING[${PIDS[$i]}]=$i; done
FIRST_FAILURE=0
while [[ ${#RUNNING[@]} -gt 0 ]]; do
  FINISHED=""; CODE=0
  wait -n -p FINISHED "${!RUNNING[@]}" 2>/dev/null || CODE=$?
  if [[ -z ${FINISHED:-} ]]; then
    # A trapped signal interrupted the wait, or none is left to wait for.
    if [[ $SIGNALLED == 1 ]]; then SIGNALLED=0; continue; fi
    break
  fi
  ID=${RUNNING[$FINISHED]}; unset "RUNNING[$FINISHED]"
  if [[ $CODE != 0 && $FIRST_FAILURE == 0 ]]; then
    FIRST_FAILURE=$CODE
    # After a forwarded signal the others are saving: let them finish.
    [[ $FORWARDED == 0 ]] || continue
    echo "local.sh: process $ID of $PROCESSES exited with $CODE; killing the others" >&2
    signal_all KILL
    wait 2>/dev/null || true
    wait_groups_gone
    break
  fi
done
exit "$FIRST_FAILURE"
