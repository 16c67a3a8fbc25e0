#!/usr/bin/env bash
# The main job: install what is missing, build, and run the most complete
# thing qtune does today: the number formats' speed; the trained zoo
# checkpoints evaluated on the Fashion-MNIST test set with one format
# everywhere (weights, biases and every layer's output), from fp32 down to
# 4-bit floats, and the same for the LeNet-5 trained and exported by
# PyTorch (ONNX); then the daemon: qtuned started on a state directory
# under build/, a tuning job on LeNet-5 (r = 0.99, hybrid strategy)
# submitted to it and watched, its answer and Pareto front printed and
# plotted (build/pareto.svg), the daemon stopped. Every evaluation is kept
# in the daemon's SQLite store (build/qtuned-state/qtune.db): run it again
# and the job is answered from there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
q=./build/api/qtune

echo
echo "== number formats: quantizing 2 M floats (elements/s beside memcpy) =="
./build/experiments/bench_quant --quick --json build/bench_quant.json

echo
echo "== trained models under one format everywhere (test set, 10000 images) =="
printf '%-14s %-10s %6s  %s\n' model format bits result
for m in experiments/models/*.qtck experiments/models/lenet5_torch.onnx; do
  name=$(basename "$m"); name=${name%.*}
  for f in none bf16 fp16 fp8e5m2 fp8e4m3 mxfp8 mxfp6 mxfp4 'float<4,e2,b1,finite>'; do
    cfg="{\"default\":{\"weights\":\"$f\",\"bias\":\"$f\",\"output\":\"$f\"}}"
    bits=$($q format "$f" | awk '$1 == "bits" {print $2}')
    res=$($q eval "$m" --split test --config "$cfg" | sed 's/.*: //')
    printf '%-14s %-10s %6s  %s\n' "$name" "$f" "$bits" "$res"
  done
done

echo
echo "== the daemon: qtuned on build/qtuned-state, models from experiments/models =="
state=build/qtuned-state
$q server start --state $state -- --models experiments/models
trap '$q server stop --state $state >/dev/null 2>&1 || true' EXIT

echo
echo "== a tuning job: LeNet-5's weights at r = 0.99 (experiments/jobs/lenet5_hybrid.json) =="
echo "   every evaluation is kept in $state/qtune.db; submit it again and it is answered from there"
out=$($q submit experiments/jobs/lenet5_hybrid.json --relative 0.99 --state $state)
echo "$out"
id=$(echo "$out" | sed -n 's/^job \([0-9]*\) submitted.*/\1/p')
$q watch "$id" --state $state
echo
$q status "$id" --state $state
echo
$q pareto "$id" --state $state --plot build/pareto.svg --ascii

echo
$q server stop --state $state
trap - EXIT
