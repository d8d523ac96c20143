#!/usr/bin/env python3
"""Golden greedy continuations of canopy's default model, SmolLM2-135M-Instruct (Q4_1 GGUF, from
scripts/fetch_model.sh), by Hugging Face transformers loading the same GGUF file through its GGUF
integration (dequantized to fp32, eager attention): an implementation independent of canopy's.

Writes tests/data/smollm2_golden.json: for each prompt its token ids (transformers' tokenizer
read from the GGUF), 32 greedy tokens, and per step the chosen token's logit and its margin over
the runner-up (to tell a real divergence from a near-tie).
  /work/venv/bin/python tools/make_smollm2_goldens.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import subprocess
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "smollm2_golden.json")
STEPS = 32
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
]
CHAT = [{"role": "user", "content": "What is the tallest mountain on Earth?"}]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else subprocess.check_output(
        ["bash", os.path.join(HERE, "..", "scripts", "fetch_model.sh")], text=True).strip()
    folder, name = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    prompts = [(text, tok(text, add_special_tokens=False)["input_ids"]) for text in PROMPTS]
    chat_text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    prompts.append((chat_text, tok(chat_text, add_special_tokens=False)["input_ids"]))

    cases = []
    with torch.no_grad():
        for text, ids in prompts:
            seq = list(ids)
            logits_of, margins = [], []
            for _ in range(STEPS):
                logits = model(torch.tensor([seq])).logits[0, -1].float()
                top = torch.topk(logits, 2)
                logits_of.append(float(top.values[0]))
                margins.append(float(top.values[0] - top.values[1]))
                seq.append(int(top.indices[0]))
            greedy = seq[len(ids):]
            cases.append({"text": text, "prompt": ids, "greedy": greedy, "greedy_logits": logits_of,
                          "greedy_margins": margins, "continuation": tok.decode(greedy)})
            print(f"{text!r} -> {tok.decode(greedy)!r} (min margin {min(margins):.3g})")
    meta = {"model": name, "source": f"transformers {transformers.__version__} GGUF loader, fp32, eager attention",
            "cases": cases}
    with open(OUT, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
