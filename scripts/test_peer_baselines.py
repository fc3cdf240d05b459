#!/usr/bin/env python3
"""Tests of scripts/peer_baselines.py that need no GPU and no torch: arguments,
presets, merging nightshift's bench JSON, the summary and the tables.
    python3 -m unittest scripts/test_peer_baselines.py   (or run it directly)"""
import json
import os
import re
import stat
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_baselines as pb  # noqa: E402

BATCHES = [1, 2, 4]


def bench_result(batch, status="ok", median=10.0, kernel="warp_decode_v1.cu"):
    """One row as `nightshift bench --json` writes it (harness/evaluate/evaluation_json.cpp)."""
    row = {"problem": f"moe_decode/gemma4-26b-a4b/bf16/T{batch}", "knobs": {"WARPS": 4}, "status": status,
           "message": "" if status == "ok" else "rel_l2 0.3 above tolerance", "bytes": 1e8, "flops": 1e9,
           "resources": [], "rel_l2_vs_fp64": 3e-3, "max_abs_over_rms": 0.01, "copy_gb_per_s": 3000.0,
           "kernel": kernel, "batch": batch}
    if status == "ok":
        row["timing"] = {"median_us": median, "min_us": median - 1, "max_us": median + 2, "mean_us": median,
                         "q1_us": median, "q3_us": median, "cv": 0.01, "samples_us": [median], "method": "cupti",
                         "event_samples_us": [median]}
        row["copy_floor_us"] = median * 0.8
        row["fraction_of_copy_floor"] = 0.8
    return row


def bench_json(results):
    return {"device": "NVIDIA H100 80GB HBM3", "arch": "sm_90", "driver": "12.8", "nvrtc": "12.8",
            "copy_gb_per_s": 3000.0, "model": "gemma4-26b-a4b", "seed": 7, "distribution": "uniform",
            "warmup": 5, "repetitions": 20, "results": results}


def peer_row(batch, impl, median, status="ok", model="gemma4-26b-a4b"):
    return pb.make_row(model, batch, impl, status, median, median, 0.5, 4e-3, "" if status == "ok" else "why",
                       source="peer")


class ArgumentsTest(unittest.TestCase):
    def test_defaults(self):
        args = pb.parse_args([], environ={"OUT": "/tmp/o", "NS_BIN": ".device/bin"})
        self.assertEqual(args.models, ["gemma4-26b-a4b", "qwen3-30b-a3b", "phi3.5-moe"])
        self.assertEqual(args.batches, [1, 2, 4, 8, 16, 32, 64, 128])
        self.assertEqual(args.out, "/tmp/o")
        self.assertEqual(args.ns_bin, ".device/bin")
        self.assertFalse(args.skip_nightshift)
        names = [os.path.basename(k) for k in args.kernels]
        self.assertIn("warp_decode_v1.cu", names)
        self.assertIn("expert_centric_v1.cu", names)
        self.assertTrue(all(os.path.exists(k) for k in args.kernels))

    def test_defaults_without_environment(self):
        args = pb.parse_args([], environ={})
        self.assertEqual(args.out, "device-out")
        self.assertEqual(args.ns_bin, "build")

    def test_explicit(self):
        args = pb.parse_args(["--models", "phi3.5-moe", "--batches", "1,8", "--repetitions", "5",
                              "--kernels", "a.cu, b.cu", "--skip-nightshift", "--out", "x"], environ={})
        self.assertEqual((args.models, args.batches, args.repetitions), (["phi3.5-moe"], [1, 8], 5))
        self.assertEqual(args.kernels, ["a.cu", "b.cu"])
        self.assertTrue(args.skip_nightshift)

    def test_rejects_bad_values(self):
        for argv in (["--models", "gemma4"], ["--batches", "1,0"], ["--batches", "x"], ["--repetitions", "0"]):
            with self.assertRaises(SystemExit, msg=argv), open(os.devnull, "w") as null:
                stderr, sys.stderr = sys.stderr, null
                try:
                    pb.parse_args(argv, environ={})
                finally:
                    sys.stderr = stderr


class PresetsTest(unittest.TestCase):
    def test_match_the_verifier(self):
        path = os.path.join(pb.ROOT, "verifier", "moe_decode", "presets.cpp")
        with open(path) as f:
            text = f.read()
        found = {}
        for m in re.finditer(r'\{"([^"]+)",\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*NS_ACT_(\w+)', text):
            act = {"SILU": "silu", "GELU_TANH": "gelu_tanh"}[m.group(6)]
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)), act)
        self.assertEqual(found, pb.PRESETS)

    def test_routed_bytes(self):
        # Gemma 4 at T=1, 8 distinct experts: 8 * 3 * 704 * 2816 * 2 bytes of weights, plus x and y.
        self.assertEqual(pb.routed_bytes("gemma4-26b-a4b", 1, 8), 8 * 3 * 704 * 2816 * 2 + 2 * 2816 * 2)
        self.assertGreater(pb.gathered_bmm_bytes("gemma4-26b-a4b", 128), 8e9)
        self.assertLess(pb.gathered_bmm_bytes("gemma4-26b-a4b", 64), 8e9)


class NightshiftMergeTest(unittest.TestCase):
    def test_rows_per_status(self):
        bench = bench_json([bench_result(1, median=12.5), bench_result(2, status="wrong_answer"),
                            bench_result(4, status="compile_error")])
        rows = pb.nightshift_rows(bench, "gemma4-26b-a4b", "kernels_seed/moe_decode/warp_decode_v1.cu",
                                  BATCHES + [8])
        self.assertEqual([r["status"] for r in rows], ["ok", "wrong", "skipped", "skipped"])
        self.assertEqual(rows[0]["impl"], "nightshift:warp_decode_v1")
        self.assertEqual((rows[0]["median_us"], rows[0]["min_us"], rows[0]["fraction_of_floor"]), (12.5, 11.5, 0.8))
        self.assertIn("compile_error", rows[2]["reason"])
        self.assertIn("no result", rows[3]["reason"])
        for r in rows:
            for key in ("model", "batch", "impl", "median_us", "min_us", "fraction_of_floor", "rel_l2", "status",
                        "reason"):
                self.assertIn(key, r)

    def test_command_uses_the_bench_flags(self):
        cmd = pb.nightshift_command("bin", "k.cu", "qwen3-30b-a3b", [1, 8], 5, 20)
        self.assertEqual(cmd, ["bin/nightshift", "bench", "k.cu", "--model", "qwen3-30b-a3b", "--batch", "1,8",
                               "--warmup", "5", "--reps", "20", "--json"])
        with open(os.path.join(pb.ROOT, "harness", "cli", "cli.cpp")) as f:
            cli = f.read()
        for flag in ("--model", "--batch", "--warmup", "--reps", "--json"):
            self.assertIn(f'bench_cmd->add_option("{flag}"' if flag != "--json" else '"--json"', cli)

    def _fake_bin(self, folder, body):
        path = os.path.join(folder, "nightshift")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)

    def _args(self, folder, kernels, timeout=30):
        args = pb.parse_args(["--ns-bin", folder, "--batches", "1,2,4", "--kernels", ",".join(kernels),
                              "--ns-timeout", str(timeout)], environ={})
        return args

    def test_run_with_a_stand_in_binary(self):
        kernel = os.path.join(pb.ROOT, "kernels_seed", "moe_decode", "warp_decode_v1.cu")
        with tempfile.TemporaryDirectory() as folder:
            payload = os.path.join(folder, "bench.json")
            with open(payload, "w") as f:
                json.dump(bench_json([bench_result(b, median=5.0 * b) for b in BATCHES]), f)
            # A failing bench still prints its JSON (exit 1 when some row failed).
            self._fake_bin(folder, f'cat "{payload}"; echo "$@" >"{folder}/argv"; exit 1')
            rows = pb.run_nightshift(self._args(folder, [kernel, os.path.join(folder, "missing.cu")]),
                                     "gemma4-26b-a4b", folder)
            self.assertEqual([r["median_us"] for r in rows[:3]], [5.0, 10.0, 20.0])
            self.assertEqual([r["status"] for r in rows[3:]], ["skipped"] * 3)
            self.assertIn("not found", rows[3]["reason"])
            with open(os.path.join(folder, "argv")) as f:
                self.assertIn("--batch 1,2,4", f.read())
            self.assertTrue(os.path.exists(os.path.join(folder, "nightshift_gemma4-26b-a4b_warp_decode_v1.json")))

    def test_run_failures_become_skips(self):
        kernel = os.path.join(pb.ROOT, "kernels_seed", "moe_decode", "warp_decode_v1.cu")
        with tempfile.TemporaryDirectory() as folder:
            self._fake_bin(folder, 'echo "error: no CUDA driver found" >&2; exit 1')
            rows = pb.run_nightshift(self._args(folder, [kernel]), "gemma4-26b-a4b", folder)
            self.assertEqual([r["status"] for r in rows], ["skipped"] * 3)
            self.assertIn("no CUDA driver", rows[0]["reason"])
            self._fake_bin(folder, "sleep 5")
            rows = pb.run_nightshift(self._args(folder, [kernel], timeout=1), "gemma4-26b-a4b", folder)
            self.assertIn("ran past 1 s", rows[0]["reason"])
        with tempfile.TemporaryDirectory() as folder:  # no binary at all
            rows = pb.run_nightshift(self._args(folder, [kernel]), "gemma4-26b-a4b", folder)
            self.assertEqual([r["status"] for r in rows], ["skipped"] * 3)


class ReportTest(unittest.TestCase):
    def _report(self):
        rows = [peer_row(1, "eager_loop", 300.0), peer_row(1, "gathered_bmm", 90.0), peer_row(1, "grouped_mm", 60.0),
                peer_row(2, "eager_loop", 400.0), peer_row(2, "gathered_bmm", 20.0, status="wrong"),
                peer_row(2, "grouped_mm", 70.0),
                pb.make_row("gemma4-26b-a4b", 4, "eager_loop", "skipped", reason="weights: out of memory"),
                peer_row(1, "grouped_mm", 50.0, model="phi3.5-moe")]
        bench = bench_json([bench_result(1, median=30.0), bench_result(2, median=80.0), bench_result(4, median=40.0)])
        rows += pb.nightshift_rows(bench, "gemma4-26b-a4b", "warp_decode_v1.cu", BATCHES)
        bench2 = bench_json([bench_result(1, median=25.0, kernel="expert_centric_v1.cu")])
        rows += pb.nightshift_rows(bench2, "gemma4-26b-a4b", "expert_centric_v1.cu", [1])
        models = ["gemma4-26b-a4b", "phi3.5-moe"]
        return {"schema_version": 1, "card": "NVIDIA H100 80GB HBM3", "torch": "2.9.0", "cuda": "12.8",
                "l2_bytes": 50 << 20, "copy_gbps": 3000.0, "repetitions": 20,
                "models": [{"model": m, "H": pb.PRESETS[m][0], "I": pb.PRESETS[m][1], "E": pb.PRESETS[m][2],
                            "K": pb.PRESETS[m][3], "activation": pb.PRESETS[m][4]} for m in models],
                "rows": rows, "summary": pb.summarize(rows, models, BATCHES)}

    def test_summary(self):
        summary = {(s["model"], s["batch"]): s for s in self._report()["summary"]}
        one = summary[("gemma4-26b-a4b", 1)]
        self.assertEqual((one["best_peer"], one["nightshift_best"], one["wins"]), ("grouped_mm", "expert_centric_v1",
                                                                                    True))
        self.assertAlmostEqual(one["speedup"], 60.0 / 25.0)
        two = summary[("gemma4-26b-a4b", 2)]  # the wrong peer is not the best peer
        self.assertEqual((two["best_peer"], two["best_peer_us"], two["wins"]), ("grouped_mm", 70.0, False))
        four = summary[("gemma4-26b-a4b", 4)]  # no peer measured: no verdict
        self.assertEqual((four["best_peer"], four["wins"]), (None, None))
        phi = summary[("phi3.5-moe", 1)]
        self.assertEqual((phi["best_peer"], phi["nightshift_best"]), ("grouped_mm", None))

    def test_markdown_and_json(self):
        report = self._report()
        with tempfile.TemporaryDirectory() as folder:
            json_path, md_path, text = pb.write_outputs(report, folder)
            with open(json_path) as f:
                back = json.load(f)
            with open(md_path) as f:
                self.assertEqual(f.read(), text)
        self.assertEqual(back["card"], "NVIDIA H100 80GB HBM3")
        for row in back["rows"]:
            self.assertTrue({"model", "batch", "impl", "median_us"} <= set(row))
        self.assertIn("## gemma4-26b-a4b (H=2816, I=704, E=128, K=8, gelu_tanh)", text)
        self.assertIn("## phi3.5-moe", text)
        self.assertIn("torch 2.9.0", text)
        header = [line for line in text.splitlines() if line.startswith("| B |")][0]
        self.assertEqual(header, "| B | eager_loop | gathered_bmm | grouped_mm | expert_centric_v1 | warp_decode_v1 "
                                 "| best peer | nightshift best | speedup | wins |")
        self.assertIn("| 1 | 300.0 | 90.0 | 60.0 | 25.0 | 30.0 | grouped_mm 60.0 | expert_centric_v1 25.0 | 2.40x "
                      "| yes |", text)
        self.assertIn("| 2 | 400.0 | 20.0 (wrong) | 70.0 | - | 80.0 | grouped_mm 70.0 | warp_decode_v1 80.0 | 0.88x "
                      "| no |", text)
        self.assertIn("| 4 | skip | - | - | - | 40.0 | - | warp_decode_v1 40.0 | - | - |", text)
        self.assertIn("Target (nightshift best at least as fast as the best peer at every B): NOT met at B=2,4.", text)
        self.assertIn("- eager_loop skipped at B=4: weights: out of memory", text)
        self.assertEqual(text.count("Target ("), 1)  # only Gemma 4 carries the target

    def test_imports_without_torch(self):
        self.assertFalse(hasattr(pb, "torch"))


if __name__ == "__main__":
    unittest.main()
