#!/usr/bin/env python3
"""Prints `nightshift bench --json` output as a Markdown table."""
import json
import sys

for path in sys.argv[1:]:
    with open(path) as f:
        run = json.load(f)
    print(f"\n{path}: {run['device']} ({run['arch']}), driver {run['driver']}, NVRTC {run['nvrtc']}, "
          f"copy {run['copy_gb_per_s']:.0f} GB/s, model {run['model']}, seed {run['seed']}\n")
    print("| kernel | knobs | B | median µs | min µs | CV | GB/s | floor µs | frac floor | SOL µs | frac SOL | rel L2 | regs | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in run["results"]:
        knobs = ",".join(f"{k}={v}" for k, v in r["knobs"].items())
        regs = max((e["registers"] for e in r["resources"]), default=0)
        if r["status"] != "ok":
            print(f"| {r['kernel']} | {knobs} | {r['batch']} | | | | | | | | | {r['rel_l2_vs_fp64']:.2e} | {regs} | {r['status']}: {r['message']} |")
            continue
        t, s = r["timing"], r["speed_of_light"]
        print(f"| {r['kernel']} | {knobs} | {r['batch']} | {t['median_us']:.1f} | {t['min_us']:.1f} | {t['cv']:.3f} | "
              f"{r['achieved_gb_per_s']:.0f} | {r['copy_floor_us']:.1f} | {r['fraction_of_copy_floor']:.3f} | "
              f"{s['median_us']:.1f} | {r['fraction_of_speed_of_light']:.3f} | {r['rel_l2_vs_fp64']:.2e} | {regs} | ok |")
