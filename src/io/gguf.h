// GGUF v2/v3 files: metadata key/values and tensor infos, memory-mapped.
//
// Every count, string length, array length, offset, shape and type read from the file is checked
// against the file's size and sane limits before use, so a truncated or corrupted file gives a
// canopy::Error naming the file and the field, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "io/tensor_source.h"

namespace canopy {

// One metadata value. Arrays hold scalars or strings (GGUF allows nested arrays; they are kept as
// GgufArray of GgufValue).
struct GgufValue;
using GgufArray = std::vector<GgufValue>;
struct GgufValue {
  // uint64 holds every unsigned integer type, int64 every signed one, double both float types.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;
};

class GgufFile : public TensorSource {
 public:
  static std::unique_ptr<GgufFile> open(const std::string& path);

  uint32_t version() const;
  const std::map<std::string, GgufValue, std::less<>>& metadata() const;
  bool has(std::string_view key) const;

  // Typed accessors; each throws canopy::Error naming the key when absent or of another type.
  // Integer accessors accept any integer type that fits.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // accepts integers too
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  // Optional variants return std::nullopt when the key is absent (still throw on a wrong type).
  std::optional<std::string> find_string(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  std::optional<double> find_float(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;

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

}  // namespace canopy
