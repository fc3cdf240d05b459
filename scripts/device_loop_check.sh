#!/usr/bin/env bash
# On a GPU machine: plans/warp-decode-gemma4.md with 2 loops under the
# hardened verifier, stopped with Ctrl-C (SIGINT) after SECONDS, then resumed
# to the end: experiments per GPU-hour, rows before and after, no duplicates.
#   NS_BIN=.device/bin scripts/device_loop_check.sh SECONDS
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
bin=${NS_BIN:-build}
mkdir -p "$out"
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
db="$out/results.db"
rm -f "$db" "$db-wal" "$db-shm"
count() { python3 -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); print(' '.join(f'{t}={d.execute(f\"select count(*) from {t}\").fetchone()[0]}' for t in ['runs','experiments','claims','findings']), 'open claims', d.execute('select count(*) from claims where experiment_id is null').fetchone()[0], 'duplicates', d.execute('select count(*) from (select 1 from experiments group by candidate_key, problem_id having count(*)>1)').fetchone()[0], 'run status', d.execute('select status from runs where id=1').fetchone()[0])" "$db"; }
"$bin"/nightshift run plans/warp-decode-gemma4.md --db "$db" --loops 2 --no-progress >"$out/first.log" 2>&1 &
pid=$!
sleep "${1:-45}"
kill -INT $pid
wait $pid
echo "exit after SIGINT: $?"; tail -n 2 "$out/first.log"
echo "after Ctrl-C: $(count)"
"$bin"/nightshift run plans/warp-decode-gemma4.md --db "$db" --loops 2 --resume 1 --no-progress >"$out/resume.log" 2>&1
echo "exit after resume: $?"; head -n 1 "$out/resume.log"; tail -n 2 "$out/resume.log"
echo "after resume: $(count)"
python3 scripts/run_summary.py "$db" >"$out/summary.md"; sed -n 1,25p "$out/summary.md"
