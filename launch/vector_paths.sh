#!/usr/bin/env bash
# Prints the TASK_VECTORS and LANGUAGE_VECTORS gin bindings for the run
# layout of docs/experiments.md ($RUNS/task_xlsum_<lang>/adapter,
# $RUNS/lang_<lang>/adapter), for the gin/experiments/table*.gin files:
#   launch/vector_paths.sh $RUNS [--krona] > $RUNS/vectors.gin
# --help prints this.
set -euo pipefail

# The header above is the help: on stdout for --help, else on stderr.
usage() {
  local code=${1:-2}
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" |
    if [[ $code == 0 ]]; then cat; else cat >&2; fi
  exit "$code"
}
[[ ${1:-} == --help || ${1:-} == -h ]] && usage 0
[[ $# -ge 1 ]] || { echo "usage: launch/vector_paths.sh RUNS_DIR [--krona]" >&2; exit 2; }
RUNS=$1; TASK_PREFIX=task_xlsum
[[ ${2:-} == --krona ]] && TASK_PREFIX=task_xlsum_krona
SEEN="ar bn en id ja ko ru sw te th tr"
LANGS="$SEEN mr gu zh ne pt si so vi yo uk fa fi"
printf 'TASK_VECTORS = {'
for l in $SEEN; do printf "'%s': '%s/%s_%s/adapter', " "$l" "$RUNS" "$TASK_PREFIX" "$l"; done
printf '}\nLANGUAGE_VECTORS = {'
for l in $LANGS; do printf "'%s': '%s/lang_%s/adapter', " "$l" "$RUNS" "$l"; done
printf '}\n'
