#!/usr/bin/env python3
"""How far a plain bf16 implementation's logits are from fp32 ones, on canopy's test models.

The GPU backend computes in bf16 (weights and activations, f32 accumulation); its tests compare
its logits with the CPU backend's fp32 ones. Their tolerances are a small multiple of what plain
bf16 costs (DESIGN.md section 5), measured here with Hugging Face transformers: every model in
bf16 vs fp32 on the golden sequences (prompt + greedy continuation, teacher-forced), reporting
the largest |bf16 - fp32| logit difference and the largest logit magnitude.
  /work/venv/bin/python tools/measure_bf16_logit_error.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")


def sequences_of(golden_path):
    with open(golden_path) as f:
        meta = json.load(f)
    key = "cases" if "cases" in meta else "prompts"
    out = []
    for c in meta[key]:
        prompt = c.get("prompt") or c.get("prompt_ids") or c.get("ids")
        greedy = c.get("greedy") or c.get("tokens")
        out.append(list(prompt) + list(greedy[:-1]))
    return out


def measure(name, load, golden_path):
    f32 = load(torch.float32).eval()
    b16 = load(torch.bfloat16).eval()
    worst, biggest, worst_rel_rms = 0.0, 0.0, 0.0
    with torch.no_grad():
        for seq in sequences_of(golden_path):
            ids = torch.tensor([seq])
            a = f32(ids).logits[0].float()
            b = b16(ids).logits[0].float()
            worst = max(worst, float((a - b).abs().max()))
            biggest = max(biggest, float(a.abs().max()))
            rel = ((a - b).pow(2).mean(-1).sqrt() / a.pow(2).mean(-1).sqrt()).max()
            worst_rel_rms = max(worst_rel_rms, float(rel))
    print(f"{name:18s} max|bf16 - f32| = {worst:.4f}   max|logit| = {biggest:.2f}   "
          f"max row rel-RMS error = {worst_rel_rms:.4f}")


def main():
    for folder in ["tiny-llama", "tiny-qwen2"]:
        path = os.path.join(DATA, "models", folder)
        measure(folder, lambda dt, p=path: AutoModelForCausalLM.from_pretrained(p, dtype=dt, attn_implementation="eager"),
                os.path.join(path, "golden.json"))
    for folder in ["tiny-llama-gguf", "tiny-qwen2-gguf"]:
        path = os.path.join(DATA, "models", folder)
        measure(folder, lambda dt, p=path: AutoModelForCausalLM.from_pretrained(
            p, gguf_file="model.gguf", dtype=dt, attn_implementation="eager"), os.path.join(path, "golden.json"))
    gguf = sys.argv[1] if len(sys.argv) > 1 else subprocess.check_output(
        ["bash", os.path.join(HERE, "..", "scripts", "fetch_model.sh")], text=True).strip()
    folder, name = os.path.split(gguf)
    measure("SmolLM2-135M", lambda dt: AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=dt, attn_implementation="eager"), os.path.join(DATA, "smollm2_golden.json"))


if __name__ == "__main__":
    main()
