// Tensors as stored in a checkpoint file (safetensors or GGUF), before any model knows them.
//
// A TensorInfo points into a memory-mapped file: nothing is copied until a consumer dequantizes or
// converts it. Shapes are row-major, outermost dimension first (GGUF's reversed ne[] order is
// turned around by the GGUF reader), so a linear layer's weight is [out_features, in_features].
// Quantized types are blocked along the innermost dimension: shape.back() is a whole number of
// blocks, so every row starts on a block boundary.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace canopy {

// Storage types. Values are GGML's type ids, so GGUF files map onto them directly. A GGUF file may
// hold other GGML ids too (IQ*, TQ*, ...): they are representable (TensorType is a uint32_t), have
// a known block layout, and are rejected only when dequantized.
enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

// "Q4_1", or "unknown" for an id GGML never defined.
std::string_view tensor_type_name(TensorType t);
// Like tensor_type_name, but "unknown type id 99" for unknown ids: for error messages.
std::string tensor_type_label(TensorType t);
// Whether the id is a GGML type with a known block layout (every id GGML has defined).
bool tensor_type_known(TensorType t);
// Whether dequantize_row() decodes the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
// Q3_K, Q4_K, Q5_K, Q6_K.
bool tensor_type_supported(TensorType t);
// Elements per block and bytes per block of a (possibly quantized) type; 1 and the element size
// for plain types. Throws canopy::Error naming the type id when its layout is unknown.
int64_t tensor_type_block_elems(TensorType t);
int64_t tensor_type_block_bytes(TensorType t);
// Bytes of a row-major tensor of `numel` elements; throws when numel is not a whole number of
// blocks or the size overflows.
uint64_t tensor_type_bytes(TensorType t, int64_t numel);

// Product of the dimensions; throws canopy::Error for a negative dimension or an overflow.
// An empty shape (a scalar) has one element.
int64_t shape_numel(std::span<const int64_t> shape);

struct TensorInfo {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<int64_t> shape;      // outermost first
  std::span<const uint8_t> bytes;  // exactly tensor_type_bytes(type, numel()) bytes, in the file
  std::string file;                // the file it lives in, for error messages

  int64_t numel() const;
};

// Decodes `info` into f32 at dst (numel() floats). Supports every type tensor_type_supported()
// accepts; throws canopy::Error naming the tensor and its type otherwise. Large tensors (4M
// elements and more) are decoded by several OpenMP threads.
void dequantize_to_f32(const TensorInfo& info, float* dst);
// Decodes several tensors in one parallel region: the way to load a whole model. Every job is
// checked (as dequantize_to_f32 does) before any is decoded.
struct DequantizeJob {
  const TensorInfo* info;
  float* dst;  // info->numel() floats
};
void dequantize_many(std::span<const DequantizeJob> jobs);
// Decodes `n` elements of raw data of type t (n a multiple of the block size) into dst.
// src needs no particular alignment. Throws canopy::Error for an unsupported type or a bad n.
void dequantize_row(TensorType t, const uint8_t* src, float* dst, int64_t n);

// A set of named tensors from one or more files (a sharded safetensors folder, one GGUF file).
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // nullptr when absent.
  virtual const TensorInfo* find(std::string_view name) const = 0;
  // Every tensor's name, sorted.
  virtual std::vector<std::string> names() const = 0;
  // Like find(), but throws canopy::Error naming the tensor and the source when absent.
  const TensorInfo& get(std::string_view name) const;
  virtual std::string description() const = 0;  // e.g. the folder or file path
};

// Opens a checkpoint of either format: a .gguf file (recognised by its magic bytes), a
// .safetensors file, or a Hugging Face folder (see open_safetensors). Throws canopy::Error naming
// the path when it is neither.
std::unique_ptr<TensorSource> open_checkpoint(const std::string& path);

}  // namespace canopy
