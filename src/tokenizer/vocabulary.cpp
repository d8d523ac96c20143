#include "tokenizer/vocabulary.h"

#include <bit>

namespace canopy {

Vocabulary::Vocabulary(std::vector<std::string> strings)
    : strings_(std::make_shared<const std::vector<std::string>>(std::move(strings))) {
  index();
}

Vocabulary Vocabulary::view(const std::vector<std::string>& strings) {
  Vocabulary v;
  v.strings_ = std::shared_ptr<const std::vector<std::string>>(std::shared_ptr<void>(), &strings);
  v.index();
  return v;
}

void Vocabulary::index() {
  const std::vector<std::string>& strings = *strings_;
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, strings.size() * 2));
  slots_.assign(capacity, Slot{0, -1});
  mask_ = capacity - 1;
  for (size_t id = 0; id < strings.size(); ++id) {
    if (strings[id].empty()) continue;  // an id the vocabulary leaves out
    const uint64_t h = hash_bytes(strings[id]);
    size_t i = h & mask_;
    bool duplicate = false;
    while (slots_[i].id >= 0) {
      if (slots_[i].hash == h && strings[static_cast<size_t>(slots_[i].id)] == strings[id]) {
        duplicate = true;  // keep the lowest id
        break;
      }
      i = (i + 1) & mask_;
    }
    if (!duplicate) slots_[i] = Slot{h, static_cast<int32_t>(id)};
  }
}

}  // namespace canopy
