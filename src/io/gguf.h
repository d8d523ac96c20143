// GGUF v2/v3 files: metadata key/values and tensor infos, memory-mapped.
//
// Every count, string length, array length, offset, shape and type read from the file is checked
// against the file's size and sane limits before use, so a truncated or corrupted file gives a
// canopy::Error naming the file and the field, never a crash or a huge allocation.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
// (string key, u32 value type, value), the tensor infos (string name, u32 n_dims, u64 ne[n_dims]
// innermost first, u32 type, u64 offset), padding to general.alignment (default 32), then the
// data section; tensor offsets are relative to it. Strings are u64 length + bytes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "io/tensor_source.h"

namespace canopy {

// The value types of GGUF metadata (their ids in the file).
enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufType t);

// One metadata value. Arrays hold scalars or strings (GGUF allows nested arrays; they are kept as
// GgufArray of GgufValue).
struct GgufValue;
using GgufArray = std::vector<GgufValue>;
struct GgufValue {
  // uint64 holds every unsigned integer type, int64 every signed one, double both float types.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;
  // The type as stored in the file (for an array: ARRAY; its elements carry their own).
  GgufType type = GgufType::UINT64;
};

class GgufFile : public TensorSource {
 public:
  // Memory-maps and parses the file at `path`.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses GGUF bytes held by the caller, who keeps them alive as long as the GgufFile (tensor
  // infos point into them). `name` stands for the file in messages.
  static std::unique_ptr<GgufFile> open_memory(std::span<const uint8_t> bytes, std::string name);

  uint32_t version() const;
  uint64_t alignment() const;    // general.alignment, or 32
  uint64_t data_offset() const;  // where the data section starts in the file
  const std::map<std::string, GgufValue, std::less<>>& metadata() const;
  bool has(std::string_view key) const;
  // The raw value, nullptr when absent.
  const GgufValue* find_value(std::string_view key) const;

  // Typed accessors; each throws canopy::Error naming the key when absent or of another type.
  // Integer accessors accept any integer type that fits.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // accepts integers too
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;  // accepts integers too
  // Optional variants return std::nullopt when the key is absent (still throw on a wrong type).
  std::optional<std::string> find_string(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  std::optional<double> find_float(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;

  // The tensors in file order.
  const std::vector<TensorInfo>& tensors() const;

  // TensorSource
  const TensorInfo* find(std::string_view name) const override;
  std::vector<std::string> names() const override;
  std::string description() const override;

  ~GgufFile() override;

 private:
  GgufFile();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether the bytes start with the GGUF magic.
bool is_gguf_magic(std::span<const uint8_t> first_bytes);

}  // namespace canopy
