#!/usr/bin/env python3
"""Peer baselines for moe_decode: what PyTorch users run today, timed at the
same shapes with the same cold-L2 protocol as nightshift, beside nightshift's
own kernels measured in the same run on the same card.

Peers (all compute y[t,h] = bf16(sum_k w[t,k] * w_down[e] (act(w_gate[e] x_t) * (w_up[e] x_t)))):
  eager_loop    the per-expert loop of Hugging Face transformers' MoE blocks:
                for every expert hit, gather its tokens, three F.linear calls,
                scale by the routing weight, index_add_ into y.
  gathered_bmm  gather w_gate/w_up/w_down per (token, slot) pair and bmm; skipped
                when the gathered copies would pass --bmm-cap-gb.
  grouped_mm    pairs sorted by expert, one torch._grouped_mm (2D x 3D, int32
                end offsets) per projection.

Each peer is checked against a float32 reference of the op on the same inputs
(relative L2; above 2e-2 the peer is marked wrong and left out of "best peer").
Timing: warm-up, then --repetitions iterations, each after a spin that keeps
the GPU busy (host launch latency stays out unless the peer itself waits on
the GPU) and an L2 flush that reads a buffer of twice the L2; CUDA events
around the peer's whole call; median and min. The peer's own allocations are
part of its time.

Writes peers.json and peers.md to --out. Runs on a GPU machine with PyTorch;
everything that needs no GPU is importable without torch (the unit test uses it).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys
import time

SCHEMA_VERSION = 1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Mirrors verifier/moe_decode/presets.cpp (scripts/test_peer_baselines.py checks it).
# name: (H, I, E, K, activation)
PRESETS = {
    "gemma4-26b-a4b": (2816, 704, 128, 8, "gelu_tanh"),
    "qwen3-30b-a3b": (2048, 768, 128, 8, "silu"),
    "qwen3.5-35b-a3b": (2048, 512, 256, 8, "silu"),
    "phi3.5-moe": (4096, 6400, 16, 2, "silu"),
    "mixtral-8x7b": (4096, 14336, 8, 2, "silu"),
    "deepseek-v3": (7168, 2048, 256, 8, "silu"),
    "gpt-oss-20b": (2880, 2880, 32, 4, "silu"),
    "olmoe-1b-7b": (2048, 1024, 64, 8, "silu"),
    "tiny": (64, 32, 8, 2, "silu"),
    "tiny-gelu": (96, 48, 6, 3, "gelu_tanh"),
}
DEFAULT_MODELS = "gemma4-26b-a4b,qwen3-30b-a3b,phi3.5-moe"
DEFAULT_BATCHES = "1,2,4,8,16,32,64,128"
# Models whose table carries the target: nightshift's best at least as fast as
# the best peer at every batch.
TARGET_MODELS = ("gemma4-26b-a4b",)
PEERS = ("eager_loop", "gathered_bmm", "grouped_mm")
MAX_REL_L2 = 2e-2
NS_PREFIX = "nightshift:"


# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------

def parse_int_list(text):
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got '{text}'")
    return values


def parse_models(text):
    models = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [m for m in models if m not in PRESETS]
    if not models or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(PRESETS)}")
    return models


def default_kernels(root=ROOT):
    return sorted(glob.glob(os.path.join(root, "kernels_seed", "moe_decode", "*.cu")))


def parse_args(argv=None, environ=None):
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        description="Time PyTorch MoE-decode peers (eager per-expert loop, gathered-weights bmm, "
                    "torch._grouped_mm) beside nightshift's kernels, same shapes, same L2 flush.")
    parser.add_argument("--models", type=parse_models, default=parse_models(DEFAULT_MODELS),
                        help=f"comma-separated presets (default {DEFAULT_MODELS})")
    parser.add_argument("--batches", type=parse_int_list, default=parse_int_list(DEFAULT_BATCHES),
                        help=f"comma-separated batch sizes (default {DEFAULT_BATCHES})")
    parser.add_argument("--repetitions", type=int, default=20, help="timed iterations per point (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up iterations per point (default 3)")
    parser.add_argument("--kernels", default=None,
                        help="comma-separated nightshift kernel files, each optionally with knobs after colons, "
                             "e.g. kernels_seed/moe_decode/warp_decode_v2.cu:INFLIGHT=8:WARPS=8 "
                             "(default: every kernels_seed/moe_decode/*.cu at its default knobs)")
    parser.add_argument("--out", default=environ.get("OUT") or "device-out",
                        help="output folder (default $OUT, else device-out)")
    parser.add_argument("--ns-bin", default=environ.get("NS_BIN") or "build",
                        help="folder holding the nightshift binary (default $NS_BIN, else build)")
    parser.add_argument("--ns-timeout", type=int, default=300,
                        help="seconds allowed for one nightshift bench call (default 300)")
    parser.add_argument("--skip-nightshift", action="store_true", help="time the peers only")
    parser.add_argument("--bmm-cap-gb", type=float, default=8.0,
                        help="skip gathered_bmm when its gathered weights would exceed this (default 8 GB)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the peers' inputs (default 1234)")
    args = parser.parse_args(argv)
    if args.repetitions < 1 or args.warmup < 0:
        parser.error("--repetitions must be at least 1 and --warmup at least 0")
    if args.kernels is None:
        args.kernels = default_kernels()
    else:
        args.kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    return args


# --------------------------------------------------------------------------
# Pure helpers (no torch)
# --------------------------------------------------------------------------

def short_reason(error, limit=300):
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def routed_bytes(model, batch, distinct_experts):
    """Bytes the call must move: the distinct routed experts' three matrices, x and y."""
    H, I, _, _, _ = PRESETS[model]
    return distinct_experts * 3 * I * H * 2 + 2 * batch * H * 2


def gathered_bmm_bytes(model, batch):
    H, I, _, K, _ = PRESETS[model]
    return batch * K * 3 * I * H * 2


def make_row(model, batch, impl, status, median_us=None, min_us=None, fraction_of_floor=None,
             rel_l2=None, reason="", **extra):
    row = {"model": model, "batch": batch, "impl": impl, "median_us": median_us, "min_us": min_us,
           "fraction_of_floor": fraction_of_floor, "rel_l2": rel_l2, "status": status, "reason": reason}
    row.update(extra)
    return row


def kernel_impl_name(kernel_spec):
    """nightshift:<stem>, with {knobs} when the spec names any (see split_kernel_spec)."""
    return NS_PREFIX + split_kernel_spec(kernel_spec)[2]


def nightshift_rows(bench, model, kernel_path, batches):
    """Rows from one `nightshift bench --json` output (parsed), one per batch asked for.
    nightshift's ok -> ok, wrong_answer -> wrong, anything else -> skipped."""
    impl = kernel_impl_name(kernel_path)
    by_batch = {}
    for result in bench.get("results", []):
        by_batch[int(result.get("batch", -1))] = result
    rows = []
    for batch in batches:
        result = by_batch.get(batch)
        if result is None:
            rows.append(make_row(model, batch, impl, "skipped", reason="no result for this batch in nightshift's JSON",
                                 source="nightshift"))
            continue
        ns_status = result.get("status", "?")
        rel = result.get("rel_l2_vs_fp64")
        common = {"source": "nightshift", "ns_status": ns_status, "knobs": result.get("knobs", {})}
        if ns_status == "ok" and "timing" in result:
            timing = result["timing"]
            rows.append(make_row(model, batch, impl, "ok", timing.get("median_us"), timing.get("min_us"),
                                 result.get("fraction_of_copy_floor"), rel, "",
                                 timing_method=timing.get("method"), **common))
        else:
            status = "wrong" if ns_status == "wrong_answer" else "skipped"
            rows.append(make_row(model, batch, impl, status, rel_l2=rel,
                                 reason=f"{ns_status}: {result.get('message', '')}".strip(), **common))
    return rows


def nightshift_failure_rows(model, kernel_path, batches, reason):
    impl = kernel_impl_name(kernel_path)
    return [make_row(model, b, impl, "skipped", reason=reason, source="nightshift") for b in batches]


def best_of(rows):
    """The fastest ok row (by median) or None."""
    ok = [r for r in rows if r["status"] == "ok" and r.get("median_us") is not None]
    return min(ok, key=lambda r: r["median_us"]) if ok else None


def summarize(rows, models, batches):
    summary = []
    for model in models:
        for batch in batches:
            here = [r for r in rows if r["model"] == model and r["batch"] == batch]
            peer = best_of([r for r in here if not r["impl"].startswith(NS_PREFIX)])
            ns = best_of([r for r in here if r["impl"].startswith(NS_PREFIX)])
            entry = {"model": model, "batch": batch,
                     "best_peer": peer["impl"] if peer else None,
                     "best_peer_us": peer["median_us"] if peer else None,
                     "nightshift_best": ns["impl"][len(NS_PREFIX):] if ns else None,
                     "nightshift_best_us": ns["median_us"] if ns else None,
                     "speedup": None, "wins": None}
            if peer and ns and ns["median_us"] > 0:
                entry["speedup"] = peer["median_us"] / ns["median_us"]
                entry["wins"] = ns["median_us"] <= peer["median_us"]
            summary.append(entry)
    return summary


def _cell(row):
    if row is None:
        return "-"
    if row["status"] == "skipped":
        return "skip"
    if row.get("median_us") is None:
        return row["status"]
    text = f"{row['median_us']:.1f}"
    return text + " (wrong)" if row["status"] == "wrong" else text


def markdown(report):
    rows, summary = report["rows"], report["summary"]
    lines = ["# Peer baselines: moe_decode", ""]
    lines.append(f"Card: {report.get('card')}; torch {report.get('torch')}; CUDA {report.get('cuda')}; "
                 f"copy bandwidth {_fmt(report.get('copy_gbps'), '.0f')} GB/s; L2 {report.get('l2_bytes', 0) >> 20} MB.")
    lines.append("")
    lines.append("Median µs per call, cold L2 (read-flush of 2x L2 before every iteration), "
                 f"{report.get('repetitions')} repetitions. Peers: CUDA events around the whole call with the GPU "
                 "kept busy before it; nightshift: its own bench (CUPTI kernel span) in the same run. "
                 "speedup = best peer / nightshift best; wins = nightshift best at least as fast. "
                 "peers.json holds every row with min µs, relative L2 and its fraction of the copy floor "
                 "(peers: distinct routed experts' weights plus x and y over the copy bandwidth above; "
                 "nightshift: its own floor).")
    for model in report["models"]:
        name = model["model"]
        model_rows = [r for r in rows if r["model"] == name]
        impls = list(PEERS) + sorted({r["impl"] for r in model_rows if r["impl"].startswith(NS_PREFIX)})
        lines += ["", f"## {name} (H={model['H']}, I={model['I']}, E={model['E']}, K={model['K']}, "
                      f"{model['activation']})", ""]
        header = ["B"] + [i[len(NS_PREFIX):] if i.startswith(NS_PREFIX) else i for i in impls] + \
                 ["best peer", "nightshift best", "speedup", "wins"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---:"] * (len(impls) + 1) + ["---", "---", "---:", "---"]) + "|")
        model_summary = [s for s in summary if s["model"] == name]
        for entry in model_summary:
            batch = entry["batch"]
            cells = [str(batch)]
            for impl in impls:
                match = [r for r in model_rows if r["batch"] == batch and r["impl"] == impl]
                cells.append(_cell(match[0] if match else None))
            cells.append(f"{entry['best_peer']} {entry['best_peer_us']:.1f}" if entry["best_peer"] else "-")
            cells.append(f"{entry['nightshift_best']} {entry['nightshift_best_us']:.1f}"
                         if entry["nightshift_best"] else "-")
            cells.append(f"{entry['speedup']:.2f}x" if entry["speedup"] is not None else "-")
            cells.append("-" if entry["wins"] is None else ("yes" if entry["wins"] else "no"))
            lines.append("| " + " | ".join(cells) + " |")
        if name in TARGET_MODELS:
            missed = [str(s["batch"]) for s in model_summary if s["wins"] is not True]
            verdict = "met" if not missed else f"NOT met at B={','.join(missed)}"
            lines += ["", f"Target (nightshift best at least as fast as the best peer at every B): {verdict}."]
        notes = {}
        for r in model_rows:
            if r["status"] != "ok" and r.get("reason"):
                notes.setdefault((r["impl"], r["status"], r["reason"]), []).append(str(r["batch"]))
        rel = {}
        for r in model_rows:
            if r["impl"] in PEERS and r.get("rel_l2") is not None:
                rel[r["impl"]] = max(rel.get(r["impl"], 0.0), r["rel_l2"])
        if rel:
            lines += ["", "Worst relative L2 vs the float32 reference: " +
                      ", ".join(f"{k} {v:.2e}" for k, v in rel.items()) + "."]
        if notes:
            lines += [""] + [f"- {impl} {status} at B={','.join(bs)}: {reason}"
                             for (impl, status, reason), bs in notes.items()]
    return "\n".join(lines) + "\n"


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def write_outputs(report, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "peers.json")
    md_path = os.path.join(out_dir, "peers.md")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    text = markdown(report)
    with open(md_path, "w") as f:
        f.write(text)
    return json_path, md_path, text


# --------------------------------------------------------------------------
# nightshift side
# --------------------------------------------------------------------------

def nightshift_env(environ=None):
    env = dict(os.environ if environ is None else environ)
    env.setdefault("NIGHTSHIFT_CACHE", "/tmp/nightshift-cache")
    extra = "/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64"
    env["LD_LIBRARY_PATH"] = extra + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    return env


def nightshift_command(ns_bin, kernel, model, batches, warmup, repetitions, knobs=()):
    command = [os.path.join(ns_bin, "nightshift"), "bench", kernel, "--model", model,
               "--batch", ",".join(str(b) for b in batches), "--warmup", str(warmup),
               "--reps", str(repetitions), "--json"]
    for knob in knobs:
        command += ["--knob", knob]
    return command


def split_kernel_spec(spec):
    """'path:K=V:K=V' -> (path, ['K=V', ...], a name for tables: the file's stem, plus the knobs if any)."""
    path, *knobs = spec.split(":")
    stem = os.path.splitext(os.path.basename(path))[0]
    return path, knobs, stem + ("{" + ",".join(knobs) + "}" if knobs else "")


def run_nightshift(args, model, log_dir):
    """Benches every kernel file at this model; returns rows (skips on any failure)."""
    rows = []
    for spec in args.kernels:
        kernel, knobs, stem = split_kernel_spec(spec)
        if not os.path.exists(kernel):
            rows += nightshift_failure_rows(model, spec, args.batches, f"kernel file {kernel} not found")
            continue
        cmd = nightshift_command(os.path.abspath(args.ns_bin), os.path.abspath(kernel), model, args.batches,
                                 max(args.warmup, 5), args.repetitions, knobs)
        print(f"  nightshift bench {os.path.basename(kernel)} --model {model}", flush=True)
        started = time.time()
        try:
            done = subprocess.run(cmd, cwd=ROOT, env=nightshift_env(), capture_output=True, text=True,
                                  timeout=args.ns_timeout)
        except subprocess.TimeoutExpired:
            rows += nightshift_failure_rows(model, spec, args.batches,
                                            f"nightshift bench ran past {args.ns_timeout} s")
            continue
        except OSError as error:
            rows += nightshift_failure_rows(model, spec, args.batches, short_reason(error))
            continue
        base = os.path.join(log_dir, f"nightshift_{model}_{stem.replace('{', '_').replace('}', '').replace(',', '_').replace('=', '')}")
        with open(base + ".json", "w") as f:
            f.write(done.stdout)
        with open(base + ".err", "w") as f:
            f.write(done.stderr)
        try:
            bench = json.loads(done.stdout)
        except ValueError:
            tail = (done.stderr.strip() or done.stdout.strip())[-300:]
            rows += nightshift_failure_rows(model, spec, args.batches,
                                            f"nightshift bench exited {done.returncode} without JSON: {tail}")
            continue
        kernel_rows = nightshift_rows(bench, model, spec, args.batches)
        for r in kernel_rows:
            r["ns_copy_gbps"] = bench.get("copy_gb_per_s")
        rows += kernel_rows
        print(f"    {time.time() - started:.0f} s, exit {done.returncode}", flush=True)
    return rows


# --------------------------------------------------------------------------
# PyTorch side (imported lazily)
# --------------------------------------------------------------------------

def _activation(torch, name):
    F = torch.nn.functional
    if name == "silu":
        return F.silu
    if name == "gelu_tanh":
        return lambda v: F.gelu(v, approximate="tanh")
    raise ValueError(f"unknown activation {name}")


def peer_eager_loop(torch, x, ids, w_bf16, w_gate, w_up, w_down, act):
    """The loop of Hugging Face transformers' sparse MoE blocks: one pass per expert hit."""
    F = torch.nn.functional
    num_experts = w_gate.shape[0]
    y = torch.zeros_like(x)
    expert_mask = F.one_hot(ids, num_classes=num_experts).permute(2, 1, 0)  # [E, K, T]
    hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero().flatten().tolist()
    for e in hit:
        slot, token = torch.where(expert_mask[e])
        xe = x[token]
        h = act(F.linear(xe, w_gate[e])) * F.linear(xe, w_up[e])
        out = F.linear(h, w_down[e]) * w_bf16[token, slot, None]
        y.index_add_(0, token, out.to(y.dtype))
    return y


def peer_gathered_bmm(torch, x, ids, w, w_gate, w_up, w_down, act):
    """Every (token, slot) pair gets its own copy of its expert's weights; three bmm."""
    T, K = ids.shape
    flat = ids.reshape(-1)
    xp = x.repeat_interleave(K, dim=0).unsqueeze(-1)                  # [T*K, H, 1]
    g = torch.bmm(w_gate[flat], xp).squeeze(-1)                       # [T*K, I]
    u = torch.bmm(w_up[flat], xp).squeeze(-1)
    h = (act(g) * u).unsqueeze(-1)                                    # [T*K, I, 1]
    out = torch.bmm(w_down[flat], h).squeeze(-1)                      # [T*K, H]
    y = (out.view(T, K, -1).float() * w.unsqueeze(-1)).sum(dim=1)
    return y.to(x.dtype)


def peer_grouped_mm(torch, x, ids, w, w_gate, w_up, w_down, act):
    """Pairs sorted by expert; torch._grouped_mm(2D [pairs, in], 3D [E, in, out], offs = int32
    end offset of every expert's group, empty groups included). The weights are [E, out, in]
    in memory, so the 3D operand is the transposed view (stride 1 along `in`), which the
    grouped GEMM accepts as a column-major B without a copy."""
    T, K = ids.shape
    num_experts = w_gate.shape[0]
    flat = ids.reshape(-1)
    order = torch.argsort(flat, stable=True)
    token = torch.div(order, K, rounding_mode="floor")
    xs = x[token]                                                      # [T*K, H], expert-sorted
    counts = torch.zeros(num_experts, dtype=torch.int32, device=x.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
    offs = torch.cumsum(counts, dim=0, dtype=torch.int32)
    g = torch._grouped_mm(xs, w_gate.transpose(1, 2), offs=offs)      # [T*K, I]
    u = torch._grouped_mm(xs, w_up.transpose(1, 2), offs=offs)
    h = act(g) * u
    out = torch._grouped_mm(h, w_down.transpose(1, 2), offs=offs)     # [T*K, H]
    weighted = out.float() * w.reshape(-1)[order].unsqueeze(-1)
    y = torch.zeros(T, x.shape[1], dtype=torch.float32, device=x.device)
    y.index_add_(0, token, weighted)
    return y.to(x.dtype)


def reference_fp32(torch, x, ids, w, w_gate, w_up, w_down, act):
    """The op in float32 from the same bf16 inputs, one expert at a time."""
    y = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    xf = x.float()
    for e in torch.unique(ids).tolist():
        token, slot = torch.where(ids == e)
        xe = xf[token]
        h = act(xe @ w_gate[e].float().t()) * (xe @ w_up[e].float().t())
        y.index_add_(0, token, (h @ w_down[e].float().t()) * w[token, slot, None])
    return y


def rel_l2(torch, y, ref):
    diff = (y.float() - ref).pow(2).sum().item()
    norm = ref.pow(2).sum().item()
    return math.sqrt(diff / norm) if norm > 0 else float("inf")


class Timer:
    """Cold-L2 timing with CUDA events: spin, read-flush of 2x L2, start, call, end."""

    def __init__(self, torch):
        self.torch = torch
        props = torch.cuda.get_device_properties(0)
        l2 = getattr(props, "L2_cache_size", 0) or 0
        self.l2_bytes = l2 if l2 > 0 else 50 * 1024 * 1024
        self.flush = torch.ones(2 * self.l2_bytes // 4, dtype=torch.float32, device="cuda")
        self.spin = hasattr(torch.cuda, "_sleep")
        self.spin_cycles = 1_000_000

    def _prepare(self):
        if self.spin:
            self.torch.cuda._sleep(self.spin_cycles)
        self.flush.sum()

    def time(self, fn, warmup, repetitions):
        torch = self.torch
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(repetitions):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self._prepare()
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) * 1000.0)
        return statistics.median(samples), min(samples)


def copy_bandwidth_gbps(torch, nbytes=1 << 30, repetitions=10):
    """Device-to-device copy of 1 GB: bytes read plus written over the median time."""
    src = torch.ones(nbytes // 4, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    times = []
    for _ in range(repetitions):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * nbytes / statistics.median(times) / 1e9


def make_weights(torch, model, seed):
    H, I, E, _, _ = PRESETS[model]
    gen = torch.Generator(device="cuda")
    gen.manual_seed(seed)
    # ~1/sqrt(fan_in) keeps g, u and y near unit size.
    w_gate = torch.randn(E, I, H, generator=gen, device="cuda", dtype=torch.bfloat16).mul_(1.0 / math.sqrt(H))
    w_up = torch.randn(E, I, H, generator=gen, device="cuda", dtype=torch.bfloat16).mul_(1.0 / math.sqrt(H))
    w_down = torch.randn(E, H, I, generator=gen, device="cuda", dtype=torch.bfloat16).mul_(1.0 / math.sqrt(I))
    return w_gate, w_up, w_down


def make_inputs(torch, model, batch, seed):
    H, _, E, K, _ = PRESETS[model]
    gen = torch.Generator(device="cuda")
    gen.manual_seed(seed * 1000 + batch)
    x = torch.randn(batch, H, generator=gen, device="cuda", dtype=torch.bfloat16)
    logits = torch.randn(batch, E, generator=gen, device="cuda", dtype=torch.float32)
    top_w, ids = torch.topk(torch.softmax(logits, dim=-1), K, dim=-1)
    w = top_w / top_w.sum(dim=-1, keepdim=True)
    return x, ids, w


def run_peers(torch, args, model, timer, copy_gbps, rows):
    """Appends one row per (batch, peer) to `rows`."""
    act = _activation(torch, PRESETS[model][4])
    try:
        w_gate, w_up, w_down = make_weights(torch, model, args.seed)
    except Exception as error:  # noqa: BLE001 -- a model that does not fit is a skip
        torch.cuda.empty_cache()
        reason = "weights: " + short_reason(error)
        rows += [make_row(model, b, p, "skipped", reason=reason, source="peer") for b in args.batches for p in PEERS]
        return
    grouped_available = hasattr(torch, "_grouped_mm")
    for batch in args.batches:
        try:
            x, ids, w = make_inputs(torch, model, batch, args.seed)
            w_bf16 = w.to(torch.bfloat16)
            distinct = int(torch.unique(ids).numel())
            ref = reference_fp32(torch, x, ids, w, w_gate, w_up, w_down, act)
        except Exception as error:  # noqa: BLE001 -- e.g. a context lost earlier
            rows += [make_row(model, batch, p, "skipped", reason="inputs: " + short_reason(error), source="peer")
                     for p in PEERS]
            continue
        nbytes = routed_bytes(model, batch, distinct)
        floor_us = nbytes / (copy_gbps * 1e9) * 1e6
        calls = {
            "eager_loop": lambda: peer_eager_loop(torch, x, ids, w_bf16, w_gate, w_up, w_down, act),
            "gathered_bmm": lambda: peer_gathered_bmm(torch, x, ids, w, w_gate, w_up, w_down, act),
            "grouped_mm": lambda: peer_grouped_mm(torch, x, ids, w, w_gate, w_up, w_down, act),
        }
        for peer in PEERS:
            extra = {"source": "peer", "distinct_experts": distinct, "bytes": nbytes, "floor_us": floor_us}
            skip = None
            if peer == "gathered_bmm" and gathered_bmm_bytes(model, batch) > args.bmm_cap_gb * 1e9:
                skip = (f"gathered weights {gathered_bmm_bytes(model, batch) / 1e9:.1f} GB "
                        f"exceed the {args.bmm_cap_gb:g} GB cap")
            if peer == "grouped_mm" and not grouped_available:
                skip = f"torch {torch.__version__} has no torch._grouped_mm"
            if skip:
                rows.append(make_row(model, batch, peer, "skipped", reason=skip, **extra))
                continue
            try:
                y = calls[peer]()
                torch.cuda.synchronize()
                err = rel_l2(torch, y, ref)
                del y
                median_us, min_us = timer.time(calls[peer], args.warmup, args.repetitions)
                status = "ok" if err <= MAX_REL_L2 else "wrong"
                reason = "" if status == "ok" else f"rel L2 {err:.2e} above {MAX_REL_L2:g}"
                rows.append(make_row(model, batch, peer, status, median_us, min_us, floor_us / median_us, err,
                                     reason, **extra))
            except Exception as error:  # noqa: BLE001 -- one peer's failure is a recorded skip
                rows.append(make_row(model, batch, peer, "skipped", reason=short_reason(error), **extra))
                torch.cuda.empty_cache()
            last = rows[-1]
            shown = f"{last['median_us']:.1f} us" if last["median_us"] is not None else last["reason"]
            print(f"  {model} B={batch} {peer}: {last['status']} {shown}", flush=True)
        del x, ids, w, w_bf16, ref
    del w_gate, w_up, w_down
    torch.cuda.empty_cache()


def build_report(args, rows, models, card, torch, timer, copy_gbps, started):
    return {
        "schema_version": SCHEMA_VERSION,
        "card": card,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "l2_bytes": timer.l2_bytes,
        "copy_gbps": copy_gbps,
        "repetitions": args.repetitions,
        "warmup": args.warmup,
        "gpu_kept_busy": timer.spin,
        "max_rel_l2": MAX_REL_L2,
        "kernels": args.kernels,
        "seconds": round(time.time() - started, 1),
        "models": [{"model": m, "H": PRESETS[m][0], "I": PRESETS[m][1], "E": PRESETS[m][2], "K": PRESETS[m][3],
                    "activation": PRESETS[m][4]} for m in models],
        "rows": rows,
        "summary": summarize(rows, models, args.batches),
    }


def main(argv=None):
    args = parse_args(argv)
    import torch  # noqa: PLC0415 -- only the GPU run needs it

    if not torch.cuda.is_available():
        print("peer_baselines: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 reference stays float32
    torch.backends.cudnn.allow_tf32 = False
    os.makedirs(args.out, exist_ok=True)
    log_dir = os.path.join(args.out, "peers_logs")
    os.makedirs(log_dir, exist_ok=True)
    started = time.time()

    card = torch.cuda.get_device_name(0)
    copy_gbps = copy_bandwidth_gbps(torch)
    timer = Timer(torch)
    print(f"{card}, torch {torch.__version__}, copy {copy_gbps:.0f} GB/s, L2 {timer.l2_bytes >> 20} MB", flush=True)

    rows = []
    for done, model in enumerate(args.models):
        try:
            run_peers(torch, args, model, timer, copy_gbps, rows)
        except Exception as error:  # noqa: BLE001 -- keep the other models and the nightshift side
            rows += [make_row(model, b, p, "skipped", reason=short_reason(error), source="peer")
                     for b in args.batches for p in PEERS if not any(
                         r["model"] == model and r["batch"] == b and r["impl"] == p for r in rows)]
            torch.cuda.empty_cache()
        if not args.skip_nightshift:
            rows += run_nightshift(args, model, log_dir)
        # Written after every model, so a run cut short still leaves its table.
        report = build_report(args, rows, args.models[: done + 1], card, torch, timer, copy_gbps, started)
        json_path, md_path, text = write_outputs(report, args.out)
    print(text)
    print(f"wrote {json_path} and {md_path} in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
