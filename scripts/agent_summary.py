#!/usr/bin/env python3
"""What the agents did in a results.db: every call (status, tokens, latency,
cost), the kernels they wrote with their lineage, and each of those kernels'
experiments. Python's own sqlite3 module, so no sqlite3 CLI is needed.
Usage: scripts/agent_summary.py results.db [RUN_ID]"""
import sqlite3
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    run = int(sys.argv[2]) if len(sys.argv) > 2 else db.execute("select max(id) from runs").fetchone()[0]
    print(f"run {run}")
    print("\nagent calls")
    print(f"{'id':>4} {'loop':>4} {'agent':<14} {'status':<18} {'in':>7} {'out':>6} {'s':>6} {'$':>8}  reply")
    for row in db.execute(
            "select c.id, l.loop_index, c.agent, c.status, c.tokens_in, c.tokens_out, c.latency_s, c.cost_usd, "
            "substr(replace(c.response, char(10), ' '), 1, 60) from agent_calls c left join loops l on l.id = c.loop_id "
            "where c.run_id = ? order by c.id", (run,)):
        cid, loop, agent, status, tin, tout, lat, cost, head = row
        print(f"{cid:>4} {loop if loop is not None else '':>4} {agent:<14} {status:<18} {tin or 0:>7} {tout or 0:>6} "
              f"{(lat or 0):>6.2f} {(cost or 0):>8.5f}  {head}")
    print("\nkernels written by agents (lineage)")
    for kid, path, origin, pid, ppath in db.execute(
            "select k.id, k.path, k.origin, p.id, p.path from kernels k left join kernels p on p.id = k.parent_id "
            "where k.origin = 'llm' order by k.id"):
        print(f"  kernel {kid} {path} (origin {origin}) <- parent kernel {pid} {ppath}")
    print("\nexperiments on them, and on their parents")
    print(f"{'id':>5} {'kernel':<24} {'knobs':<32} {'status':<14} {'us':>8} {'floor':>6} {'x base':>7} {'regs':>5} "
          f"{'spill':>5}  message")
    names = {0: "ok", 1: "compile_error", 2: "launch_error", 3: "wrong_answer", 4: "timeout", 5: "crashed",
             6: "rejected", 7: "nondeterministic", 8: "not_measured"}
    for row in db.execute(
            "select e.id, k.path, e.knobs_json, e.status, e.median_us, e.fraction_of_floor, e.speedup, e.registers, "
            "e.spill_bytes, e.message from experiments e join kernels k on k.id = e.kernel_id where e.run_id = ? and "
            "(k.origin = 'llm' or k.id in (select parent_id from kernels where origin = 'llm')) order by e.id", (run,)):
        eid, path, knobs, status, us, frac, speedup, regs, spill, message = row
        fmt = lambda v, f: format(v, f) if v is not None else "-"
        print(f"{eid:>5} {path:<24} {knobs:<32} {names.get(status, status):<14} {fmt(us, '8.2f'):>8} "
              f"{fmt(frac, '.3f'):>6} {fmt(speedup, '.3f'):>7} {fmt(regs, 'd'):>5} {fmt(spill, 'd'):>5}  "
              f"{(message or '')[:70]}")
    print("\nfindings")
    for kind, text in db.execute("select kind, text from findings where run_id = ? order by id", (run,)):
        print(f"  [{kind}] {text[:150]}")


if __name__ == "__main__":
    main()
