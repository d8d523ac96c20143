// The KV cache manager: slot mapping, forks, copy-on-write, prefix caching, exhaustion, no leaks.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/error.h"
#include "kv/kv_cache_manager.h"
#include "testing/testing.h"

namespace canopy {
namespace {

std::vector<int32_t> iota_tokens(int32_t n, int32_t first = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = first + i;
  return t;
}

TEST(KvCacheManager, AppendMapsTokensToSlotsOfItsBlocks) {
  KvCacheManager kv({8, 4, true});
  const SeqId s = kv.create();
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  kv.append(s, 6, slots, copies);
  ASSERT_EQ(kv.block_table(s).size(), 2u);
  const int32_t b0 = kv.block_table(s)[0], b1 = kv.block_table(s)[1];
  EXPECT_EQ(slots, (std::vector<int32_t>{b0 * 4, b0 * 4 + 1, b0 * 4 + 2, b0 * 4 + 3, b1 * 4, b1 * 4 + 1}));
  slots.clear();
  kv.append(s, 1, slots, copies);  // decode: fills the last block in place
  EXPECT_EQ(slots, (std::vector<int32_t>{b1 * 4 + 2}));
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(kv.length(s), 7);
  slots.clear();
  kv.append(s, 0, slots, copies);
  EXPECT_TRUE(slots.empty());
  kv.free(s);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

TEST(KvCacheManager, ForkSharesFullBlocksAndCopiesThePartialOneOnWrite) {
  KvCacheManager kv({8, 4, true});
  const SeqId p = kv.create();
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  kv.append(p, 6, slots, copies);  // one full block, one half-filled
  const SeqId c = kv.fork(p);
  EXPECT_EQ(kv.length(c), 6);
  const std::vector<int32_t> shared(kv.block_table(p).begin(), kv.block_table(p).end());
  EXPECT_EQ(std::vector<int32_t>(kv.block_table(c).begin(), kv.block_table(c).end()), shared);
  EXPECT_EQ(kv.pool().num_in_use(), 2);
  EXPECT_EQ(kv.blocks_needed(p, 1), 1);  // the copy

  // The first writer gets a copy of the partly filled block; the copy is listed for the backend.
  slots.clear();
  kv.append(p, 1, slots, copies);
  ASSERT_EQ(copies.size(), 1u);
  const int32_t copy = kv.block_table(p)[1];
  EXPECT_EQ(copies[0], (BlockCopy{shared[1], copy}));
  EXPECT_NE(copy, shared[1]);
  EXPECT_EQ(kv.block_table(p)[0], shared[0]);  // the full block stays shared
  EXPECT_EQ(slots, (std::vector<int32_t>{copy * 4 + 2}));

  // The other holder is now alone on the old block and writes in place: no second copy.
  copies.clear();
  slots.clear();
  EXPECT_EQ(kv.blocks_needed(c, 1), 0);
  kv.append(c, 1, slots, copies);
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(slots, (std::vector<int32_t>{shared[1] * 4 + 2}));

  // Forking at a block boundary copies nothing ever: the next token opens a new block.
  slots.clear();
  kv.append(c, 1, slots, copies);  // c is at 8 tokens: two full blocks
  const SeqId d = kv.fork(c);
  slots.clear();
  kv.append(d, 1, slots, copies);
  kv.append(c, 1, slots, copies);
  EXPECT_TRUE(copies.empty());
  EXPECT_NE(kv.block_table(c)[2], kv.block_table(d)[2]);
  for (SeqId s : {p, c, d}) kv.free(s);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

TEST(KvCacheManager, ExhaustionThrowsAClearErrorAndChangesNothing) {
  KvCacheManager kv({3, 4, false});
  const SeqId a = kv.create();
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  kv.append(a, 9, slots, copies);  // 3 blocks: the pool is full
  const SeqId b = kv.fork(a);
  slots.clear();
  try {
    kv.append(b, 1, slots, copies);  // needs a copy of the partial block
    FAIL() << "expected CapacityError";
  } catch (const CapacityError& e) {
    EXPECT_NE(std::string(e.what()).find("out of KV cache blocks"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("needs 1 more"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(slots.empty());
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(kv.length(b), 9);
  EXPECT_EQ(kv.pool().num_free(), 0);
  // A request longer than the whole cache says so.
  EXPECT_THROW(kv.blocks_needed(b, 100), Error);
  kv.free(a);
  kv.append(b, 1, slots, copies);  // alone on the block now: writes in place
  EXPECT_TRUE(copies.empty());
  kv.free(b);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

TEST(KvCacheManager, ReusesCachedPrefixesAndEvictsThemUnderPressure) {
  KvCacheManager kv({6, 4, true});
  const auto prompt = iota_tokens(10);  // 2 full blocks + 2 tokens
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  const SeqId a = kv.create(prompt);
  EXPECT_EQ(kv.length(a), 0);
  kv.append(a, 10, slots, copies);
  EXPECT_EQ(kv.cache_prefix(a, prompt), 2);
  kv.free(a);
  EXPECT_EQ(kv.pool().num_in_use(), 2);  // the two cached blocks
  EXPECT_EQ(kv.num_available_blocks(), 6);

  // A prompt with the same first 8 tokens starts with them in KV.
  auto other = iota_tokens(8);
  other.push_back(77);
  const SeqId b = kv.create(other);
  EXPECT_EQ(kv.length(b), 8);
  // An exactly cached prompt still leaves its last token to prefill.
  const SeqId c = kv.create(iota_tokens(8));
  EXPECT_EQ(kv.length(c), 4);
  kv.free(b);
  kv.free(c);

  // Filling the cache with another sequence evicts the idle cached blocks.
  const SeqId d = kv.create(iota_tokens(24, 1000));
  EXPECT_EQ(kv.length(d), 0);
  slots.clear();
  kv.append(d, 24, slots, copies);
  EXPECT_EQ(kv.prefix_tree().num_cached_blocks(), 0);
  EXPECT_EQ(kv.pool().num_free(), 0);
  kv.free(d);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

TEST(KvCacheManager, IdenticalPromptsPrefilledTogetherEndUpSharingBlocks) {
  KvCacheManager kv({16, 4, true});
  const auto prompt = iota_tokens(13);
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  const SeqId a = kv.create(prompt), b = kv.create(prompt);
  kv.append(a, 13, slots, copies);
  kv.append(b, 13, slots, copies);
  EXPECT_EQ(kv.pool().num_in_use(), 8);
  EXPECT_EQ(kv.cache_prefix(a, prompt), 3);
  EXPECT_EQ(kv.cache_prefix(b, prompt), 3);  // b's three full blocks are swapped for a's
  for (int i = 0; i < 3; ++i) EXPECT_EQ(kv.block_table(a)[static_cast<size_t>(i)], kv.block_table(b)[static_cast<size_t>(i)]);
  EXPECT_NE(kv.block_table(a)[3], kv.block_table(b)[3]);
  EXPECT_EQ(kv.pool().num_in_use(), 5);
  kv.free(a);
  kv.free(b);
  EXPECT_EQ(kv.prefix_tree().evict_all(), 3);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

TEST(KvCacheManager, WithoutPrefixCachingNothingIsShared) {
  KvCacheManager kv({16, 4, false});
  const auto prompt = iota_tokens(9);
  std::vector<int32_t> slots;
  std::vector<BlockCopy> copies;
  const SeqId a = kv.create(prompt);
  kv.append(a, 9, slots, copies);
  EXPECT_EQ(kv.cache_prefix(a, prompt), 0);
  const SeqId b = kv.create(prompt);
  EXPECT_EQ(kv.length(b), 0);
  kv.free(a);
  kv.free(b);
  EXPECT_EQ(kv.pool().num_in_use(), 0);
}

// Random sessions on a tiny cache: every reference is accounted for at every step, and nothing
// leaks when all sequences end.
TEST(KvCacheManager, RandomSessionsKeepRefcountsExactAndLeakNothing) {
  std::mt19937_64 rng(canopy::testing::test_seed());
  for (int32_t bs : {1, 3, 4}) {
    KvCacheManager kv({24, bs, true});
    std::map<SeqId, std::vector<int32_t>> live;  // sequence -> its tokens
    std::vector<int32_t> slots;
    std::vector<BlockCopy> copies;
    int capacity_errors = 0;
    for (int op = 0; op < 3000; ++op) {
      const int kind = static_cast<int>(rng() % 10);
      if (kind < 2 || live.empty()) {  // new request: prompts drawn from a few shared stems
        std::vector<int32_t> prompt = iota_tokens(static_cast<int32_t>(rng() % 9), static_cast<int32_t>(rng() % 2) * 100);
        prompt.push_back(static_cast<int32_t>(rng() % 5));
        const SeqId s = kv.create(prompt);
        ASSERT_LT(kv.length(s), static_cast<int32_t>(prompt.size()));
        try {
          kv.append(s, static_cast<int32_t>(prompt.size()) - kv.length(s), slots, copies);
          kv.cache_prefix(s, prompt);
          live[s] = prompt;
        } catch (const CapacityError&) {
          ++capacity_errors;
          kv.free(s);
        }
      } else {
        auto it = live.begin();
        std::advance(it, static_cast<long>(rng() % live.size()));
        const SeqId s = it->first;
        if (kind < 4) {
          const SeqId f = kv.fork(s);
          live[f] = live[s];
        } else if (kind < 8) {
          const int32_t n = 1 + static_cast<int32_t>(rng() % 3);
          const size_t before = kv.block_table(s).size();
          const int32_t length_before = kv.length(s);
          try {
            kv.append(s, n, slots, copies);
            for (int32_t i = 0; i < n; ++i) live[s].push_back(static_cast<int32_t>(rng() % 5));
          } catch (const CapacityError&) {
            ++capacity_errors;
            ASSERT_EQ(kv.block_table(s).size(), before);
            ASSERT_EQ(kv.length(s), length_before);
          }
        } else {
          kv.free(s);
          live.erase(it);
        }
      }
      // Every block's refcount = tables holding it + 1 if cached.
      std::vector<int32_t> expected(24, 0);
      for (const auto& [s, toks] : live) {
        ASSERT_EQ(kv.length(s), static_cast<int32_t>(toks.size()));
        ASSERT_EQ(kv.block_table(s).size(), (toks.size() + static_cast<size_t>(bs) - 1) / static_cast<size_t>(bs));
        for (int32_t b : kv.block_table(s)) ++expected[static_cast<size_t>(b)];
      }
      int32_t cached = 0;
      for (int32_t b = 0; b < 24; ++b) {
        if (kv.pool().is_cached(b)) {
          ++expected[static_cast<size_t>(b)];
          ++cached;
        }
        ASSERT_EQ(kv.pool().refcount(b), expected[static_cast<size_t>(b)]) << "block " << b << " after op " << op;
      }
      ASSERT_EQ(cached, kv.prefix_tree().num_cached_blocks());
    }
    EXPECT_GT(capacity_errors, 0) << "the session should have hit the capacity at least once";
    if (bs > 1) {
      EXPECT_FALSE(copies.empty()) << "the session should have copied a shared partial block";
    }
    EXPECT_GT(kv.prefix_tree().stats().hit_blocks, 0) << "the session should have reused cached prefixes";
    EXPECT_GT(kv.prefix_tree().stats().evicted_blocks, 0) << "the session should have evicted";
    for (const auto& [s, toks] : live) kv.free(s);
    kv.prefix_tree().evict_all();
    EXPECT_EQ(kv.pool().num_in_use(), 0) << kv.stats();
    EXPECT_EQ(kv.num_live_sequences(), 0);
  }
}

}  // namespace
}  // namespace canopy
