#!/bin/bash
# resume_kill.sh -- `qtune tune --db` under kill -9: run a job to its end
# once without interruption, then run it again in a fresh database killing
# the process with SIGKILL at random moments, resuming it each time with
# `qtune tune --db FILE --resume 1`, until a run finishes. Prints, and writes
# as JSON: the kills, the runs, the evaluations answered from the store on
# resume, the evaluations computed in each run, and whether the final answer
# and the job's history (keys, order, results) equal the uninterrupted run's.
#
#   bash experiments/resume_kill.sh [JOB.json] [KILLS] [OUT.json]
#
# Defaults: experiments/jobs/lenet5_greedy_w2.json (greedy on two workers),
# 12 kills, experiments/results/resume_kill.json. Every third kill lands in
# set-up (uniform in [0, 0.3] s after the start), the others uniform in
# [0.05, 1.05] s after the search has started (its first stderr line);
# RANDOM is seeded from SEED (default 1) so a run can be repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
JOB=${1:-experiments/jobs/lenet5_greedy_w2.json}
KILLS=${2:-12}
OUT=${3:-experiments/results/resume_kill.json}
QTUNE=${QTUNE:-build/api/qtune}
RANDOM=${SEED:-1}
[ -x "$QTUNE" ] || { echo "resume_kill.sh: $QTUNE not built (cmake --build build)" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
t0=$(date +%s.%N)
"$QTUNE" tune "$JOB" --db "$dir/ref.db" >"$dir/ref.out" 2>"$dir/ref.err" || true
t_ref=$(echo "$(date +%s.%N) - $t0" | bc)

kills=0 runs=0 finished=0
while [ $finished = 0 ]; do
    runs=$((runs + 1))
    if [ $runs = 1 ]; then
        "$QTUNE" tune "$JOB" --db "$dir/run.db" >"$dir/run$runs.out" 2>"$dir/run$runs.err" &
    else
        "$QTUNE" tune --db "$dir/run.db" --resume 1 >"$dir/run$runs.out" 2>"$dir/run$runs.err" &
    fi
    pid=$!
    if [ $kills -lt "$KILLS" ]; then
        # every third kill lands in set-up; the others once the search runs
        if [ $((kills % 3)) != 2 ]; then
            for _ in $(seq 100); do
                grep -q "float top-1" "$dir/run$runs.err" 2>/dev/null && break
                kill -0 $pid 2>/dev/null || break
                sleep 0.05
            done
            sleep "$(echo "scale=3; 0.05 + 1.0 * $RANDOM / 32767" | bc)"
        else
            sleep "$(echo "scale=3; 0.3 * $RANDOM / 32767" | bc)"
        fi
        if kill -9 $pid 2>/dev/null; then
            wait $pid 2>/dev/null || true
            if grep -q "^job 1 done" "$dir/run$runs.out"; then finished=1; else kills=$((kills + 1)); fi
            continue
        fi
    fi
    wait $pid || true
    finished=1
done

# the job's history without what differs by design (run-time, reuse flags)
hist() { "$QTUNE" tune --db "$1" --export 1 --format csv | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
keep = ("seq", "key", "config", "cost", "top1", "top5", "loss", "images", "feasible", "early")
for r in rows: print(",".join(r[k] for k in keep if k in r))'; }
hist "$dir/ref.db" >"$dir/ref.hist"
hist "$dir/run.db" >"$dir/run.hist"
same_hist=$(cmp -s "$dir/ref.hist" "$dir/run.hist" && echo true || echo false)
answer() { grep -A3 "^answer\|^no configuration" "$1" | grep -v "s; stopped early" || true; }
same_answer=$(cmp -s <(answer "$dir/ref.out") <(answer "$dir/run$runs.out") && echo true || echo false)

python3 - "$dir" "$runs" "$kills" "$same_hist" "$same_answer" "$JOB" "$OUT" "$t_ref" <<'EOF'
import json, re, sys, os
d, runs, kills, same_hist, same_answer, job, out, t_ref = sys.argv[1:]
runs, kills = int(runs), int(kills)
per_run = []
for i in range(1, runs + 1):
    err = open(os.path.join(d, "run%d.err" % i)).read()
    lines = [l for l in err.splitlines() if re.match(r"\s+\d+\s+(pass|fail|failed)", l)]
    per_run.append({"observed": len(lines),
                    "from_store": sum("(cached)" in l for l in lines),
                    "computed": sum("(cached)" not in l for l in lines)})
evals = sum(1 for _ in open(os.path.join(d, "ref.hist")))
final = open(os.path.join(d, "run%d.out" % runs)).read()
m = re.search(r"(\d+) evaluations, (\d+) reused from the store, (\d+) computed now", final)
res = {"job": job, "kills": kills, "runs": runs, "evaluations": evals,
       "uninterrupted_seconds": float(t_ref),
       "answered_from_store_on_resume": sum(r["from_store"] for r in per_run),
       "computed_and_observed": sum(r["computed"] for r in per_run),
       "last_run": {"evaluations": int(m.group(1)), "reused": int(m.group(2)),
                    "computed": int(m.group(3))} if m else None,
       "same_history": same_hist == "true", "same_answer": same_answer == "true",
       "per_run": per_run}
# every evaluation is in the store once (keys unique); computed beyond one
# per evaluation = those observed twice (in flight at a kill are not seen)
res["computed_twice"] = max(0, res["computed_and_observed"] - evals)
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
json.dump(res, open(out, "w"), indent=1)
print("%s: %d kills in %d runs; %d evaluations (uninterrupted run: %.1f s); %d answered from "
      "the store on resume, %d computed and observed across runs (%d computed twice); "
      "same history: %s, same answer: %s" % (job, kills, runs, evals, float(t_ref),
      res["answered_from_store_on_resume"], res["computed_and_observed"], res["computed_twice"],
      same_hist, same_answer))
sys.exit(0 if res["same_history"] and res["same_answer"] else 1)
EOF
