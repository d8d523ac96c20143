// Safetensors checkpoints: one file, or a Hugging Face folder sharded by
// model.safetensors.index.json. Files are memory-mapped; every header offset, size, shape and
// dtype is range-checked against the file before use.
#pragma once

#include <memory>
#include <string>

#include "io/tensor_source.h"

namespace canopy {

// Opens `path`: a .safetensors file, or a folder holding model.safetensors or
// model.safetensors.index.json with its shards. Throws canopy::Error naming the file and the
// problem for a missing, truncated or corrupted file or an unsupported dtype.
std::unique_ptr<TensorSource> open_safetensors(const std::string& path);

}  // namespace canopy
