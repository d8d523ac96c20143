// A read-only memory-mapped file. Model weights are mapped, not read, so loading a checkpoint
// costs page faults on the tensors actually used, and nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace canopy {

class MappedFile {
 public:
  // Maps the whole file; throws canopy::Error naming the path when it cannot be opened.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  // The bytes [offset, offset + length); throws canopy::Error (naming the file and `what`) when
  // the range is not inside the file. Overflow-safe.
  std::span<const uint8_t> range(uint64_t offset, uint64_t length, const char* what) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) text file; throws canopy::Error naming the path on failure.
std::string read_text_file(const std::string& path);

}  // namespace canopy
