#!/usr/bin/env bash
# On a GPU machine: the research loop end to end.
#  1. plans/survive-faults.md: planted hang and fault become timeout/crashed rows, the run goes on.
#  2. plans/warp-decode-gemma4.md with 2 loops, killed with SIGKILL mid-run, then --resume:
#     row counts before and after, and a check that no (candidate, problem) was measured twice.
# Every GPU measurement is also recorded for `--evaluator replay:FILE`.
#   NS_BIN=.device/bin scripts/device_research.sh SECONDS_BEFORE_KILL MINUTES_AFTER
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
bin=${NS_BIN:-build}
first=${1:-20}
second=${2:-3}
mkdir -p "$out"
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
db="$out/results.db"
rm -f "$db" "$db-wal" "$db-shm"

counts() {
    python3 - "$db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
tables = ["runs", "loops", "problems", "kernels", "experiments", "findings", "claims"]
print(" ".join(f"{t}={db.execute(f'select count(*) from {t}').fetchone()[0]}" for t in tables))
dup = db.execute("select count(*) from (select candidate_key, problem_id, count(*) c from experiments "
                 "group by 1, 2 having c > 1)").fetchone()[0]
open_claims = db.execute("select count(*) from claims where experiment_id is null").fetchone()[0]
print(f"duplicated (candidate, problem) experiments: {dup}; claims without an experiment: {open_claims}")
PY
}

echo "== survive-faults"
"$bin"/nightshift run plans/survive-faults.md --db "$db" --loops 1 --minutes 4 --candidate-timeout 20 \
    --record "$out/replay.jsonl" --no-progress 2>&1 | tee "$out/survive.log" | grep -vE "^\[[0-9]+\] moe_decode/warp" | tail -n 20
python3 - "$db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for row in db.execute("select k.path, p.batch, e.status, substr(e.message, 1, 90) from experiments e "
                      "join kernels k on k.id = e.kernel_id join problems p on p.id = e.problem_id "
                      "where k.origin = 'planted' order by e.id"):
    print(row)
PY

echo "== gemma4, 2 loops, SIGKILL after ${first} s"
"$bin"/nightshift run plans/warp-decode-gemma4.md --db "$db" --loops 2 --minutes 30 \
    --record "$out/replay.jsonl" --no-progress >"$out/gemma_first.log" 2>&1 &
pid=$!
sleep "$first"
kill -9 $pid
wait $pid 2>/dev/null
sleep 2
tail -n 3 "$out/gemma_first.log"
echo "before resume:"; counts | tee "$out/counts_before.txt"
run_id=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select max(id) from runs').fetchone()[0])" "$db")
echo "== resume run $run_id for ${second} min"
"$bin"/nightshift run plans/warp-decode-gemma4.md --db "$db" --loops 2 --minutes "$second" --resume "$run_id" \
    --record "$out/replay.jsonl" --no-progress >"$out/gemma_resume.log" 2>&1
head -n 2 "$out/gemma_resume.log"; tail -n 2 "$out/gemma_resume.log"
echo "after resume:"; counts | tee "$out/counts_after.txt"
python3 scripts/run_summary.py "$db" | tee "$out/summary.md"
