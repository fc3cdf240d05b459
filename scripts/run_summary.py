#!/usr/bin/env python3
"""Summarises a results.db: experiments per GPU-hour per run, the best verified
kernel per problem (µs, fraction of the copy-rate floor), failures by status,
and the findings. Reads the store with Python's sqlite3 (no headers needed)."""
import sqlite3
import sys

STATUS = ["ok", "compile_error", "launch_error", "wrong_answer", "timeout", "crashed", "rejected", "nondeterministic"]

db = sqlite3.connect(sys.argv[1])
print("## Runs\n")
print("| run | status | evaluator | device | experiments | span s | per GPU-hour |")
print("|---:|---|---|---|---:|---:|---:|")
for run_id, status, evaluator, device in db.execute("select id, status, evaluator, device from runs order by id"):
    n, first, last = db.execute(
        "select count(*), min(julianday(created_at)), max(julianday(created_at)) from experiments where run_id=?",
        (run_id,)).fetchone()
    span = (last - first) * 86400 if n and n > 1 else 0
    rate = n * 3600 / span if span else 0
    print(f"| {run_id} | {status} | {evaluator} | {device} | {n} | {span:.0f} | {rate:.0f} |")

print("\n## Best verified kernel per problem\n")
print("| model | B | kernel | knobs | median µs | frac floor | frac SOL | speedup vs baseline | rel L2 | measured |")
print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
for pid, model, batch in db.execute("select id, model, batch from problems order by model, batch"):
    row = db.execute(
        "select k.path, e.knobs_json, e.median_us, e.fraction_of_floor, e.fraction_of_sol, e.speedup, e.rel_l2 "
        "from experiments e join kernels k on k.id = e.kernel_id where e.problem_id=? and e.status=0 "
        "order by e.median_us limit 1", (pid,)).fetchone()
    n = db.execute("select count(*) from experiments where problem_id=?", (pid,)).fetchone()[0]
    if row:
        path, knobs, med, frac, sol, speedup, rel = row
        sp = f"{speedup:.2f}x" if speedup else "-"
        sol_text = f"{sol:.3f}" if sol else "-"
        print(f"| {model} | {batch} | {path} | {knobs} | {med:.1f} | {frac:.3f} | {sol_text} | {sp} | {rel:.2e} | {n} |")

print("\n## Failures by status\n")
for status, count in db.execute("select status, count(*) from experiments where status != 0 group by status"):
    print(f"- {STATUS[status] if status < len(STATUS) else status}: {count}")

print("\n## Findings\n")
for kind, text in db.execute("select kind, text from findings order by id limit 40"):
    print(f"- [{kind}] {text}")
