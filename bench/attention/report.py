#!/usr/bin/env python3
"""Combines the attention benchmark's JSON files (bench_attention runs, peers.py torch and
flashinfer runs) into one results file and prints the markdown tables (bench/attention/README.md).

  python3 report.py --canopy canopy-v2.json [--canopy canopy-v1.json] [--torch torch.json]
                    [--flashinfer fi.json] [--previous earlier-results.json] --out results.json

Several --canopy files (e.g. the v2 and the v1 runs, made by separate processes) are merged by
shape: their variants side by side. Peer columns missing from this session come from --previous
(an earlier results file of the same GPU), marked with a star.
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


def cell(v, note=None, star=False):
    if v is None:
        return note or "-"
    return "%.3f%s" % (v, "*" if star else "")


def short_error(entry):
    if isinstance(entry, dict) and "error" in entry:
        e = entry["error"]
        return "OOM" if "out of memory" in e else "err"
    return None


def merge_canopy(docs):
    """Shapes by name, in the first file's order; variants merged; scalar fields from the first."""
    merged, order, meta = {}, [], {}
    for d in docs:
        if not d:
            continue
        for k in ("gpu", "date", "bandwidth", "peak_flops", "sms"):
            meta.setdefault(k, d.get(k))
        for s in d.get("shapes", []):
            name = s.get("name")
            if name is None:
                continue
            if name not in merged:
                merged[name] = dict(s)
                merged[name]["variants"] = dict(s.get("variants", {}))
                order.append(name)
            else:
                m = merged[name]
                m["variants"].update(s.get("variants", {}))
                for k, v in s.items():
                    if k != "variants" and m.get(k) is None:
                        m[k] = v
    return [merged[n] for n in order], meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--canopy", action="append", required=True)
    ap.add_argument("--torch")
    ap.add_argument("--flashinfer")
    ap.add_argument("--previous")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    canopy_docs = [load(p) for p in args.canopy]
    shapes, cmeta = merge_canopy(canopy_docs)
    torch_r = load(args.torch) or {"shapes": []}
    fi = load(args.flashinfer) or {"shapes": []}
    prev = load(args.previous) or {}
    by_name = lambda d: {s["name"]: s for s in d.get("shapes", []) if "name" in s}
    tr, fr = by_name(torch_r), by_name(fi)
    prev_rows = {r["name"]: r for r in prev.get("rows", []) if "name" in r}

    rows, vrows, krows, combined = [], [], [], []
    for s in shapes:
        name = s["name"]
        var = s.get("variants", {})
        t = tr.get(name, {})
        f = fr.get(name, {})
        pr = prev_rows.get(name, {})
        v3, v3u = median(var.get("v3")), median(var.get("v3u"))
        v2, v2u = median(var.get("v2")), median(var.get("v2u"))
        v1, v1u = median(var.get("v1")), median(var.get("v1u"))
        flat = median(s.get("no_sharing"))
        own, split, fim = median(t.get("own_copy")), median(t.get("split")), median(f.get("flashinfer"))
        own_star = split_star = fi_star = False
        if own is None and pr.get("torch_own_copy_ms") is not None:
            own, own_star = pr["torch_own_copy_ms"], True
        if split is None and pr.get("torch_split_ms") is not None:
            split, split_star = pr["torch_split_ms"], True
        if fim is None and pr.get("flashinfer_ms") is not None:
            fim, fi_star = pr["flashinfer_ms"], True
        floor = s.get("floor_ms")
        # Every full-step variant that ran (fused/unfused, any kernel, any tensor-CTA count): the
        # fastest is what a per-shape default could reach; "default" is what the runner picks.
        full = {k: median(e) for k, e in var.items()
                if "-prefix" not in k and "-leaves" not in k and median(e) is not None}
        best_name = min(full, key=full.get) if full else None
        best = full[best_name] if best_name else None
        # "canopy" is what the engine runs: the runner's per-step choice (the "auto" variant).
        auto = var.get("auto", {})
        default = median(auto)
        if default is None:  # sessions before the per-step choice
            default = v3 if v3 is not None else (v2 if v2 is not None else v1)
        launch = auto.get("launch", "") if isinstance(auto, dict) else ""
        # The engine runs the chosen kernel unfused (partials + merge kernel): forest_policy.h.
        chosen = (launch.split(":")[0] + "u") if launch.startswith("v") and ":" in launch[:4] else "-"
        peers = [x for x in (own, split, fim) if x is not None]
        entry = {
            "name": name, "floor_ms": floor, "floor_bound": s.get("floor_bound"),
            "canopy_ms": default, "canopy_kernel": chosen,
            "v3_fused_ms": v3, "v3_unfused_ms": v3u, "best_variant": best_name, "default_ms": default,
            "v2_fused_ms": v2, "v2_unfused_ms": v2u, "v1_fused_ms": v1, "v1_unfused_ms": v1u,
            "canopy_no_sharing_ms": flat, "torch_own_copy_ms": own, "torch_split_ms": split,
            "flashinfer_ms": fim, "peers_from_previous": {"torch_own_copy": own_star, "torch_split": split_star,
                                                          "flashinfer": fi_star},
            "canopy_best_ms": best,
            "canopy_over_floor": default / floor if default and floor else None,
            "best_peer_over_canopy": min(peers) / default if peers and default else None,
            "variants": var,
        }
        combined.append(entry)
        short = name.replace(" U=128", "").replace(" U=64", " U64")
        rows.append([
            short, cell(default), cell(flat, short_error(s.get("no_sharing"))),
            cell(own, short_error(t.get("own_copy")), own_star),
            cell(split, short_error(t.get("split")), split_star), cell(fim, None, fi_star), cell(floor),
            "%.2fx" % (default / floor) if default and floor else "-",
            "%.2fx" % (min(peers) / default) if peers and default else "-",
            chosen,
            "%s %s" % (best_name, cell(best)) if best else "-",
        ])
        krows.append([short] + [cell(median(var.get(k)), short_error(var.get(k)))
                                for k in ("v1", "v1u", "v2", "v2u", "v3", "v3u")])
        # Variants: rates of the two resources, tensor-CTA sweep, output checks.
        pre, lea = var.get("v3-prefix", {}), var.get("v3-leaves", {})
        pre2 = var.get("v2-prefix", {})
        lea66 = var.get("v3-leaves-sm66", {})
        leapf, v3pf = median(var.get("v3-leaves-pf")), median(var.get("v3-pf"))
        tcs = sorted([k for k in var if k.startswith("v3-tc")], key=lambda k: int(k[5:]))
        checks = []
        for k, e in var.items():
            if not isinstance(e, dict):
                continue
            if e.get("nonfinite"):
                checks.append("%s: %d NaN" % (k, e["nonfinite"]))
            if isinstance(e.get("max_abs_vs_reference"), (int, float)) and e["max_abs_vs_reference"] > 0.02:
                checks.append("%s: diff %.3g" % (k, e["max_abs_vs_reference"]))
            if "error" in e:
                checks.append("%s: %s" % (k, e["error"][:60]))
        rate = lambda e: ("%s (%.0f TF/s)" % (cell(median(e)), e["tflops"]) if median(e) and e.get("tflops")
                          else cell(median(e)))
        vrows.append([
            name.replace(" U=128", "").replace(" U=64", " U64"),
            rate(pre), rate(pre2),
            ("%s (%.2f TB/s)" % (cell(median(lea)), lea["tbps"]) if median(lea) and lea.get("tbps") else cell(median(lea)))
            + ("; with prefetch %s" % cell(leapf) if leapf else ""),
            "%s (%.0f GB/s/SM)" % (cell(median(lea66)), lea66["tbps"] * 1000 / 66) if median(lea66) and lea66.get("tbps")
            else cell(median(lea66)),
            "%s tc=%s%s" % (cell(v3), var.get("v3", {}).get("tensor_ctas", "-"), "; with prefetch %s" % cell(v3pf) if v3pf else ""),
            " ".join("%s:%s" % (k[5:], cell(median(var[k]))) for k in tcs) or "-",
            "; ".join(checks) or "ok",
        ])

    meta = {"gpu": cmeta.get("gpu"), "date": cmeta.get("date"), "torch": torch_r.get("torch"),
            "flashinfer": fi.get("flashinfer") or fi.get("flashinfer_error"),
            "bandwidth": cmeta.get("bandwidth"), "peak_flops": cmeta.get("peak_flops")}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    doc = {"meta": meta, "rows": combined, "canopy_raw": canopy_docs, "torch_raw": torch_r, "flashinfer_raw": fi}
    with open(args.out, "w") as fo:
        json.dump(doc, fo, indent=2)
    # The name to commit it under: bench/results/attention-<gpu>-<date>.json
    slug = "".join(c if c.isalnum() else "-" for c in (meta["gpu"] or "gpu").lower()).strip("-")
    while "--" in slug:
        slug = slug.replace("--", "-")
    named = os.path.join(os.path.dirname(os.path.abspath(args.out)), "attention-%s-%s.json" % (slug, meta["date"]))
    with open(named, "w") as fo:
        json.dump(doc, fo, indent=2)

    head = ["shape", "canopy", "canopy, sharing off", "torch, own copy", "torch split+merge", "flashinfer cascade",
            "floor", "canopy/floor", "best peer/canopy", "canopy ran", "fastest canopy variant"]
    print("\n### Decode attention, one layer, bf16, D=128, paged KV (block 16), ms (median, L2 flushed)")
    print("%s, %s; torch %s; flashinfer: %s; * = from %s" % (meta["gpu"], meta["date"], meta["torch"],
                                                            meta["flashinfer"], args.previous or "-"))
    print("(commit as bench/results/%s)" % os.path.basename(named))
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    khead = ["shape", "v1 fused", "v1 unfused", "v2 fused", "v2 unfused", "v3 fused", "v3 unfused"]
    print("\n### canopy's kernel variants (ms; fused = merge in the attention launch, unfused = partials + merge kernel)")
    print("| " + " | ".join(khead) + " |")
    print("|" + "---|" * len(khead))
    for r in krows:
        print("| " + " | ".join(r) + " |")
    vhead = ["shape", "v3 shared nodes alone", "v2 shared nodes alone", "v3 leaves alone", "leaves on 66 SMs",
             "v3 (model's tensor CTAs)",
             "v3 with N tensor CTAs", "checks"]
    print("\n### v3/v2 variants: each resource alone, tensor-CTA sweep, output checks (vs the first full variant)")
    print("| " + " | ".join(vhead) + " |")
    print("|" + "---|" * len(vhead))
    for r in vrows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
