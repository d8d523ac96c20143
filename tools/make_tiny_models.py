#!/usr/bin/env python3
"""Makes canopy's tiny random-weight test models and their golden outputs.

Writes under tests/data/models/:
  tiny-llama/   Llama-style HF folder: GQA (4 heads of dim 64, 2 KV heads), llama3 rope scaling,
                untied embeddings, bf16 safetensors
  tiny-qwen2/   Qwen2-style HF folder: q/k/v bias, tied embeddings, bf16 safetensors
  tiny-llama-gguf/model.gguf, tiny-qwen2-gguf/model.gguf
                GGUF files written the way llama.cpp's converter writes them (llama: Q/K rows
                permuted), with a mix of storage types (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
                Q5_1)
and in each folder golden.json + golden_logits.bin: for a few prompts (token ids), the greedy
continuation from Hugging Face transformers (fp32, eager attention) and the logits at every
position (f32 little-endian, rows of `vocab`): row j is the next-token distribution after tokens
[0..j] of prompt + greedy. The GGUF goldens come from transformers loading the GGUF file through
its own GGUF integration (dequantization and Q/K un-permutation), an implementation independent of
canopy's.

Needs torch (CPU), transformers, gguf, numpy. Deterministic: fixed seeds.
  /work/venv/bin/python tools/make_tiny_models.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

import gguf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "models")
GREEDY_STEPS = 40
VOCAB = 512
PROMPTS = [
    [1, 17, 290, 33, 401, 5, 88],
    [1, 250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 260, 261],
    [1, 444],
]


def perturb(model, seed):
    """Random norm weights (around 1) and biases: the default init (ones, zeros) would leave
    those code paths untested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def goldens(model, out_dir, name, source):
    """Greedy continuation and teacher-forced logits for every prompt."""
    model.eval()
    cases = []
    blobs = []
    offset = 0
    for prompt in PROMPTS:
        ids = list(prompt)
        margins = []
        for _ in range(GREEDY_STEPS):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            top = torch.topk(logits, 2)
            margins.append(float(top.values[0] - top.values[1]))
            ids.append(int(top.indices[0]))
        greedy = ids[len(prompt):]
        # One forward over prompt + greedy[:-1]: the logits that predicted every greedy token.
        seq = ids[:-1]
        logits = model(torch.tensor([seq])).logits[0].float().numpy().astype("<f4")
        assert logits.shape == (len(seq), VOCAB)
        assert [int(x) for x in logits[len(prompt) - 1:].argmax(-1)] == greedy
        blobs.append(logits.tobytes())
        cases.append({"prompt": prompt, "greedy": greedy, "logits_offset": offset, "logits_rows": len(seq),
                      "min_greedy_margin": min(margins)})
        offset += logits.size
    with open(os.path.join(out_dir, "golden_logits.bin"), "wb") as f:
        f.write(b"".join(blobs))
    meta = {"model": name, "vocab": VOCAB, "source": source, "cases": cases}
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{name}: min greedy margin {min(c['min_greedy_margin'] for c in cases):.4g}")


def save_hf(model, out_dir, generation):
    """Saves in bf16 and returns the model as transformers loads it back from disk in fp32 (so
    the goldens come from the saved folder, not from in-memory state)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(generation, f, indent=1)
        f.write("\n")
    return AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager")


def make_tiny_llama():
    torch.manual_seed(1234)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=256, intermediate_size=384, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=512,
        rms_norm_eps=1e-5, initializer_range=0.08, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64},
        rope_theta=10000.0, attn_implementation="eager")
    model = LlamaForCausalLM(config)
    perturb(model, 1)
    out = os.path.join(ROOT, "tiny-llama")
    loaded = save_hf(model, out, {"bos_token_id": 1, "eos_token_id": [2, 5]})
    goldens(loaded, out, "tiny-llama", f"transformers {transformers.__version__}, fp32, eager attention")


def make_tiny_qwen2():
    torch.manual_seed(5678)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024, rms_norm_eps=1e-6,
        initializer_range=0.1, tie_word_embeddings=True, rope_theta=1000000.0, bos_token_id=None,
        eos_token_id=3, attn_implementation="eager")
    model = Qwen2ForCausalLM(config)
    perturb(model, 2)
    out = os.path.join(ROOT, "tiny-qwen2")
    loaded = save_hf(model, out, {"eos_token_id": 3})
    goldens(loaded, out, "tiny-qwen2", f"transformers {transformers.__version__}, fp32, eager attention")


# ---- GGUF -------------------------------------------------------------------------------------

def llama_cpp_permute(w, n_head):
    """llama.cpp's converter reorders the rows of Q and K of each head for interleaved RoPE."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


QT = gguf.GGMLQuantizationType


def add_tensor(writer, name, array, qtype):
    array = np.ascontiguousarray(array, dtype=np.float32)
    if qtype == QT.F32:
        writer.add_tensor(name, array)
    elif qtype == QT.F16:
        writer.add_tensor(name, array.astype(np.float16))
    else:
        data = gguf.quants.quantize(array, qtype)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)


def write_gguf(path, arch, model, config, types):
    """Writes `model` as llama.cpp would (names, metadata, Q/K permutation for llama)."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(VOCAB)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    # A minimal tokenizer so that readers expecting one find it (ids only; never used for text).
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([f"<t{i}>" for i in range(VOCAB)])
    writer.add_token_types([gguf.TokenType.NORMAL] * VOCAB)
    writer.add_token_merges([])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    add_tensor(writer, "token_embd.weight", sd["model.embed_tokens.weight"], types["embed"])
    add_tensor(writer, "output_norm.weight", sd["model.norm.weight"], QT.F32)
    if not config.tie_word_embeddings:
        add_tensor(writer, "output.weight", sd["lm_head.weight"], types["output"])
    hq, hkv = config.num_attention_heads, config.num_key_value_heads
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        qb, kb = sd.get(p + "self_attn.q_proj.bias"), sd.get(p + "self_attn.k_proj.bias")
        if arch == "llama":
            q, k = llama_cpp_permute(q, hq), llama_cpp_permute(k, hkv)
        add_tensor(writer, f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"], QT.F32)
        add_tensor(writer, f"blk.{i}.attn_q.weight", q, types["q"])
        add_tensor(writer, f"blk.{i}.attn_k.weight", k, types["k"])
        add_tensor(writer, f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"], types["v"])
        if qb is not None:
            add_tensor(writer, f"blk.{i}.attn_q.bias", qb, QT.F32)
            add_tensor(writer, f"blk.{i}.attn_k.bias", kb, QT.F32)
            add_tensor(writer, f"blk.{i}.attn_v.bias", sd[p + "self_attn.v_proj.bias"], QT.F32)
        add_tensor(writer, f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"], types["o"])
        add_tensor(writer, f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"], QT.F32)
        add_tensor(writer, f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"], types["gate"])
        add_tensor(writer, f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"], types["up"])
        add_tensor(writer, f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"], types["down"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_gguf(name, arch, model_class, config, types, seed):
    torch.manual_seed(seed)
    model = model_class(config)
    perturb(model, seed)
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    path = os.path.join(out, "model.gguf")
    write_gguf(path, arch, model, config, types)
    # The goldens come from transformers' own reading of the file.
    loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file="model.gguf", dtype=torch.float32,
                                                  attn_implementation="eager")
    goldens(loaded, out, name, f"transformers {transformers.__version__} GGUF loader, fp32, eager attention")


def main():
    os.makedirs(ROOT, exist_ok=True)
    make_tiny_llama()
    make_tiny_qwen2()
    make_gguf("tiny-llama-gguf", "llama", LlamaForCausalLM,
              LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                          rms_norm_eps=1e-5, initializer_range=0.1, tie_word_embeddings=False,
                          rope_theta=10000.0),
              {"embed": QT.F16, "output": QT.Q8_0, "q": QT.Q8_0, "k": QT.Q4_1, "v": QT.Q5_0, "o": QT.Q4_0,
               "gate": QT.Q5_1, "up": QT.Q8_0, "down": QT.Q4_1}, seed=91)
    make_gguf("tiny-qwen2-gguf", "qwen2", Qwen2ForCausalLM,
              Qwen2Config(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                          rms_norm_eps=1e-6, initializer_range=0.1, tie_word_embeddings=True,
                          rope_theta=1000000.0),
              {"embed": QT.Q8_0, "q": QT.Q8_0, "k": QT.Q8_0, "v": QT.Q4_0, "o": QT.Q5_1,
               "gate": QT.F16, "up": QT.Q4_1, "down": QT.Q8_0}, seed=92)


if __name__ == "__main__":
    sys.exit(main())
