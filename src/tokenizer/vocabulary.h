// The token strings of a tokenizer and the reverse map from string to id (open addressing over
// 64-bit hashes; the strings themselves are compared only on a hash hit).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/string_hash.h"

namespace canopy {

class Vocabulary {
 public:
  Vocabulary() = default;
  // strings[id] is token id's string (e.g. in the model's alphabet: raw bytes for byte-level
  // BPE). When two ids share a string, lookups find the lowest id; empty strings are not indexed.
  explicit Vocabulary(std::vector<std::string> strings);
  // An index over strings the caller owns and keeps alive (and unchanged) as long as this.
  static Vocabulary view(const std::vector<std::string>& strings);

  int32_t size() const { return static_cast<int32_t>(strings_->size()); }
  const std::string& string(int32_t id) const { return (*strings_)[static_cast<size_t>(id)]; }
  std::optional<int32_t> find(std::string_view s) const {
    if (slots_.empty()) return std::nullopt;
    const uint64_t h = hash_bytes(s);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return std::nullopt;
      if (slot.hash == h && (*strings_)[static_cast<size_t>(slot.id)] == s) return slot.id;
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    int32_t id;  // -1: empty
  };
  void index();

  std::shared_ptr<const std::vector<std::string>> strings_ = std::make_shared<std::vector<std::string>>();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace canopy
