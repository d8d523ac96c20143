// The block pool: fixed capacity, O(1) allocate/free, refcounts, idle accounting, clear errors.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "kv/block_pool.h"

namespace canopy {
namespace {

TEST(BlockPool, AllocatesEveryBlockOnceThenFailsClearly) {
  BlockPool pool(3);
  std::set<int32_t> got;
  for (int i = 0; i < 3; ++i) got.insert(pool.allocate());
  EXPECT_EQ(got, (std::set<int32_t>{0, 1, 2}));
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_EQ(pool.num_in_use(), 3);
  try {
    pool.allocate();
    FAIL() << "allocation from an exhausted pool must throw";
  } catch (const CapacityError& e) {
    EXPECT_NE(std::string(e.what()).find("out of KV cache blocks: 3 in use of 3"), std::string::npos) << e.what();
  }
}

TEST(BlockPool, RefcountsDecideWhenABlockIsFree) {
  BlockPool pool(2);
  const int32_t b = pool.allocate();
  pool.retain(b);
  EXPECT_EQ(pool.refcount(b), 2);
  EXPECT_FALSE(pool.release(b));
  EXPECT_EQ(pool.num_free(), 1);
  EXPECT_TRUE(pool.release(b));
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_EQ(pool.refcount(b), 0);
  // The most recently freed block comes back first.
  EXPECT_EQ(pool.allocate(), b);
  const auto s = pool.stats();
  EXPECT_EQ(s.allocations, 2);
  EXPECT_EQ(s.frees, 1);
  EXPECT_EQ(s.peak_in_use, 1);
}

TEST(BlockPool, MisuseIsAnInternalErrorNotUndefinedBehaviour) {
  BlockPool pool(2);
  EXPECT_THROW(pool.release(0), Error);  // never allocated
  EXPECT_THROW(pool.retain(5), Error);   // out of range
  EXPECT_THROW(pool.refcount(-1), Error);
  EXPECT_THROW(BlockPool(0), Error);
}

TEST(BlockPool, CachedBlocksHeldOnlyByTheTreeCountAsIdle) {
  BlockPool pool(4);
  const int32_t b = pool.allocate();  // a sequence's reference
  pool.retain(b);                     // the tree's reference
  pool.set_cached(b, true);
  EXPECT_EQ(pool.num_cached_idle(), 0);
  pool.release(b);  // the sequence ends
  EXPECT_EQ(pool.num_cached_idle(), 1);
  EXPECT_EQ(pool.num_available(), 4);
  pool.retain(b);  // a new sequence matches it
  EXPECT_EQ(pool.num_cached_idle(), 0);
  pool.release(b);
  pool.set_cached(b, false);  // eviction: unmark, then drop the tree's reference
  EXPECT_EQ(pool.num_cached_idle(), 0);
  EXPECT_TRUE(pool.release(b));
  EXPECT_EQ(pool.num_free(), 4);
}

}  // namespace
}  // namespace canopy
