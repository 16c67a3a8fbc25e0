#!/usr/bin/env bash
# The main job: install what is missing, build, and run the most complete
# thing qtune does today. (Grows with the project: daemon, tuning job and
# Pareto front once those land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo
echo "== qtune quant: number formats on a Fashion-MNIST-sized buffer =="
./build/experiments/bench_quant --quick --json build/bench_quant.json
