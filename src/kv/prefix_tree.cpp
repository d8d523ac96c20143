#include "kv/prefix_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <queue>

#include "core/error.h"

namespace canopy {
namespace {

uint64_t mix64(uint64_t x) {  // splitmix64 finalizer: a cheap, well-spread 64-bit mix
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

std::string PrefixTreeStats::str() const {
  return fmt::format("{} cached blocks, {} lookups, {} of {} blocks hit, {} evicted", cached_blocks,
                     lookups, hit_blocks, lookup_blocks, evicted_blocks);
}

size_t PrefixTree::EdgeKeyHash::operator()(const EdgeKey& k) const {
  return static_cast<size_t>(mix64(k.hash ^ (static_cast<uint64_t>(static_cast<uint32_t>(k.parent)) << 1)));
}

PrefixTree::PrefixTree(BlockPool& pool, int32_t block_size) : pool_(pool), block_size_(block_size) {
  CANOPY_CHECK(block_size > 0, "KV block size must be positive (got {})", block_size);
  nodes_.push_back(Node{});  // the root: no block, never evicted
  nodes_[0].live = true;
  tokens_.assign(static_cast<size_t>(block_size_), 0);
}

uint64_t PrefixTree::hash_tokens(std::span<const int32_t> block_tokens) const {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (int32_t t : block_tokens) h = mix64(h ^ static_cast<uint32_t>(t));
  return h;
}

std::span<const int32_t> PrefixTree::node_tokens(int32_t node) const {
  return {tokens_.data() + static_cast<size_t>(node) * static_cast<size_t>(block_size_),
          static_cast<size_t>(block_size_)};
}

int32_t PrefixTree::find_child(int32_t parent, uint64_t hash, std::span<const int32_t> block_tokens) const {
  const auto it = children_.find(EdgeKey{parent, hash});
  if (it == children_.end()) return -1;
  const auto stored = node_tokens(it->second);
  // A 64-bit hash collision is astronomically unlikely, but the tokens decide.
  if (!std::equal(stored.begin(), stored.end(), block_tokens.begin())) return -1;
  return it->second;
}

PrefixTree::Match PrefixTree::match(std::span<const int32_t> tokens, std::vector<int32_t>& blocks_out) {
  const size_t bs = static_cast<size_t>(block_size_);
  const size_t full = tokens.size() / bs;
  ++clock_;
  ++stats_.lookups;
  stats_.lookup_blocks += static_cast<int64_t>(full);
  Match m;
  for (size_t i = 0; i < full; ++i) {
    const auto block_tokens = tokens.subspan(i * bs, bs);
    const int32_t child = find_child(m.node, hash_tokens(block_tokens), block_tokens);
    if (child < 0) break;
    Node& n = nodes_[static_cast<size_t>(child)];
    n.last_used = clock_;
    pool_.retain(n.block);
    blocks_out.push_back(n.block);
    m.node = child;
    ++m.num_blocks;
  }
  stats_.hit_blocks += m.num_blocks;
  return m;
}

PrefixTree::Inserted PrefixTree::insert(int32_t node, std::span<const int32_t> tokens,
                                        std::span<const int32_t> blocks, std::vector<int32_t>& canonical_out) {
  const size_t bs = static_cast<size_t>(block_size_);
  CANOPY_ASSERT(tokens.size() == blocks.size() * bs);
  CANOPY_ASSERT(node >= 0 && static_cast<size_t>(node) < nodes_.size() && nodes_[static_cast<size_t>(node)].live);
  ++clock_;
  Inserted result{node, 0};
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto block_tokens = tokens.subspan(i * bs, bs);
    const uint64_t h = hash_tokens(block_tokens);
    int32_t child = find_child(result.node, h, block_tokens);
    if (child < 0) {
      const int32_t block = blocks[i];
      // Different tokens under the same hash, or a block cached at another place: stop caching here.
      if (children_.count(EdgeKey{result.node, h}) != 0 || pool_.is_cached(block)) break;
      if (free_nodes_.empty()) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.push_back(Node{});
        tokens_.resize(tokens_.size() + bs);
      } else {
        child = free_nodes_.back();
        free_nodes_.pop_back();
      }
      Node& n = nodes_[static_cast<size_t>(child)];
      n = Node{result.node, block, 0, h, 0, true};
      std::copy(block_tokens.begin(), block_tokens.end(), tokens_.begin() + static_cast<ptrdiff_t>(child) * block_size_);
      children_.emplace(EdgeKey{result.node, h}, child);
      ++nodes_[static_cast<size_t>(result.node)].num_children;
      pool_.retain(block);
      pool_.set_cached(block, true);
    }
    Node& n = nodes_[static_cast<size_t>(child)];
    n.last_used = clock_;
    canonical_out.push_back(n.block);
    result.node = child;
    ++result.num_blocks;
  }
  return result;
}

void PrefixTree::remove_leaf(int32_t node) {
  Node& n = nodes_[static_cast<size_t>(node)];
  CANOPY_ASSERT(node != kRoot && n.live && n.num_children == 0);
  children_.erase(EdgeKey{n.parent, n.hash});
  --nodes_[static_cast<size_t>(n.parent)].num_children;
  pool_.set_cached(n.block, false);
  const bool freed = pool_.release(n.block);
  CANOPY_ASSERT(freed);
  n.live = false;
  free_nodes_.push_back(node);
  ++stats_.evicted_blocks;
}

int32_t PrefixTree::evict(int32_t num_blocks) {
  if (num_blocks <= 0 || pool_.num_cached_idle() == 0) return 0;
  // Min-heap of evictable leaves by (last use, node id): oldest first, ties broken by id.
  using Entry = std::pair<uint64_t, int32_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto evictable_leaf = [&](int32_t id) {
    const Node& n = nodes_[static_cast<size_t>(id)];
    return id != kRoot && n.live && n.num_children == 0 && pool_.refcount(n.block) == 1;
  };
  for (size_t id = 1; id < nodes_.size(); ++id)
    if (evictable_leaf(static_cast<int32_t>(id))) heap.emplace(nodes_[id].last_used, static_cast<int32_t>(id));
  int32_t freed = 0;
  while (freed < num_blocks && !heap.empty()) {
    const int32_t id = heap.top().second;
    heap.pop();
    const int32_t parent = nodes_[static_cast<size_t>(id)].parent;
    remove_leaf(id);
    ++freed;
    if (evictable_leaf(parent)) heap.emplace(nodes_[static_cast<size_t>(parent)].last_used, parent);
  }
  return freed;
}

PrefixTreeStats PrefixTree::stats() const {
  PrefixTreeStats s = stats_;
  s.cached_blocks = num_cached_blocks();
  return s;
}

int32_t PrefixTree::node_block(int32_t node) const {
  CANOPY_ASSERT(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  return nodes_[static_cast<size_t>(node)].block;
}

int32_t PrefixTree::node_parent(int32_t node) const {
  CANOPY_ASSERT(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  return nodes_[static_cast<size_t>(node)].parent;
}

}  // namespace canopy
