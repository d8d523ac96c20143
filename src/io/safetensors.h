// Safetensors checkpoints: one file, or a Hugging Face folder sharded by
// model.safetensors.index.json. Files are memory-mapped; every header offset, size, shape and
// dtype is range-checked against the file before use.
//
// Layout: u64 little-endian header length N, N bytes of JSON mapping each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data section that
// follows the header; "__metadata__" is ignored), then the data section.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "io/tensor_source.h"

namespace canopy {

// Opens `path`: a .safetensors file, or a folder holding model.safetensors or
// model.safetensors.index.json with its shards. Throws canopy::Error naming the file and the
// problem for a missing, truncated or corrupted file or an unsupported dtype (F32, F16 and BF16
// are read). With an index, the source holds exactly the tensors of its weight_map, each from
// the shard the map names.
std::unique_ptr<TensorSource> open_safetensors(const std::string& path);

// Parses one safetensors file held in memory by the caller, who keeps the bytes alive as long as
// the source. `name` stands for the file in messages.
std::unique_ptr<TensorSource> open_safetensors_memory(std::span<const uint8_t> bytes, std::string name);

}  // namespace canopy
