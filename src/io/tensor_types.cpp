// The table of GGML storage types: names and block layouts, and the sizes derived from them.
#include <array>
#include <limits>

#include "core/error.h"
#include "io/tensor_source.h"

namespace canopy {
namespace {

struct TypeLayout {
  uint32_t id;
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
  bool dequantizable;  // dequantize_row() decodes it
};

// Every type id GGML has defined, so that a GGUF file holding a type canopy cannot decode still
// opens (its metadata and tokenizer stay readable); only dequantizing such a tensor fails.
// Sizes follow the GGML block definitions (QK_K = 256).
constexpr std::array<TypeLayout, 34> kLayouts{{
    {0, "F32", 1, 4, true},
    {1, "F16", 1, 2, true},
    {2, "Q4_0", 32, 2 + 16, true},
    {3, "Q4_1", 32, 2 + 2 + 16, true},
    {6, "Q5_0", 32, 2 + 4 + 16, true},
    {7, "Q5_1", 32, 2 + 2 + 4 + 16, true},
    {8, "Q8_0", 32, 2 + 32, true},
    {9, "Q8_1", 32, 4 + 4 + 32, false},
    {10, "Q2_K", 256, 2 + 2 + 16 + 64, true},
    {11, "Q3_K", 256, 2 + 64 + 32 + 12, true},
    {12, "Q4_K", 256, 2 + 2 + 12 + 128, true},
    {13, "Q5_K", 256, 2 + 2 + 12 + 32 + 128, true},
    {14, "Q6_K", 256, 128 + 64 + 16 + 2, true},
    {15, "Q8_K", 256, 4 + 256 + 32, false},
    {16, "IQ2_XXS", 256, 2 + 64, false},
    {17, "IQ2_XS", 256, 2 + 64 + 8, false},
    {18, "IQ3_XXS", 256, 2 + 64 + 32, false},
    {19, "IQ1_S", 256, 2 + 32 + 16, false},
    {20, "IQ4_NL", 32, 2 + 16, false},
    {21, "IQ3_S", 256, 2 + 64 + 32 + 8 + 4, false},
    {22, "IQ2_S", 256, 2 + 64 + 16, false},
    {23, "IQ4_XS", 256, 2 + 2 + 128 + 4, false},
    {24, "I8", 1, 1, false},
    {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},
    {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},
    {29, "IQ1_M", 256, 32 + 16 + 8, false},
    {30, "BF16", 1, 2, true},
    {34, "TQ1_0", 256, 2 + 52, false},
    {35, "TQ2_0", 256, 2 + 64, false},
    {39, "MXFP4", 32, 1 + 16, false},
    {40, "NVFP4", 64, 4 + 32, false},
    {41, "Q1_0", 128, 2 + 16, false},
}};

const TypeLayout* find_layout(TensorType t) {
  for (const auto& l : kLayouts)
    if (l.id == static_cast<uint32_t>(t)) return &l;
  return nullptr;
}

const TypeLayout& layout_or_throw(TensorType t) {
  const TypeLayout* l = find_layout(t);
  CANOPY_CHECK(l != nullptr, "unknown tensor type id {}", static_cast<uint32_t>(t));
  return *l;
}

}  // namespace

std::string_view tensor_type_name(TensorType t) {
  const TypeLayout* l = find_layout(t);
  return l != nullptr ? l->name : std::string_view("unknown");
}

std::string tensor_type_label(TensorType t) {
  const TypeLayout* l = find_layout(t);
  if (l != nullptr) return std::string(l->name);
  return fmt::format("unknown type id {}", static_cast<uint32_t>(t));
}

bool tensor_type_known(TensorType t) { return find_layout(t) != nullptr; }

bool tensor_type_supported(TensorType t) {
  const TypeLayout* l = find_layout(t);
  return l != nullptr && l->dequantizable;
}

int64_t tensor_type_block_elems(TensorType t) { return layout_or_throw(t).block_elems; }
int64_t tensor_type_block_bytes(TensorType t) { return layout_or_throw(t).block_bytes; }

uint64_t tensor_type_bytes(TensorType t, int64_t numel) {
  const TypeLayout& l = layout_or_throw(t);
  CANOPY_CHECK(numel >= 0, "negative element count {} for a {} tensor", numel, l.name);
  CANOPY_CHECK(numel % l.block_elems == 0,
               "{} elements are not a whole number of {} blocks ({} elements each)", numel, l.name,
               l.block_elems);
  const uint64_t blocks = static_cast<uint64_t>(numel / l.block_elems);
  const uint64_t block_bytes = static_cast<uint64_t>(l.block_bytes);
  CANOPY_CHECK(blocks <= std::numeric_limits<uint64_t>::max() / block_bytes,
               "a {} tensor of {} elements is too large", l.name, numel);
  return blocks * block_bytes;
}

int64_t shape_numel(std::span<const int64_t> shape) {
  bool empty = false;
  for (const int64_t d : shape) {
    CANOPY_CHECK(d >= 0, "negative dimension {} in a tensor shape", d);
    empty = empty || d == 0;
  }
  if (empty) return 0;
  int64_t n = 1;
  for (const int64_t d : shape) {
    CANOPY_CHECK(n <= std::numeric_limits<int64_t>::max() / d,
                 "tensor shape has too many elements (the product overflows)");
    n *= d;
  }
  return n;
}

int64_t TensorInfo::numel() const { return shape_numel(shape); }

const TensorInfo& TensorSource::get(std::string_view name) const {
  const TensorInfo* info = find(name);
  CANOPY_CHECK(info != nullptr, "tensor '{}' not found in {}", name, description());
  return *info;
}

}  // namespace canopy
