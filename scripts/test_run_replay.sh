#!/usr/bin/env bash
# A whole research loop with no GPU: `nightshift run` with the replay
# evaluator serving measurements recorded on a GPU (experiments/*.jsonl).
#  1. An uninterrupted run with 2 loops: every candidate of the plan measured once.
#  2. The same run killed with SIGKILL mid-way, then --resume: the same set of
#     (candidate, problem) rows, none twice, none lost.
# Usage: scripts/test_run_replay.sh NIGHTSHIFT_BINARY REPLAY_FILE
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1
replay=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plan=plans/survive-faults.md

rows() {
    python3 - "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
dup = db.execute("select count(*) from (select candidate_key, problem_id from experiments group by 1, 2 "
                 "having count(*) > 1)").fetchone()[0]
if dup:
    sys.exit(f"{dup} (candidate, problem) pairs were measured twice")
for key, problem, status in db.execute("select e.candidate_key, p.model || ' T=' || p.batch, e.status "
                                      "from experiments e join problems p on p.id = e.problem_id order by 1, 2"):
    print(key, problem, status)
PY
}

# Each run compiles from a cold cache, so the killed one is still busy when killed.
NIGHTSHIFT_CACHE="$work/cache-full" "$bin" run "$plan" --db "$work/full.db" --loops 2 --evaluator "replay:$replay" --no-progress >"$work/full.log" 2>&1 \
    || { cat "$work/full.log"; exit 1; }
rows "$work/full.db" >"$work/full.rows"
full=$(wc -l <"$work/full.rows")
[ "$full" -ge 20 ] || { echo "only $full experiments in the full run"; cat "$work/full.log"; exit 1; }

NIGHTSHIFT_CACHE="$work/cache-killed" "$bin" run "$plan" --db "$work/killed.db" --loops 2 --evaluator "replay:$replay" \
    --no-progress >"$work/killed.log" 2>&1 &
pid=$!
# Kill once some, but not all, rows are in.
for _ in $(seq 1 400); do
    sleep 0.05
    n=$(python3 -c "import sqlite3,sys
try: print(sqlite3.connect(sys.argv[1]).execute('select count(*) from experiments').fetchone()[0])
except Exception: print(0)" "$work/killed.db")
    [ "$n" -ge 5 ] && break
done
kill -9 $pid
wait $pid 2>/dev/null || true
before=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from experiments').fetchone()[0])" "$work/killed.db")
[ "$before" -lt "$full" ] || { echo "the run finished before it was killed ($before rows)"; exit 1; }

NIGHTSHIFT_CACHE="$work/cache-killed" "$bin" run "$plan" --db "$work/killed.db" --loops 2 --evaluator "replay:$replay" \
    --resume 1 --no-progress \
    >"$work/resume.log" 2>&1 || { cat "$work/resume.log"; exit 1; }
rows "$work/killed.db" >"$work/killed.rows"
if ! diff -q "$work/full.rows" "$work/killed.rows" >/dev/null; then
    echo "killed+resumed run differs from the uninterrupted one:"
    diff "$work/full.rows" "$work/killed.rows" | head -20
    exit 1
fi
echo "replay run: $full experiments; killed after $before, resumed to the same $full rows, none twice"
