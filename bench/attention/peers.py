#!/usr/bin/env python3
"""Peer columns of the decode attention benchmark (bench/attention/README.md).

For each shape of bench_attention (one layer, bf16, head_dim 128, one decode query per sequence):
  torch own copy:  PyTorch's FA2 and cuDNN kernels, every sequence reading its own copy of its
                   whole path (queries of a KV head stacked: q [B, Hkv, g, D]); the faster kernel.
  torch split:     the Hydragen decomposition with PyTorch's kernels: each forest level is one
                   attention call over that level's KV (queries of all sequences below a node
                   stacked into rows), returning LSE; then the LSE merge in PyTorch ops.
                   Timed: every attention call, the query re-layouts and the merge.
  flashinfer:      MultiLevelCascadeAttentionWrapper (paged KV, page size 16, HND) if flashinfer
                   imports and builds (its kernels are JIT-compiled on first use).
Every measurement: warm-up, then the median of N runs, each after an L2 flush; CUDA events. The
PyTorch and FlashInfer columns take the faster of eager launches and a CUDA-graph replay, so that
Python's launch overhead does not count against them.

  python3 peers.py --shapes canopy.json --out torch.json [--flashinfer] [--repeats 30]
"""
import argparse
import json
import math
import sys
import time
import traceback

import torch

BLOCK = 16


def shape_list(path, only):
    with open(path) as f:
        data = json.load(f)
    shapes = [s for s in data["shapes"] if "hq" in s]
    if only:
        shapes = [s for s in shapes if only in s["name"]]
    return shapes


def levels_of(s):
    """The forest as levels: list of (groups, tokens) from root to leaf; groups = nodes at the level."""
    if s["kind"] == "tree":
        return [(1, 2048), (16, 2048), (1024, 64)]
    return [(1, s["P"]), (s["B"], s["U"])]


class Timer:
    def __init__(self, repeats):
        self.repeats = repeats
        self.flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")

    def best(self, fn):
        """Eager, and replayed from a CUDA graph (no Python launch overhead): the faster."""
        eager = self(fn)
        try:
            for _ in range(2):
                fn()
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
            graphed = self(graph.replay)
            graphed["graph"] = True
            if graphed["median_ms"] < eager["median_ms"]:
                graphed["eager_median_ms"] = eager["median_ms"]
                return graphed
            eager["graph_median_ms"] = graphed["median_ms"]
        except Exception as e:
            eager["graph_error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return eager

    def __call__(self, fn):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        for i in range(self.repeats):
            self.flush.fill_(i & 0xFF)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        times.sort()
        return {"median_ms": times[len(times) // 2], "min_ms": times[0], "runs": len(times)}


def flash(q, k, v, scale, want_lse):
    out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)
    if want_lse:
        return out[0], out[1].reshape(q.shape[0], q.shape[1], q.shape[2])
    return out[0], None


def cudnn(q, k, v, scale, want_lse):
    out = torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, want_lse, 0.0, False, False, scale=scale)
    if want_lse:
        return out[0], out[1].reshape(q.shape[0], q.shape[1], q.shape[2])
    return out[0], None


KERNELS = {"fa2": flash, "cudnn": cudnn}


def free_bytes():
    free, _ = torch.cuda.mem_get_info()
    return free


def bench_own_copy(s, timer):
    """Every sequence reads its own copy of its whole path (K/V [B, Hkv, L, D])."""
    B, hq, hkv, d = s["B"], s["hq"], s["hkv"], s["d"]
    g = hq // hkv
    L = sum(t for _, t in levels_of(s))
    need = 2 * B * hkv * L * d * 2
    if need + 4e9 > free_bytes():
        return {"error": "out of memory (needs %.1f GB of KV)" % (need / 1e9)}
    scale = 1.0 / math.sqrt(d)
    q = torch.randn(B, hkv, g, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(B, hkv, L, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(B, hkv, L, d, device="cuda", dtype=torch.bfloat16)
    best = None
    result = {}
    for name, fn in KERNELS.items():
        try:
            t = timer.best(lambda: fn(q, k, v, scale, False))
            result[name] = t
            if best is None or t["median_ms"] < best[1]["median_ms"]:
                best = (name, t)
        except Exception as e:  # a kernel that refuses the shape
            result[name] = {"error": str(e).splitlines()[0][:200]}
    del q, k, v
    torch.cuda.empty_cache()
    if best is None:
        return {"error": "no kernel ran", **result}
    return {"median_ms": best[1]["median_ms"], "kernel": best[0], "kernels": result}


def bench_split(s, timer):
    """Hydragen: one attention call per forest level over that level's nodes, LSE merge."""
    B, hq, hkv, d = s["B"], s["hq"], s["hkv"], s["d"]
    g = hq // hkv
    scale = 1.0 / math.sqrt(d)
    levels = levels_of(s)
    need = sum(2 * n * hkv * t * d * 2 for n, t in levels)
    if need + 4e9 > free_bytes():
        return {"error": "out of memory"}
    q = torch.randn(B, hq, d, device="cuda", dtype=torch.bfloat16)
    kv = [(torch.randn(n, hkv, t, d, device="cuda", dtype=torch.bfloat16),
           torch.randn(n, hkv, t, d, device="cuda", dtype=torch.bfloat16)) for n, t in levels]

    def run(fn):
        # q [B, Hq, D] -> per level [nodes, Hkv, (B / nodes) * g, D]: a node's sequences x group in rows
        qg = q.view(B, hkv, g, d)
        outs, lses = [], []
        for (n, _), (k, v) in zip(levels, kv):
            per = B // n
            ql = qg.view(n, per, hkv, g, d).permute(0, 2, 1, 3, 4).reshape(n, hkv, per * g, d)
            o, lse = fn(ql, k, v, scale, True)
            outs.append(o.view(n, hkv, per, g, d).permute(0, 2, 1, 3, 4).reshape(B, hq, d))
            lses.append(lse.view(n, hkv, per, g).permute(0, 2, 1, 3).reshape(B, hq))
        lse = torch.stack(lses)                     # [levels, B, Hq], natural log
        m = lse.max(dim=0).values
        w = torch.exp(lse - m)
        w = w / w.sum(dim=0)
        out = sum(w[i].unsqueeze(-1) * outs[i].float() for i in range(len(outs)))
        return out.to(torch.bfloat16)

    best = None
    result = {}
    for name, fn in KERNELS.items():
        try:
            t = timer.best(lambda: run(fn))
            result[name] = t
            if best is None or t["median_ms"] < best[1]["median_ms"]:
                best = (name, t)
        except Exception as e:
            result[name] = {"error": str(e).splitlines()[0][:200]}
    # Exactness check of the split against own-copy attention on a few sequences.
    try:
        out = run(flash)
        check = []
        for b in range(min(4, B)):
            ks = torch.cat([kv[i][0][b * levels[i][0] // B] for i in range(len(levels))], dim=1)
            vs = torch.cat([kv[i][1][b * levels[i][0] // B] for i in range(len(levels))], dim=1)
            ref = torch.nn.functional.scaled_dot_product_attention(
                q[b].view(hkv, g, d).float(), ks.float(), vs.float(), scale=scale)
            check.append((out[b].float().view(hkv, g, d) - ref).abs().max().item())
        result["split_check_max_abs"] = max(check)
    except Exception as e:
        result["split_check_error"] = str(e).splitlines()[0][:200]
    del q, kv
    torch.cuda.empty_cache()
    if best is None:
        return {"error": "no kernel ran", **result}
    return {"median_ms": best[1]["median_ms"], "kernel": best[0], "kernels": result}


def bench_flashinfer(s, timer):
    import flashinfer  # noqa: imported here: optional, slow (JIT)
    B, hq, hkv, d = s["B"], s["hq"], s["hkv"], s["d"]
    levels = levels_of(s)
    pages_per = [(t + BLOCK - 1) // BLOCK for _, t in levels]
    total_pages = sum(n * p for (n, _), p in zip(levels, pages_per))
    need = 2 * total_pages * hkv * BLOCK * d * 2
    if need + 4e9 > free_bytes():
        return {"error": "out of memory"}
    k = torch.randn(total_pages, hkv, BLOCK, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(total_pages, hkv, BLOCK, d, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(B, hq, d, device="cuda", dtype=torch.bfloat16)
    qo_indptr, kv_indptr, kv_indices, last_len = [], [], [], []
    first = 0
    for (n, t), p in zip(levels, pages_per):
        per = B // n
        qo_indptr.append(torch.arange(0, B + 1, per, device="cuda", dtype=torch.int32))
        kv_indptr.append(torch.arange(0, n * p + 1, p, device="cuda", dtype=torch.int32))
        kv_indices.append(torch.arange(first, first + n * p, device="cuda", dtype=torch.int32))
        last_len.append(torch.full((n,), t - (p - 1) * BLOCK, device="cuda", dtype=torch.int32))
        first += n * p
    workspace = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    wrapper = flashinfer.MultiLevelCascadeAttentionWrapper(len(levels), workspace, "HND")
    wrapper.plan(qo_indptr, kv_indptr, kv_indices, last_len, hq, hkv, d, BLOCK,
                 causal=False, q_data_type=torch.bfloat16)
    t = timer.best(lambda: wrapper.run(q, (k, v)))
    del k, v, q, workspace
    torch.cuda.empty_cache()
    return t


def warmup_flashinfer():
    """Triggers FlashInfer's JIT builds for both head configurations on tiny shapes."""
    t0 = time.time()
    timer = Timer(3)
    for hq, hkv in ((32, 8), (40, 40)):
        for kind in ("two-level", "tree"):
            s = {"name": "warmup", "hq": hq, "hkv": hkv, "d": 128, "kind": kind, "B": 1024 if kind == "tree" else 8,
                 "P": 64, "U": 16}
            bench_flashinfer(s, timer)
            print("flashinfer warm-up %d/%d %s: %.0f s" % (hq, hkv, kind, time.time() - t0), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", help="bench_attention's JSON (shape list)")
    ap.add_argument("--out")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", default="")
    ap.add_argument("--flashinfer", action="store_true", help="only the FlashInfer column")
    ap.add_argument("--warmup-flashinfer", action="store_true", help="build FlashInfer's kernels, then exit")
    args = ap.parse_args()
    if args.warmup_flashinfer:
        return warmup_flashinfer()
    if not args.shapes or not args.out:
        ap.error("--shapes and --out are required")
    timer = Timer(args.repeats)
    results = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "shapes": []}
    if args.flashinfer:
        try:
            import flashinfer
            results["flashinfer"] = getattr(flashinfer, "__version__", "?")
        except Exception as e:
            results["flashinfer_error"] = "import failed: " + str(e).splitlines()[0][:300]
            json.dump(results, open(args.out, "w"), indent=2)
            print("flashinfer: " + results["flashinfer_error"], flush=True)
            return
    for s in shape_list(args.shapes, args.only):
        r = {"name": s["name"]}
        t0 = time.time()
        try:
            if args.flashinfer:
                r["flashinfer"] = bench_flashinfer(s, timer)
            else:
                r["own_copy"] = bench_own_copy(s, timer)
                r["split"] = bench_split(s, timer)
        except Exception as e:
            r["error"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
            traceback.print_exc(limit=2)
            torch.cuda.empty_cache()
        r["seconds"] = time.time() - t0
        results["shapes"].append(r)
        brief = {k: (v.get("median_ms") if isinstance(v, dict) else v) for k, v in r.items() if k != "name"}
        print("%-34s %s" % (s["name"], brief), flush=True)
        json.dump(results, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    sys.exit(main())
