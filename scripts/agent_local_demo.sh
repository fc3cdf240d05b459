#!/usr/bin/env bash
# A research loop driven by an "LLM" with no network: nightshift_test_llm_server
# answers the OpenAI wire format on 127.0.0.1 with canned replies (a 429 with
# Retry-After, a kernel file derived from warp_decode_v1, a reply without a
# kernel, one with host code), `nightshift run plans/agent-local-server.md`
# compiles, verifies, times and stores the agent's kernel with its parent and
# sweeps its knobs, then the same loop is replayed from the recorded calls
# (agent replay: no server). Prints the calls, the lineage and the experiments.
#   NS_BIN=build scripts/agent_local_demo.sh               # on a GPU: measured for real (and recorded)
#   NS_BIN=build scripts/agent_local_demo.sh replay[:FILE] # no GPU: the replay evaluator; the agent's
#                                                          # kernel is compiled but has no recording: not_measured
# Writes $OUT (default agent-demo-out/): server.log, run.log, results.db, replayed.db, summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NS_BIN:-build}
out=${OUT:-agent-demo-out}
port=${PORT:-8011}
mode=${1:-gpu}
mkdir -p "$out"
rm -f "$out"/results.db* "$out"/replayed.db* "$out"/measurements.jsonl
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

"$bin"/nightshift_test_llm_server --port "$port" --kernel harness/agents/tests/data/warp_decode_xs.cu \
    --reply rate_limit --reply kernel --reply no_kernel --reply host_code >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    grep -q "^listening on" "$out/server.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "^listening on" "$out/server.log" || { cat "$out/server.log"; exit 1; }

case "$mode" in
gpu) evaluator=(--record "$out/measurements.jsonl") ;;
replay) evaluator=(--evaluator "replay:experiments/2026-11-26_h100_gemma4-measurements.jsonl") ;;
replay:*) evaluator=(--evaluator "$mode") ;;
*) echo "usage: $0 [gpu|replay[:FILE]]" >&2; exit 2 ;;
esac

"$bin"/nightshift run plans/agent-local-server.md --db "$out/results.db" \
    --agent-base-url "http://127.0.0.1:$port/v1" "${evaluator[@]}" 2>&1 | tee "$out/run.log"
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true

# The same loop from the recorded calls: no server, no network. On a GPU the
# measurements recorded above serve it too, so nothing is measured twice.
replay_evaluator=("${evaluator[@]}")
[ "$mode" = gpu ] && replay_evaluator=(--evaluator "replay:$out/measurements.jsonl")
"$bin"/nightshift run plans/agent-local-server.md --db "$out/replayed.db" --agent replay \
    --agent-option "replay_db=$out/results.db" "${replay_evaluator[@]}" 2>&1 | tee -a "$out/run.log"

{
    echo "== the loop driven by the local server ($mode)"
    python3 scripts/agent_summary.py "$out/results.db"
    echo
    echo "== the same loop replayed from the recorded calls"
    python3 scripts/agent_summary.py "$out/replayed.db"
} | tee "$out/summary.txt"
