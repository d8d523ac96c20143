// Byte-pair encoding of one pre-token.
//
// A pre-token starts as a sequence of symbols (single bytes for byte-level BPE; single characters
// for SentencePiece-style BPE, where a character missing from the vocabulary becomes its <0xXX>
// byte tokens or the unknown token). Then the adjacent pair with the lowest merge rank is merged,
// leftmost first among equal ranks, until no adjacent pair has a rule. Pairs live in a binary
// heap with lazy deletion, so a pre-token of n symbols costs O(n log n), never a rescan per merge;
// this is the algorithm (and tie-breaking) of Hugging Face's BPE model. SentencePiece vocabularies
// that come with scores instead of merges get one rule per way of splitting a token into two
// tokens, ranked by the token's score (higher score first), which is SentencePiece's own order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocabulary.h"

namespace canopy {

struct MergeRule {
  int32_t left, right;  // the pair of token ids
  int32_t merged;       // the token they become
  int32_t rank;         // lower merges first
};

class BpeModel {
 public:
  struct Config {
    bool byte_level = false;     // symbols start as bytes; the vocabulary holds raw bytes
    bool byte_fallback = false;  // an unknown character becomes its <0xXX> tokens
    int32_t unk_id = -1;         // else the unknown token (-1: the character is dropped)
    bool fuse_unk = false;       // consecutive unknown characters give one unknown token
    bool ignore_merges = false;  // a pre-token that is itself a token is not merged (Llama 3)
  };

  // Working memory of one encode call (reused across pre-tokens to avoid allocations).
  struct Scratch {
    struct Symbol {
      int32_t id, prev, next;
      bool alive;
    };
    struct Candidate {
      int32_t rank, pos, merged;
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };

  BpeModel() = default;
  BpeModel(Config config, const Vocabulary* vocab, const std::vector<MergeRule>& rules);

  const Config& config() const { return config_; }

  // Appends the ids of one pre-token (valid UTF-8 unless byte-level) to `out`.
  void encode(std::string_view piece, std::vector<int32_t>& out, Scratch& scratch) const;

 private:
  struct Slot {
    uint64_t key;  // kEmpty or (left << 32 | right)
    int32_t rank, merged;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  const Slot* find_rule(int32_t left, int32_t right) const {
    const uint64_t k = key(left, right);
    size_t i = static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s;
      if (s.key == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  void initial_symbols(std::string_view piece, Scratch& scratch) const;

  Config config_;
  const Vocabulary* vocab_ = nullptr;
  std::vector<Slot> slots_;  // open addressing, linear probing, load <= 1/2
  size_t mask_ = 0;
  int shift_ = 64;
  int32_t byte_ids_[256];  // byte-level: the token of each byte; else its <0xXX> token (-1: none)
  int32_t ascii_ids_[128];  // SentencePiece style: the token of each ASCII character (-1: none)
};

// A bounded cache of recent pre-token encodings (open addressing over 64-bit hashes). When full
// it starts over rather than track recency: cheap, and a working set refills it at once.
// Tokenizer::encode keeps one per thread (no locks), tagged with the tokenizer it belongs to.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 64;
  static constexpr size_t kMaxEntries = 1 << 15;

  WordCache();
  // Appends the cached ids of `word` to out; false when it is not cached.
  bool lookup(std::string_view word, std::vector<int32_t>& out) const;
  void insert(std::string_view word, const int32_t* ids, size_t count);
  void clear();

 private:
  struct Slot {
    uint64_t hash;
    uint32_t key_offset, ids_offset;
    uint32_t generation;  // the slot is empty unless this is the cache's current generation
    uint16_t key_length, ids_count;
  };
  static constexpr size_t kSlots = kMaxEntries * 2;

  // clear() only starts a new generation, so that switching tokenizers costs nothing.
  uint32_t generation_ = 1;
  std::vector<Slot> slots_;
  std::string keys_;          // the cached words, back to back
  std::vector<int32_t> ids_;  // their ids, back to back
  size_t entries_ = 0;
};

}  // namespace canopy
