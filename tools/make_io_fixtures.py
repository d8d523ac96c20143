#!/usr/bin/env python3
"""Writes the io layer's golden test files under tests/data/io/.

  /work/venv/bin/python tools/make_io_fixtures.py [--model PATH]

Files (all small; deterministic for a fixed seed):
  types.gguf          one tensor "t.<TYPE>" of random blocks for every type canopy dequantizes,
                      with "expected.<TYPE>" (F32) holding the gguf package's dequantization of it;
                      tensors of 1-4 dimensions; metadata of every GGUF value type, nested arrays.
  aligned64.gguf      two tensors with general.alignment = 64.
  st_single/model.safetensors, st_sharded/ (two shards and model.safetensors.index.json),
  st_expected.safetensors
                      F32/F16/BF16 tensors (written with torch + safetensors) and their f32 values.
  ../../fuzz/corpus/  seed inputs of the fuzz targets: a small GGUF holding one block of every
                      type, aligned64.gguf, the safetensors files above, and config.json files
                      (config, a NUL byte, generation_config) for fuzz_json_config.
  smollm2_spot.json   spot values of the default model's tensors, dequantized by the gguf package
                      (only when the model is found: --model, $CANOPY_MODEL or ~/.cache/canopy).
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "io"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
SEED = 20261125

# Byte offsets of the f16 scale fields inside one block of each quantized type: they get finite
# random values so that the dequantized values are finite (every other byte is uniformly random).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def random_blocks(rng, qtype, rows, cols):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    assert cols % block_elems == 0
    n_blocks = rows * cols // block_elems
    blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scales = (rng.uniform(-2.0, 2.0, size=n_blocks)).astype(np.float16)
        blocks[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(rows, cols // block_elems * block_bytes)


def f16_values(rng, n):
    v = rng.normal(0, 4, size=n).astype(np.float16)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, -65504.0, 6.1e-5,
                         5.96e-8, -5.96e-8, 1e-6, 0.5], dtype=np.float16)
    v[: len(specials)] = specials
    return v


def bf16_bits(rng, n):
    # Random bit patterns over the whole range, with NaNs made quiet, plus specials.
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    is_nan = ((bits & 0x7F80) == 0x7F80) & ((bits & 0x7F) != 0)
    bits[is_nan] = (bits[is_nan] & 0x8000) | 0x7FC0
    bits[:6] = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x0001]
    return bits


def write_types_gguf(rng):
    w = GGUFWriter(OUT / "types.gguf", arch="canopytest")
    # Metadata of every value type (the writer adds general.architecture itself).
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo wörld")
    w.add_key_value("test.empty_string", "", GGUFValueType.STRING)  # add_string skips ""
    w.add_uint64("test.u64", 18000000000000000000)
    w.add_int64("test.i64", -9000000000000000000)
    w.add_float64("test.f64", 2.718281828459045)
    w.add_array("test.strings", ["a", "", "ßç", "token with spaces"])
    w.add_array("test.ints", [1, -2, 3, 2147483647])
    w.add_array("test.floats", [0.5, -1.25, 3.0])
    w.add_array("test.bools", [True, False, True])
    w.add_array("test.nested", [["x", "y"], ["z"], ["u", "v", "w"]])
    w.add_array("test.nested_ints", [[1, 2], [3]])

    expected = {}
    for qtype in F16_FIELDS:
        rows, cols = 3, 512
        blocks = random_blocks(rng, qtype, rows, cols)
        w.add_tensor(f"t.{qtype.name}", blocks, raw_dtype=qtype)
        expected[qtype.name] = dequantize(blocks, qtype).astype(np.float32)
        assert expected[qtype.name].shape == (rows, cols)
        assert np.isfinite(expected[qtype.name]).all()

    f32 = rng.normal(0, 1, size=(4, 33)).astype(np.float32)
    f32[0, :4] = [np.inf, -np.inf, 0.0, -0.0]
    w.add_tensor("t.F32", f32)
    expected["F32"] = f32
    f16 = f16_values(rng, 3 * 40).reshape(3, 40)
    w.add_tensor("t.F16", f16)
    expected["F16"] = f16.astype(np.float32)
    bf16 = bf16_bits(rng, 5 * 24).reshape(5, 24)
    w.add_tensor("t.BF16", bf16.view(np.uint8), raw_dtype=T.BF16)
    expected["BF16"] = dequantize(bf16.view(np.uint8), T.BF16).astype(np.float32)

    for name, values in expected.items():
        w.add_tensor(f"expected.{name}", np.ascontiguousarray(values, dtype=np.float32))

    # Dimension order: numpy shapes are outermost first, as canopy reports them.
    w.add_tensor("shape.1d", np.arange(7, dtype=np.float32))
    w.add_tensor("shape.3d", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    w.add_tensor("shape.4d", np.arange(2 * 1 * 3 * 32, dtype=np.float32).astype(np.float16).reshape(2, 1, 3, 32))
    w.add_tensor("shape.q8_1d", random_blocks(rng, T.Q8_0, 1, 64).reshape(-1), raw_dtype=T.Q8_0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_aligned_gguf(rng):
    w = GGUFWriter(OUT / "aligned64.gguf", arch="canopytest")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(5, dtype=np.float32))
    w.add_tensor("b", np.arange(3, dtype=np.float32) + 100)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_safetensors(rng):
    g = torch.Generator().manual_seed(SEED)
    f16 = torch.from_numpy(f16_values(rng, 20).reshape(4, 5))
    bf16 = torch.from_numpy(bf16_bits(rng, 32).astype(np.int16).reshape(2, 2, 8)).view(torch.bfloat16)
    tensors = {
        "a.f32": torch.randn(2, 3, generator=g),
        "b.f16": f16,
        "c.bf16": bf16,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    (OUT / "st_single").mkdir(exist_ok=True)
    save_file(tensors, OUT / "st_single" / "model.safetensors", metadata={"format": "pt"})
    save_file({k: v.float() for k, v in tensors.items()}, OUT / "st_expected.safetensors")

    (OUT / "st_sharded").mkdir(exist_ok=True)
    shards = {
        "model-00001-of-00002.safetensors": ["a.f32", "b.f16"],
        "model-00002-of-00002.safetensors": ["c.bf16", "scalar", "empty"],
    }
    weight_map = {}
    for file, names in shards.items():
        save_file({n: tensors[n] for n in names}, OUT / "st_sharded" / file, metadata={"format": "pt"})
        weight_map.update({n: file for n in names})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (OUT / "st_sharded" / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def write_fuzz_seeds(rng):
    """Small seeds: libFuzzer mutates them, so every structure the readers know appears once."""
    gguf_dir = CORPUS / "fuzz_gguf"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(gguf_dir / "one_block_per_type.gguf", arch="llama")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_array("tokenizer.ggml.tokens", ["<s>", "a", "b"])
    w.add_array("tokenizer.ggml.scores", [0.0, -1.0, -2.0])
    w.add_array("tokenizer.ggml.token_type", [3, 1, 1])
    w.add_array("nested", [["x"], ["y", "z"]])
    w.add_int64("i64", -5)
    w.add_float64("f64", 0.25)
    for qtype in F16_FIELDS:
        block_elems = GGML_QUANT_SIZES[qtype][0]
        w.add_tensor(qtype.name, random_blocks(rng, qtype, 1, block_elems), raw_dtype=qtype)
    w.add_tensor("F32", rng.normal(size=(2, 3)).astype(np.float32))
    w.add_tensor("F16", rng.normal(size=(4,)).astype(np.float16))
    w.add_tensor("BF16", bf16_bits(rng, 8).view(np.uint8), raw_dtype=T.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (gguf_dir / "aligned64.gguf").write_bytes((OUT / "aligned64.gguf").read_bytes())

    st_dir = CORPUS / "fuzz_safetensors"
    st_dir.mkdir(parents=True, exist_ok=True)
    (st_dir / "single.safetensors").write_bytes((OUT / "st_single" / "model.safetensors").read_bytes())
    for i, shard in enumerate(sorted((OUT / "st_sharded").glob("*.safetensors"))):
        (st_dir / f"shard{i + 1}.safetensors").write_bytes(shard.read_bytes())


# A SmolLM2-135M-style config.json with Llama 3 rope scaling under its older key, "rope_scaling".
SMOLLM2_LIKE_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "rms_norm_eps": 1e-05,
    "rope_theta": 100000, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "vocab_size": 49152,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
}


def write_config_seeds():
    config_dir = CORPUS / "fuzz_json_config"
    config_dir.mkdir(parents=True, exist_ok=True)
    for model in ("tiny-llama", "tiny-qwen2"):
        folder = ROOT / "tests" / "data" / "models" / model
        if (folder / "config.json").is_file():
            seed = (folder / "config.json").read_bytes() + b"\0" + (folder / "generation_config.json").read_bytes()
            (config_dir / f"{model}.json").write_bytes(seed)
    (config_dir / "smollm2-like.json").write_text(json.dumps(SMOLLM2_LIKE_CONFIG, indent=1) + "\0{\"eos_token_id\": [2, 0]}")


def write_model_spots(model_path):
    reader = GGUFReader(model_path)
    rng = np.random.default_rng(SEED)
    wanted = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight",
              "blk.29.ffn_down.weight", "output_norm.weight"]
    spots = []
    for t in reader.tensors:
        if t.name not in wanted:
            continue
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
        idx = sorted(set([0, 1, 2, 31, 32, len(values) - 1] + rng.integers(0, len(values), 10).tolist()))
        spots.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "shape": [int(d) for d in reversed(t.shape.tolist())],  # outermost first
            "indices": idx,
            "values": [float(values[i]) for i in idx],
            "sum": float(values.astype(np.float64).sum()),
            "abs_sum": float(np.abs(values.astype(np.float64)).sum()),
        })
    assert len(spots) == len(wanted), [s["name"] for s in spots]
    (OUT / "smollm2_spot.json").write_text(json.dumps({"tensors": spots}, indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="SmolLM2-135M-Instruct.Q4_1.gguf (default: $CANOPY_MODEL or ~/.cache/canopy)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    write_types_gguf(rng)
    write_aligned_gguf(rng)
    write_safetensors(rng)
    write_fuzz_seeds(rng)
    write_config_seeds()
    model = args.model or os.environ.get("CANOPY_MODEL") or str(
        Path.home() / ".cache" / "canopy" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    if Path(model).is_file():
        write_model_spots(model)
    else:
        print(f"model not found at {model}: smollm2_spot.json left as it is")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
