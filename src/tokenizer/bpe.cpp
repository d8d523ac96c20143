#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

// std heap order: the top is the candidate with the lowest rank, then the leftmost position.
bool lower_priority(const BpeModel::Scratch::Candidate& a, const BpeModel::Scratch::Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

const char* const kHex = "0123456789ABCDEF";

}  // namespace

BpeModel::BpeModel(Config config, const Vocabulary* vocab, const std::vector<MergeRule>& rules)
    : config_(config), vocab_(vocab) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, rules.size() * 2));
  slots_.assign(capacity, Slot{kEmpty, 0, 0});
  mask_ = capacity - 1;
  shift_ = 64 - std::countr_zero(capacity);
  for (const MergeRule& r : rules) {
    const uint64_t k = key(r.left, r.right);
    size_t i = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    // A pair listed twice keeps its last rule, as in Hugging Face (its merges become a hash map).
    slots_[i] = Slot{k, r.rank, r.merged};
  }
  for (int b = 0; b < 256; ++b) {
    std::optional<int32_t> id;
    if (config_.byte_level) {
      id = vocab_->find(std::string(1, static_cast<char>(b)));
    } else {
      const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
      id = vocab_->find(name);
    }
    byte_ids_[b] = id ? *id : -1;
  }
  for (int c = 0; c < 128; ++c) {
    const auto id = config_.byte_level ? std::nullopt : vocab_->find(std::string(1, static_cast<char>(c)));
    ascii_ids_[c] = id ? *id : -1;
  }
}

void BpeModel::initial_symbols(std::string_view piece, Scratch& scratch) const {
  auto& symbols = scratch.symbols;
  symbols.clear();
  auto push = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  };
  if (config_.byte_level) {
    for (const char ch : piece) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(ch)];
      if (id >= 0)
        push(id);
      else if (config_.unk_id >= 0 && !(config_.fuse_unk && !symbols.empty() && symbols.back().id == config_.unk_id))
        push(config_.unk_id);
    }
  } else {
    bool previous_unknown = false;
    size_t i = 0;
    while (i < piece.size()) {
      const auto lead = static_cast<unsigned char>(piece[i]);
      const size_t n = std::min(utf8::sequence_length(lead), piece.size() - i);
      int32_t id = -1;
      if (lead < 0x80) {
        id = ascii_ids_[lead];
      } else if (auto found = vocab_->find(piece.substr(i, n))) {
        id = *found;
      }
      if (id >= 0) {
        push(id);
        previous_unknown = false;
      } else {
        bool all_bytes = config_.byte_fallback;
        for (size_t k = 0; all_bytes && k < n; ++k) all_bytes = byte_ids_[static_cast<unsigned char>(piece[i + k])] >= 0;
        if (all_bytes) {
          for (size_t k = 0; k < n; ++k) push(byte_ids_[static_cast<unsigned char>(piece[i + k])]);
          previous_unknown = false;
        } else if (config_.unk_id >= 0) {
          if (!(config_.fuse_unk && previous_unknown)) push(config_.unk_id);
          previous_unknown = true;
        }
      }
      i += n;
    }
  }
  if (!symbols.empty()) symbols.back().next = -1;
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out, Scratch& scratch) const {
  if (piece.empty()) return;
  if (config_.ignore_merges) {
    if (auto id = vocab_->find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  initial_symbols(piece, scratch);
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  heap.clear();
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Slot* rule = find_rule(symbols[i].id, symbols[i + 1].id))
      heap.push_back({rule->rank, static_cast<int32_t>(i), rule->merged});
  }
  std::make_heap(heap.begin(), heap.end(), lower_priority);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), lower_priority);
    const Scratch::Candidate top = heap.back();
    heap.pop_back();
    auto& left = symbols[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    auto& right = symbols[static_cast<size_t>(left.next)];
    // A stale candidate: the pair at this position changed since it was queued.
    const Slot* rule = find_rule(left.id, right.id);
    if (rule == nullptr || rule->merged != top.merged) continue;
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const Slot* r = find_rule(symbols[static_cast<size_t>(left.prev)].id, left.id)) {
        heap.push_back({r->rank, left.prev, r->merged});
        std::push_heap(heap.begin(), heap.end(), lower_priority);
      }
    }
    if (left.next >= 0) {
      if (const Slot* r = find_rule(left.id, symbols[static_cast<size_t>(left.next)].id)) {
        heap.push_back({r->rank, top.pos, r->merged});
        std::push_heap(heap.begin(), heap.end(), lower_priority);
      }
    }
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
    out.push_back(symbols[static_cast<size_t>(i)].id);
}

WordCache::WordCache() : slots_(kSlots, Slot{0, 0, 0, 0, 0, 0}) {}

void WordCache::clear() {
  keys_.clear();
  ids_.clear();
  entries_ = 0;
  if (++generation_ == 0) {  // after 2^32 generations, really empty the slots once
    slots_.assign(kSlots, Slot{0, 0, 0, 0, 0, 0});
    generation_ = 1;
  }
}

bool WordCache::lookup(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxWordBytes) return false;
  const uint64_t h = hash_bytes(word);
  for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
    const Slot& s = slots_[i];
    if (s.generation != generation_) return false;
    if (s.hash == h && s.key_length == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.ids_count);
      return true;
    }
  }
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t count) {
  if (word.empty() || word.size() > kMaxWordBytes || count > UINT16_MAX) return;
  if (entries_ >= kMaxEntries) clear();
  const uint64_t h = hash_bytes(word);
  size_t i = h & (kSlots - 1);
  while (slots_[i].generation == generation_) {
    const Slot& s = slots_[i];
    if (s.hash == h && s.key_length == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0)
      return;  // already there
    i = (i + 1) & (kSlots - 1);
  }
  slots_[i] = Slot{h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(ids_.size()), generation_,
                   static_cast<uint16_t>(word.size()), static_cast<uint16_t>(count)};
  keys_.append(word);
  ids_.insert(ids_.end(), ids, ids + count);
  ++entries_;
}

}  // namespace canopy
