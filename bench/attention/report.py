#!/usr/bin/env python3
"""Combines the attention benchmark's JSON files (bench_attention, peers.py torch and flashinfer
runs) into one results file and prints the markdown table (bench/attention/README.md).

  python3 report.py --canopy canopy.json --torch torch.json [--flashinfer fi.json] --out results.json
"""
import argparse
import json
import os


def load(path):
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:
        return None


def median(entry):
    if isinstance(entry, dict) and isinstance(entry.get("median_ms"), (int, float)):
        return entry["median_ms"]
    return None


def cell(v, note=None):
    if v is None:
        return note or "-"
    return "%.3f" % v


def short_error(entry):
    if isinstance(entry, dict) and "error" in entry:
        e = entry["error"]
        return "OOM" if "out of memory" in e else "err"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--canopy", required=True)
    ap.add_argument("--torch")
    ap.add_argument("--flashinfer")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    canopy = load(args.canopy) or {"shapes": []}
    torch_r = load(args.torch) or {"shapes": []}
    fi = load(args.flashinfer) or {"shapes": []}
    by_name = lambda d: {s["name"]: s for s in d.get("shapes", []) if "name" in s}
    tr, fr = by_name(torch_r), by_name(fi)

    rows, combined = [], []
    for s in canopy["shapes"]:
        name = s["name"]
        t = tr.get(name, {})
        f = fr.get(name, {})
        fused = median(s.get("fused"))
        unfused = median(s.get("unfused"))
        flat = median(s.get("no_sharing"))
        own = median(t.get("own_copy"))
        split = median(t.get("split"))
        fim = median(f.get("flashinfer"))
        floor = s.get("floor_ms")
        peers = [x for x in (own, split, fim) if x is not None]
        entry = {
            "name": name, "floor_ms": floor, "floor_bound": s.get("floor_bound"),
            "canopy_fused_ms": fused, "canopy_unfused_ms": unfused, "canopy_no_sharing_ms": flat,
            "torch_own_copy_ms": own, "torch_own_copy_kernel": t.get("own_copy", {}).get("kernel"),
            "torch_split_ms": split, "torch_split_kernel": t.get("split", {}).get("kernel"),
            "flashinfer_ms": fim,
            "canopy_over_floor": fused / floor if fused and floor else None,
            "best_peer_over_canopy": min(peers) / fused if peers and fused else None,
            "check": s.get("check"), "launch": s.get("launch"),
            "split_check_max_abs": t.get("split", {}).get("kernels", {}).get("split_check_max_abs"),
        }
        combined.append(entry)
        rows.append([
            name,
            cell(fused, "err" if s.get("error") else None),
            cell(unfused),
            cell(flat, short_error({"error": s.get("no_sharing_error", "")}) if s.get("no_sharing_error") else None),
            cell(own, short_error(t.get("own_copy"))),
            cell(split, short_error(t.get("split"))),
            cell(fim, short_error(f.get("flashinfer")) or ("n/a" if not fr else None)),
            cell(floor),
            "%.2fx" % (fused / floor) if fused and floor else "-",
            "%.2fx" % (min(peers) / fused) if peers and fused else "-",
        ])

    meta = {"gpu": canopy.get("gpu"), "date": canopy.get("date"), "torch": torch_r.get("torch"),
            "flashinfer": fi.get("flashinfer") or fi.get("flashinfer_error"),
            "bandwidth": canopy.get("bandwidth"), "peak_flops": canopy.get("peak_flops")}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    doc = {"meta": meta, "rows": combined, "canopy_raw": canopy, "torch_raw": torch_r, "flashinfer_raw": fi}
    with open(args.out, "w") as fo:
        json.dump(doc, fo, indent=2)
    # The name to commit it under: bench/results/attention-<gpu>-<date>.json
    slug = "".join(c if c.isalnum() else "-" for c in (meta["gpu"] or "gpu").lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    named = os.path.join(os.path.dirname(os.path.abspath(args.out)), "attention-%s-%s.json" % (slug, meta["date"]))
    with open(named, "w") as fo:
        json.dump(doc, fo, indent=2)

    head = ["shape", "canopy fused", "canopy unfused", "canopy no-sharing", "torch own-copy", "torch split+merge",
            "flashinfer", "floor", "canopy/floor", "best peer/canopy"]
    print("\n### Decode attention, one layer, bf16, D=128, paged KV (block 16), ms (median, L2 flushed)")
    print("%s, %s; torch %s; flashinfer: %s" % (meta["gpu"], meta["date"], meta["torch"], meta["flashinfer"]))
    print("(commit as bench/results/%s)" % os.path.basename(named))
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
