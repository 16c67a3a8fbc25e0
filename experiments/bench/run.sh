#!/bin/bash
# run.sh -- issue #8's benchmark suite: qtune against a PyTorch peer, in one
# command. Builds qtbench (qtune's side), then for each environment setting
# runs suite.py measure (qtune and the peer alternately, A B A B), then
# suite.py report, which writes the JSON and the Markdown table (the command
# is at its top). See experiments/README.md, "bench/".
#
#   bash experiments/bench/run.sh                 # full run, both settings
#   bash experiments/bench/run.sh --quick         # smoke run, < 2 minutes
#   bash experiments/bench/run.sh --reps 7 --settings auto
#
# Exit status: 0 whatever the speeds; 1 when a correctness check fails (the
# peer's fp32 logits or top-1 differ from qtune's, a quantized case's top-1
# differs beyond its tolerance, a bit-true layer differs in any output) or
# something breaks; 2 for a bad option.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CMD="bash experiments/bench/run.sh${*:+ $*}"

usage() {
    cat <<EOF
usage: bash experiments/bench/run.sh [options]
  --quick             smoke run (< 2 min): the current OPENBLAS_CORETYPE only,
                      512 test images, 1 repetition, small intrinsic/training/
                      tuning cases; writes bench_suite_quick.{json,md}
  --reps R            repetitions per case (default 5; quick 1)
  --settings LIST     comma-separated: haswell (OPENBLAS_CORETYPE=Haswell),
                      auto (OPENBLAS_CORETYPE unset: OpenBLAS's own detection),
                      current (the environment as it is); default haswell,auto
                      (quick: current)
  --models LIST       default mlp,lenet5,resnet
  --limit N           test images (default 10000, the full test set)
  --threads T         threads for both sides (default 2)
  --wait-policy P     OMP_WAIT_POLICY for both sides (default passive)
  --out PREFIX        output files PREFIX.json and PREFIX.md (default
                      experiments/results/bench_suite, quick: ..._quick)
  --build-dir DIR     CMake build directory (default build)
  --no-build          do not (re)build qtbench
  --keep-tmp          keep the exported models and data (printed)
  -- ARGS             passed on to suite.py measure (e.g. --train-images 2000)
EOF
}

QUICK=0 REPS="" SETTINGS="" MODELS="mlp,lenet5,resnet" LIMIT=10000 THREADS=2
WAIT=passive OUT="" BUILD="$REPO/build" DOBUILD=1 KEEP="" EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS="$2"; shift ;;
        --settings) SETTINGS="$2"; shift ;;
        --models) MODELS="$2"; shift ;;
        --limit) LIMIT="$2"; shift ;;
        --threads) THREADS="$2"; shift ;;
        --wait-policy) WAIT="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --build-dir) BUILD="$2"; shift ;;
        --no-build) DOBUILD=0 ;;
        --keep-tmp) KEEP="--keep-tmp" ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA=("$@"); break ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

PY=/usr/bin/python3    # Debian's python3-torch; a pyenv python on PATH has no torch
if ! $PY -c "import torch, numpy" 2>/dev/null; then
    echo "run.sh: $PY cannot import torch and numpy (apt-get install python3-torch)" >&2
    exit 1
fi

if [ "$QUICK" = 1 ]; then
    REPS="${REPS:-1}"
    SETTINGS="${SETTINGS:-current}"
    OUT="${OUT:-$REPO/experiments/results/bench_suite_quick}"
    [ "$LIMIT" = 10000 ] && LIMIT=512
    MODE_ARGS=(--intr-macs 2e7 --intr-min 4 --layer-images 16 --train-images 256
               --strategies bisection --tune-all-variants 0 --tune-val-limit 500)
else
    REPS="${REPS:-5}"
    SETTINGS="${SETTINGS:-haswell,auto}"
    OUT="${OUT:-$REPO/experiments/results/bench_suite}"
    MODE_ARGS=()
fi
mkdir -p "$(dirname "$OUT")"

if [ "$DOBUILD" = 1 ]; then
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
    cmake --build "$BUILD" --target qtbench -j"$THREADS" > /dev/null
fi
QTBENCH="$BUILD/experiments/qtbench"
[ -x "$QTBENCH" ] || { echo "run.sh: $QTBENCH not built" >&2; exit 1; }

WORK="$(mktemp -d /tmp/bench_suite.XXXXXX)"
PARTS=()
ORIG_CORETYPE="${OPENBLAS_CORETYPE-__unset__}"
IFS=',' read -r -a SET_LIST <<< "$SETTINGS"
for s in "${SET_LIST[@]}"; do
    case "$s" in
        haswell) CT=Haswell ;;
        auto) CT=__unset__ ;;
        current) CT="$ORIG_CORETYPE" ;;
        *) echo "run.sh: unknown setting $s (haswell, auto, current)" >&2; exit 2 ;;
    esac
    name="$s"
    [ "$s" = current ] && name="current (OPENBLAS_CORETYPE=${ORIG_CORETYPE/__unset__/unset})"
    echo "== setting: $name" >&2
    if ! (
        if [ "$CT" = __unset__ ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE="$CT"; fi
        export OMP_WAIT_POLICY="$WAIT" OMP_NUM_THREADS="$THREADS"
        cd "$REPO"
        $PY "$HERE/suite.py" measure --setting "$name" --out "$WORK/$s.json" \
            --qtbench "$QTBENCH" --models "$MODELS" --limit "$LIMIT" --reps "$REPS" \
            --threads "$THREADS" $KEEP "${MODE_ARGS[@]}" "${EXTRA[@]}"
    ); then
        echo "run.sh: setting $name failed; its JSON (if written) is in $WORK" >&2
        exit 1
    fi
    PARTS+=("$WORK/$s.json")
done
[ "$QUICK" = 1 ] && CMD="$CMD   (QUICK MODE: a smoke run, not figures for the targets)"
$PY "$HERE/suite.py" report --json "$OUT.json" --md "$OUT.md" --command "$CMD" "${PARTS[@]}"
rm -rf "$WORK"
cat "$OUT.md"
