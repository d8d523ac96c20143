// Helpers for the io tests: fixture paths, byte builders for crafted GGUF and safetensors files,
// and assertions on error messages.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "testing/testing.h"

namespace canopy::io_test {

inline std::string fixture(const std::string& name) {
  return canopy::testing::source_dir() + "/tests/data/io/" + name;
}

inline std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Runs `f`, expects a canopy::Error, and returns its message ("" and a test failure otherwise).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const canopy::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected canopy::Error, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected canopy::Error, nothing was thrown";
  return "";
}

// Expects every needle to occur in `message`.
#define EXPECT_MESSAGE_HAS(message, ...)                                    \
  do {                                                                      \
    const std::string msg_ = (message);                                     \
    for (const std::string& needle_ : std::initializer_list<std::string>{__VA_ARGS__}) \
      EXPECT_NE(msg_.find(needle_), std::string::npos)                      \
          << "message lacks '" << needle_ << "': " << msg_;                 \
  } while (0)

// Little-endian byte writer.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    s_.append(buf, sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& v) {
    u64(v.size());
    s_ += v;
    return *this;
  }
  Bytes& raw(const std::string& v) {
    s_ += v;
    return *this;
  }
  const std::string& bytes() const { return s_; }

 private:
  std::string s_;
};

// GGUF metadata value type ids and a few common tensor type ids.
enum : uint32_t { kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64 };

// A GGUF file assembled from parts, so tests can corrupt any one of them.
struct GgufSpec {
  uint32_t version = 3;
  std::vector<std::string> kvs;    // encoded metadata entries
  std::vector<std::string> infos;  // encoded tensor infos
  std::string data;                // the data section
  uint64_t alignment = 32;
  // Override the counts written in the header (default: the sizes of kvs and infos).
  std::optional<uint64_t> tensor_count, kv_count;

  std::string encode() const {
    Bytes b;
    b.raw("GGUF").u32(version);
    b.u64(tensor_count.value_or(infos.size()));
    b.u64(kv_count.value_or(kvs.size()));
    for (const auto& kv : kvs) b.raw(kv);
    for (const auto& ti : infos) b.raw(ti);
    std::string out = b.bytes();
    out.resize((out.size() + alignment - 1) / alignment * alignment, '\0');
    return out + data;
  }
};

inline std::string kv_u32(const std::string& key, uint32_t v) { return Bytes().str(key).u32(kU32).u32(v).bytes(); }
inline std::string kv_string(const std::string& key, const std::string& v) {
  return Bytes().str(key).u32(kString).str(v).bytes();
}
inline std::string kv_raw(const std::string& key, uint32_t type, const std::string& value) {
  return Bytes().str(key).u32(type).raw(value).bytes();
}
// ne is innermost first, as in the file.
inline std::string tensor_info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                               uint64_t offset) {
  Bytes b;
  b.str(name).u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t d : ne) b.u64(d);
  b.u32(type).u64(offset);
  return b.bytes();
}

inline std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// A safetensors file: u64 header length, the header, the data.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return Bytes().u64(header.size()).raw(header).raw(data).bytes();
}

}  // namespace canopy::io_test
