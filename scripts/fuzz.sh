#!/usr/bin/env bash
# Fuzz the ONNX loader with libFuzzer for a while (default 60 s).
#   scripts/fuzz.sh [SECONDS]
# Seeds: every model of Debian's ONNX conformance data and qtune's own
# PyTorch exports. A crash, sanitizer report or leak fails the run and
# leaves the input that caused it in build-fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bash scripts/setup.sh --fuzz
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
for m in /usr/share/libonnx-testdata/data/{node,pytorch-converted}/*/model.onnx; do
  cp "$m" "$corpus/$(basename "$(dirname "$m")").onnx"
done
cp experiments/models/*.onnx "$corpus/"
mkdir -p build-fuzz/findings
echo "fuzz: $(ls "$corpus" | wc -l) seed models, ${secs} s"
log=build-fuzz/findings/last-run.log
rc=0
ASAN_OPTIONS=detect_leaks=1 ./build-fuzz/tests/fuzz/fuzz_onnx -max_total_time="$secs" \
  -rss_limit_mb=2048 -artifact_prefix=build-fuzz/findings/ -print_final_stats=1 \
  "$corpus" >"$log" 2>&1 || rc=$?
grep -E '^(Done|==[0-9]+==|SUMMARY|stat::number_of_executed_units|stat::peak_rss)' "$log" || true
if [ $rc != 0 ]; then
  echo "fuzz: FAILED (exit $rc); the log is $log, the input in build-fuzz/findings/" >&2
  exit 1
fi
echo "fuzz: no findings"
