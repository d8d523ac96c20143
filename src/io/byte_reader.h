// A bounds-checked little-endian reader over the bytes of a checkpoint file (internal to io).
//
// Every read checks the remaining length first and throws canopy::Error naming the file, the
// offset and the field being read, so a truncated or corrupted file can never read out of bounds.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace canopy::io_detail {

class ByteReader {
 public:
  // `file` names the bytes in messages; `context` is prepended to every field name (e.g. the
  // metadata key being read) and may be changed as parsing proceeds.
  ByteReader(std::span<const uint8_t> bytes, std::string file) : bytes_(bytes), file_(std::move(file)) {}

  uint64_t pos() const { return pos_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::string& file() const { return file_; }
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  // Throws unless `n` more bytes are available for `what`.
  void need(uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail("'{}' is truncated or corrupted: {}{}{} needs {} bytes at offset {} but only {} remain",
           file_, context_, context_.empty() ? "" : ": ", what, n, pos_, remaining());
    }
  }

  std::span<const uint8_t> take(uint64_t n, std::string_view what) {
    need(n, what);
    std::span<const uint8_t> out = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += n;
    return out;
  }

  template <typename T>
  T read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));  // little-endian host assumed (x86, arm)
    pos_ += sizeof(T);
    return v;
  }

  uint8_t u8(std::string_view what) { return read<uint8_t>(what); }
  uint32_t u32(std::string_view what) { return read<uint32_t>(what); }
  uint64_t u64(std::string_view what) { return read<uint64_t>(what); }

  // Moves to an absolute offset (at most the end).
  void seek(uint64_t offset, std::string_view what) {
    if (offset > size()) {
      fail("'{}' is truncated or corrupted: {}{}{} lies at offset {} beyond the end ({} bytes)",
           file_, context_, context_.empty() ? "" : ": ", what, offset, size());
    }
    pos_ = offset;
  }

  // Throws a canopy::Error for a field whose value cannot be right for a file of this size (a
  // count or length too large for the bytes left): truncation or corruption.
  template <typename... Args>
  [[noreturn]] void truncated(fmt::format_string<Args...> format, Args&&... args) const {
    fail("'{}' is truncated or corrupted: {}{}{}", file_, context_, context_.empty() ? "" : ": ",
         fmt::format(format, std::forward<Args>(args)...));
  }

  // Throws a canopy::Error naming the file, the context and the field.
  template <typename... Args>
  [[noreturn]] void corrupt(fmt::format_string<Args...> format, Args&&... args) const {
    fail("'{}' is corrupted: {}{}{}", file_, context_, context_.empty() ? "" : ": ",
         fmt::format(format, std::forward<Args>(args)...));
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string file_;
  std::string context_;
  uint64_t pos_ = 0;
};

}  // namespace canopy::io_detail
