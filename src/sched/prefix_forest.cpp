#include "sched/prefix_forest.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

#include "core/error.h"

namespace canopy {
namespace {

// The forest while it is being built: a compressed trie with a virtual root (node 0). Edges are
// keyed by (parent, first token of the child's run); a run is [start, end) of its source prompt.
struct Builder {
  struct Node {
    int32_t parent = -1;
    int32_t start = 0, end = 0;
    int32_t source = 0;
  };
  std::span<const ForestRequest> requests;
  std::vector<Node> nodes{Node{}};
  std::unordered_map<uint64_t, int32_t> edges;
  std::vector<std::pair<int32_t, int32_t>> ends;  // (node, request) where a prompt ends

  static uint64_t key(int32_t node, int32_t token) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(node)) << 32) | static_cast<uint32_t>(token);
  }
  int32_t token(int32_t node, int32_t pos) const {
    return requests[static_cast<size_t>(nodes[static_cast<size_t>(node)].source)].prompt[static_cast<size_t>(pos)];
  }
  int32_t add(int32_t parent, int32_t start, int32_t end, int32_t source) {
    nodes.push_back(Node{parent, start, end, source});
    return static_cast<int32_t>(nodes.size()) - 1;
  }

  void insert(int32_t r) {
    const auto p = requests[static_cast<size_t>(r)].prompt;
    const int32_t len = static_cast<int32_t>(p.size());
    int32_t node = 0, pos = 0;
    while (pos < len) {
      const auto it = edges.find(key(node, p[static_cast<size_t>(pos)]));
      if (it == edges.end()) {  // nothing shares the rest: a new leaf
        const int32_t leaf = add(node, pos, len, r);
        edges.emplace(key(node, p[static_cast<size_t>(pos)]), leaf);
        node = leaf;
        pos = len;
        break;
      }
      const int32_t child = it->second;
      const Node c = nodes[static_cast<size_t>(child)];
      const auto run = requests[static_cast<size_t>(c.source)].prompt.subspan(static_cast<size_t>(c.start),
                                                                           static_cast<size_t>(c.end - c.start));
      const auto rest = p.subspan(static_cast<size_t>(pos));
      const size_t n = std::min(run.size(), rest.size());
      const int32_t m = static_cast<int32_t>(std::mismatch(run.begin(), run.begin() + static_cast<ptrdiff_t>(n), rest.begin()).first - run.begin());
      if (m < c.end - c.start) {
        // The prompt leaves (or ends inside) the child's run: split it after the shared m tokens.
        const int32_t mid = add(node, c.start, c.start + m, c.source);
        it->second = mid;
        nodes[static_cast<size_t>(child)].start = c.start + m;
        nodes[static_cast<size_t>(child)].parent = mid;
        edges.emplace(key(mid, token(child, c.start + m)), child);
        node = mid;
      } else {
        node = child;
      }
      pos += m;
    }
    ends.emplace_back(node, r);
  }
};

}  // namespace

double ForestStats::saving_ratio() const {
  return logical_prompt_tokens == 0 ? 0.0
                                    : 1.0 - static_cast<double>(unique_prompt_tokens) / static_cast<double>(logical_prompt_tokens);
}

double ForestStats::sharing_factor() const {
  return unique_prompt_tokens == 0 ? 1.0
                                   : static_cast<double>(logical_prompt_tokens) / static_cast<double>(unique_prompt_tokens);
}

std::string ForestStats::str() const {
  return fmt::format(
      "{} requests ({} samples), {} nodes in {} groups, depth {}: {} logical prompt tokens, {} unique "
      "(saving {:.1f}%, sharing x{:.2f})",
      num_requests, num_samples, num_nodes, num_groups, max_depth, logical_prompt_tokens, unique_prompt_tokens,
      100.0 * saving_ratio(), sharing_factor());
}

PrefixForest PrefixForest::build(std::span<const ForestRequest> requests) {
  CANOPY_CHECK(requests.size() < static_cast<size_t>(INT32_MAX), "too many requests for one batch: {}", requests.size());
  Builder b;
  b.requests = requests;
  PrefixForest f;
  for (size_t r = 0; r < requests.size(); ++r) {
    const ForestRequest& req = requests[r];
    CANOPY_CHECK(!req.prompt.empty(), "request {} has an empty prompt", r);
    CANOPY_CHECK(req.prompt.size() < static_cast<size_t>(INT32_MAX), "request {} has a prompt of {} tokens", r,
                 req.prompt.size());
    CANOPY_CHECK(req.num_samples >= 1, "request {} asks for {} samples (n must be at least 1)", r, req.num_samples);
    CANOPY_CHECK(req.max_new_tokens >= 0, "request {} has max_new_tokens {} (must be >= 0)", r, req.max_new_tokens);
    b.insert(static_cast<int32_t>(r));
    f.stats_.logical_prompt_tokens += static_cast<int64_t>(req.prompt.size()) * req.num_samples;
    f.stats_.num_samples += req.num_samples;
  }
  f.stats_.num_requests = static_cast<int32_t>(requests.size());

  // Children lists of the builder's nodes, ordered by first token.
  const size_t nb = b.nodes.size();
  std::vector<std::vector<int32_t>> kids(nb);
  for (size_t i = 1; i < nb; ++i) kids[static_cast<size_t>(b.nodes[i].parent)].push_back(static_cast<int32_t>(i));
  for (auto& k : kids)
    std::sort(k.begin(), k.end(), [&](int32_t x, int32_t y) {
      return b.token(x, b.nodes[static_cast<size_t>(x)].start) < b.token(y, b.nodes[static_cast<size_t>(y)].start);
    });

  // Preorder numbering (builder's virtual root excluded).
  std::vector<int32_t> new_id(nb, -1);
  std::vector<int32_t> stack(kids[0].rbegin(), kids[0].rend());
  std::vector<int32_t> old_of;
  old_of.reserve(nb);
  while (!stack.empty()) {
    const int32_t o = stack.back();
    stack.pop_back();
    new_id[static_cast<size_t>(o)] = static_cast<int32_t>(old_of.size());
    old_of.push_back(o);
    for (auto it = kids[static_cast<size_t>(o)].rbegin(); it != kids[static_cast<size_t>(o)].rend(); ++it) stack.push_back(*it);
  }
  const size_t n = old_of.size();
  f.nodes_.resize(n);
  f.child_offsets_.assign(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    const Builder::Node& o = b.nodes[static_cast<size_t>(old_of[i])];
    ForestNode& node = f.nodes_[i];
    node.parent = o.parent == 0 ? -1 : new_id[static_cast<size_t>(o.parent)];
    node.first_token = o.start;
    node.num_tokens = o.end - o.start;
    node.source = o.source;
    const auto& k = kids[static_cast<size_t>(old_of[i])];
    f.child_offsets_[i + 1] = f.child_offsets_[i] + static_cast<int32_t>(k.size());
    for (int32_t c : k) f.child_list_.push_back(new_id[static_cast<size_t>(c)]);
    if (node.parent < 0) f.roots_.push_back(static_cast<int32_t>(i));
    f.stats_.unique_prompt_tokens += node.num_tokens;
  }

  // Requests by (node in preorder, request index): depth-first order of their leaves.
  f.leaf_.assign(requests.size(), -1);
  for (auto& [node, r] : b.ends) {
    node = new_id[static_cast<size_t>(node)];
    f.leaf_[static_cast<size_t>(r)] = node;
  }
  std::sort(b.ends.begin(), b.ends.end());
  f.request_order_.reserve(b.ends.size());
  for (size_t i = 0; i < n; ++i) f.nodes_[i].requests_begin = f.nodes_[i].requests_end = -1;
  for (size_t i = 0; i < b.ends.size(); ++i) {
    ForestNode& node = f.nodes_[static_cast<size_t>(b.ends[i].first)];
    if (node.requests_begin < 0) node.requests_begin = static_cast<int32_t>(i);
    node.requests_end = static_cast<int32_t>(i) + 1;
    f.request_order_.push_back(b.ends[i].second);
    const ForestRequest& req = requests[static_cast<size_t>(b.ends[i].second)];
    node.samples += req.num_samples;
    node.decode_tokens += static_cast<int64_t>(req.num_samples) * req.max_new_tokens;
  }
  // Nodes with no request ending there get the empty range at the right place in the order.
  int32_t cursor = 0;
  for (size_t i = 0; i < n; ++i) {
    ForestNode& node = f.nodes_[i];
    if (node.requests_begin < 0) node.requests_begin = node.requests_end = cursor;
    cursor = node.requests_end;
  }

  // Bottom-up sums and subtree extents (children come after their parent in preorder).
  std::vector<int32_t> depth(n, 1);
  for (size_t i = 0; i < n; ++i) {
    f.nodes_[i].subtree_end = static_cast<int32_t>(i) + 1;
    if (f.nodes_[i].parent >= 0) depth[i] = depth[static_cast<size_t>(f.nodes_[i].parent)] + 1;
    f.stats_.max_depth = std::max(f.stats_.max_depth, depth[i]);
  }
  for (size_t i = n; i-- > 0;) {
    const int32_t parent = f.nodes_[i].parent;
    if (parent < 0) continue;
    ForestNode& p = f.nodes_[static_cast<size_t>(parent)];
    p.samples += f.nodes_[i].samples;
    p.decode_tokens += f.nodes_[i].decode_tokens;
    p.subtree_end = std::max(p.subtree_end, f.nodes_[i].subtree_end);
  }

  // Groups: the root subtrees.
  for (size_t g = 0; g < f.roots_.size(); ++g) {
    const int32_t root = f.roots_[g];
    const ForestNode& rn = f.nodes_[static_cast<size_t>(root)];
    ForestGroup group;
    group.root = root;
    group.requests_begin = rn.requests_begin;
    group.requests_end = f.nodes_[static_cast<size_t>(rn.subtree_end) - 1].requests_end;
    group.samples = rn.samples;
    group.decode_tokens = rn.decode_tokens;
    for (int32_t i = root; i < rn.subtree_end; ++i) {
      f.nodes_[static_cast<size_t>(i)].group = static_cast<int32_t>(g);
      group.prefill_tokens += f.nodes_[static_cast<size_t>(i)].num_tokens;
    }
    for (int32_t i = group.requests_begin; i < group.requests_end; ++i) {
      const ForestRequest& req = requests[static_cast<size_t>(f.request_order_[static_cast<size_t>(i)])];
      group.logical_prompt_tokens += static_cast<int64_t>(req.prompt.size()) * req.num_samples;
    }
    f.groups_.push_back(group);
  }
  f.stats_.num_nodes = static_cast<int32_t>(n);
  f.stats_.num_groups = static_cast<int32_t>(f.groups_.size());
  return f;
}

std::span<const int32_t> PrefixForest::children(int32_t node) const {
  CANOPY_ASSERT(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  const auto begin = static_cast<size_t>(child_offsets_[static_cast<size_t>(node)]);
  const auto end = static_cast<size_t>(child_offsets_[static_cast<size_t>(node) + 1]);
  return std::span<const int32_t>(child_list_).subspan(begin, end - begin);
}

std::vector<int32_t> PrefixForest::path(int32_t node) const {
  CANOPY_ASSERT(node >= 0 && static_cast<size_t>(node) < nodes_.size());
  std::vector<int32_t> p;
  for (int32_t n = node; n >= 0; n = nodes_[static_cast<size_t>(n)].parent) p.push_back(n);
  std::reverse(p.begin(), p.end());
  return p;
}

std::vector<int32_t> PrefixForest::group_order(GroupOrder order) const {
  std::vector<int32_t> ids(groups_.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
  auto by = [&](auto score) {
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return score(groups_[static_cast<size_t>(a)]) > score(groups_[static_cast<size_t>(b)]);
    });
  };
  switch (order) {
    case GroupOrder::Forest:
      break;
    case GroupOrder::DecodeHeavyFirst:
      by([](const ForestGroup& g) { return static_cast<double>(g.decode_tokens); });
      break;
    case GroupOrder::DecodeToPrefillRatio:
      by([](const ForestGroup& g) {
        return static_cast<double>(g.decode_tokens) / static_cast<double>(std::max<int64_t>(1, g.prefill_tokens));
      });
      break;
  }
  return ids;
}

std::vector<int32_t> PrefixForest::schedule(GroupOrder order) const {
  std::vector<int32_t> out;
  out.reserve(request_order_.size());
  for (int32_t g : group_order(order)) {
    const ForestGroup& group = groups_[static_cast<size_t>(g)];
    out.insert(out.end(), request_order_.begin() + group.requests_begin, request_order_.begin() + group.requests_end);
  }
  return out;
}

}  // namespace canopy
