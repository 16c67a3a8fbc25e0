#!/usr/bin/env bash
# The main job: install what is missing, build, and run the most complete
# thing qtune does today. Until the daemon lands (issue 7) that is: the
# number formats' speed; the trained zoo checkpoints evaluated on the
# Fashion-MNIST test set with one format everywhere (weights, biases and
# every layer's output), from fp32 down to 4-bit floats, and the same for
# the LeNet-5 trained and exported by PyTorch (ONNX); then a tuning job on
# LeNet-5 (r = 0.99, hybrid strategy) with its answer and Pareto front,
# every evaluation kept in an SQLite store.
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
echo "== a tuning job: LeNet-5's weights at r = 0.99 (experiments/jobs/lenet5_hybrid.json) =="
echo "   every evaluation is kept in build/qtune.db; run it again and it is answered from there"
$q tune experiments/jobs/lenet5_hybrid.json --db build/qtune.db
