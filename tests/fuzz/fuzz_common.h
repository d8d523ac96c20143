// Shared by the fuzz targets: decode every tensor of a source that parsed, so that the fuzzer
// also drives dequantization over whatever shapes, types and bytes the parser accepted.
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "io/tensor_source.h"

namespace canopy::fuzz {

inline void decode_all(const TensorSource& source) {
  std::vector<float> out;
  for (const auto& name : source.names()) {
    const TensorInfo& t = source.get(name);
    if (!tensor_type_supported(t.type)) continue;
    // The parser guarantees the bytes lie in the input, so numel is bounded by its size.
    out.resize(static_cast<size_t>(t.numel()));
    dequantize_to_f32(t, out.data());
  }
}

}  // namespace canopy::fuzz
