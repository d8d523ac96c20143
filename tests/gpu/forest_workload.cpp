#include "forest_workload.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "attention/lse.h"
#include "core/dtype.h"
#include "core/error.h"

namespace canopy::testing {

Forest two_level_forest(int32_t prefix, const std::vector<int32_t>& unique) {
  Forest f;
  f.nodes.push_back({-1, prefix});
  for (int32_t u : unique) f.nodes.push_back({0, u});
  return f;
}

Forest three_level_forest(int32_t root_tokens, int docs, int32_t doc_tokens, int questions, int32_t question_tokens) {
  Forest f;
  f.nodes.push_back({-1, root_tokens});
  for (int d = 0; d < docs; ++d) {
    const int doc = static_cast<int>(f.nodes.size());
    f.nodes.push_back({0, doc_tokens});
    for (int q = 0; q < questions; ++q) f.nodes.push_back({doc, question_tokens});
  }
  return f;
}

ForestDecode build_forest_decode(const Forest& forest, int block_size, int num_kv_heads, int head_dim,
                                 uint64_t shuffle_seed) {
  const int n = static_cast<int>(forest.nodes.size());
  std::vector<std::vector<int>> children(static_cast<size_t>(n));
  std::vector<int> roots;
  for (int i = 0; i < n; ++i) {
    const int p = forest.nodes[static_cast<size_t>(i)].parent;
    CANOPY_ASSERT(p < i);
    if (p < 0) {
      roots.push_back(i);
    } else {
      children[static_cast<size_t>(p)].push_back(i);
    }
  }

  ForestDecode fd;
  fd.node_pos0.assign(static_cast<size_t>(n), 0);
  for (const auto& node : forest.nodes) fd.node_tokens.push_back(node.tokens);
  fd.node_blocks.assign(static_cast<size_t>(n), {});
  int32_t next_block = 0;
  for (int i = 0; i < n; ++i) {
    const auto& node = forest.nodes[static_cast<size_t>(i)];
    if (node.parent >= 0)
      fd.node_pos0[static_cast<size_t>(i)] =
          fd.node_pos0[static_cast<size_t>(node.parent)] + forest.nodes[static_cast<size_t>(node.parent)].tokens;
    const int32_t blocks = (node.tokens + block_size - 1) / block_size;
    for (int32_t b = 0; b < blocks; ++b) fd.node_blocks[static_cast<size_t>(i)].push_back(next_block++);
  }
  if (shuffle_seed != 0) {
    std::vector<int32_t> perm(static_cast<size_t>(next_block));
    std::iota(perm.begin(), perm.end(), 0);
    std::mt19937_64 rng(shuffle_seed);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (auto& blocks : fd.node_blocks)
      for (auto& b : blocks) b = perm[static_cast<size_t>(b)];
  }
  fd.layout = KvLayout{std::max(next_block, 1), block_size, num_kv_heads, head_dim};

  // Sequences (leaves) in DFS order, so that every node's sequences are one range of tokens.
  std::vector<int32_t> first(static_cast<size_t>(n), 0), count(static_cast<size_t>(n), 0);
  std::vector<int> path;
  std::function<void(int)> visit = [&](int v) {
    path.push_back(v);
    first[static_cast<size_t>(v)] = static_cast<int32_t>(fd.seq_path.size());
    if (children[static_cast<size_t>(v)].empty()) {
      fd.seq_path.push_back(path);
      int32_t len = 0;
      for (int u : path) len += forest.nodes[static_cast<size_t>(u)].tokens;
      fd.seq_len.push_back(len);
    }
    for (int c : children[static_cast<size_t>(v)]) visit(c);
    count[static_cast<size_t>(v)] = static_cast<int32_t>(fd.seq_path.size()) - first[static_cast<size_t>(v)];
    path.pop_back();
  };
  for (int r : roots) visit(r);

  AttentionPlan& plan = fd.plan;
  const int32_t T = static_cast<int32_t>(fd.seq_path.size());
  plan.num_tokens = T;
  plan.num_nodes = n;
  for (int32_t t = 0; t < T; ++t) {
    plan.q_positions.push_back(fd.seq_len[static_cast<size_t>(t)] - 1);
    plan.q_tokens.push_back(t);
  }
  std::vector<std::vector<int32_t>> token_slots(static_cast<size_t>(T));
  for (int i = 0; i < n; ++i) {
    AttentionItem it;
    it.kv_page_begin = static_cast<int32_t>(plan.kv_pages.size());
    for (int32_t b : fd.node_blocks[static_cast<size_t>(i)]) plan.kv_pages.push_back(b);
    it.kv_len = forest.nodes[static_cast<size_t>(i)].tokens;
    it.kv_pos0 = fd.node_pos0[static_cast<size_t>(i)];
    it.q_begin = first[static_cast<size_t>(i)];
    it.q_count = count[static_cast<size_t>(i)];
    it.out_begin = plan.num_slots;
    it.causal = 0;  // decode: every key precedes (or is) the query
    it.node = i;
    for (int32_t j = 0; j < it.q_count; ++j) token_slots[static_cast<size_t>(it.q_begin + j)].push_back(it.out_begin + j);
    plan.num_slots += it.q_count;
    plan.items.push_back(it);
  }
  std::stable_sort(plan.items.begin(), plan.items.end(), [](const AttentionItem& a, const AttentionItem& b) {
    return static_cast<int64_t>(a.kv_len) * a.q_count > static_cast<int64_t>(b.kv_len) * b.q_count;
  });
  plan.merge_offsets.push_back(0);
  for (int32_t t = 0; t < T; ++t) {
    for (int32_t s : token_slots[static_cast<size_t>(t)]) plan.merge_slots.push_back(s);
    plan.merge_offsets.push_back(static_cast<int32_t>(plan.merge_slots.size()));
  }
  return fd;
}

FlatDecode build_flat_decode(const ForestDecode& forest, int block_size) {
  FlatDecode fl;
  const int32_t T = forest.plan.num_tokens;
  AttentionPlan& plan = fl.plan;
  plan.num_tokens = T;
  plan.num_nodes = T;
  plan.q_positions = forest.plan.q_positions;
  int32_t next_block = 0;
  for (int32_t t = 0; t < T; ++t) {
    const int32_t len = forest.seq_len[static_cast<size_t>(t)];
    const int32_t blocks = (len + block_size - 1) / block_size;
    fl.first_block.push_back(next_block);
    AttentionItem it;
    it.kv_page_begin = static_cast<int32_t>(plan.kv_pages.size());
    for (int32_t b = 0; b < blocks; ++b) plan.kv_pages.push_back(next_block + b);
    next_block += blocks;
    it.kv_len = len;
    it.kv_pos0 = 0;
    it.q_begin = t;
    it.q_count = 1;
    it.out_begin = t;
    it.causal = 0;
    it.node = t;
    plan.q_tokens.push_back(t);
    plan.items.push_back(it);
  }
  plan.num_slots = T;
  for (int32_t t = 0; t <= T; ++t) plan.merge_offsets.push_back(t);
  for (int32_t t = 0; t < T; ++t) plan.merge_slots.push_back(t);
  fl.layout = KvLayout{std::max(next_block, 1), block_size, forest.layout.num_kv_heads, forest.layout.head_dim};
  return fl;
}

void copy_forest_to_flat(const ForestDecode& forest, const FlatDecode& flat, const std::vector<uint16_t>& src,
                         std::vector<uint16_t>& dst) {
  const KvLayout& a = forest.layout;
  const KvLayout& b = flat.layout;
  dst.assign(b.layer_elems(), 0);
  for (size_t t = 0; t < forest.seq_path.size(); ++t) {
    int32_t pos = 0;
    for (int node : forest.seq_path[t]) {
      const auto& blocks = forest.node_blocks[static_cast<size_t>(node)];
      const int32_t len = forest.node_tokens[static_cast<size_t>(node)];
      for (int32_t i = 0; i < len; ++i, ++pos) {
        const int32_t src_block = blocks[static_cast<size_t>(i / a.block_size)];
        const int32_t dst_block = flat.first_block[t] + pos / b.block_size;
        for (int h = 0; h < a.num_kv_heads; ++h) {
          const uint16_t* s = src.data() + a.offset(src_block, h, i % a.block_size);
          uint16_t* d = dst.data() + b.offset(dst_block, h, pos % b.block_size);
          std::copy(s, s + a.head_dim, d);
        }
      }
    }
  }
}

std::vector<uint16_t> random_bf16(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f32_to_bf16(dist(rng));
  return v;
}

std::vector<float> bf16_to_f32(const std::vector<uint16_t>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = canopy::bf16_to_f32(v[i]);
  return out;
}

void emulate_bf16_plan(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout, const float* q,
                       const float* k_cache, const float* v_cache, std::vector<float>& partial_o,
                       std::vector<float>& partial_lse, std::vector<float>& out, std::vector<float>& lse) {
  const int D = shape.head_dim;
  const int Hq = shape.num_q_heads;
  const int g = shape.group();
  const float scale_log2 = shape.scale * kLog2e;
  const int bs = layout.block_size;
  partial_o.assign(static_cast<size_t>(plan.num_slots) * Hq * D, 0.0f);
  partial_lse.assign(static_cast<size_t>(plan.num_slots) * Hq, kNegInf);
  std::vector<float> scores, acc(static_cast<size_t>(D));
  for (const AttentionItem& item : plan.items) {
    scores.assign(static_cast<size_t>(item.kv_len), 0.0f);
    for (int j = 0; j < item.q_count; ++j) {
      const int32_t t = plan.q_tokens[static_cast<size_t>(item.q_begin + j)];
      const int32_t qpos = plan.q_positions[static_cast<size_t>(t)];
      int visible = item.kv_len;
      if (item.causal) visible = std::clamp(qpos - item.kv_pos0 + 1, 0, item.kv_len);
      const size_t slot = static_cast<size_t>(item.out_begin + j);
      for (int h = 0; h < Hq; ++h) {
        float* o = partial_o.data() + (slot * Hq + h) * D;
        float& l2 = partial_lse[slot * Hq + h];
        if (visible == 0) continue;
        const float* qv = q + (static_cast<size_t>(t) * Hq + h) * D;
        float m = kNegInf;
        for (int i = 0; i < visible; ++i) {
          const int32_t block = plan.kv_pages[static_cast<size_t>(item.kv_page_begin + i / bs)];
          const float* kv = k_cache + layout.offset(block, h / g, i % bs);
          float dot = 0.0f;
          for (int d = 0; d < D; ++d) dot += qv[d] * kv[d];
          scores[static_cast<size_t>(i)] = dot * scale_log2;
          m = std::max(m, scores[static_cast<size_t>(i)]);
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        float sum = 0.0f;
        for (int i = 0; i < visible; ++i) {
          const float p = std::exp2(scores[static_cast<size_t>(i)] - m);
          sum += p;
          const float pb = canopy::bf16_to_f32(f32_to_bf16(p));
          const int32_t block = plan.kv_pages[static_cast<size_t>(item.kv_page_begin + i / bs)];
          const float* vv = v_cache + layout.offset(block, h / g, i % bs);
          for (int d = 0; d < D; ++d) acc[static_cast<size_t>(d)] += pb * vv[d];
        }
        for (int d = 0; d < D; ++d) o[d] = acc[static_cast<size_t>(d)] / sum;
        l2 = m + std::log2(sum);
      }
    }
  }
  out.assign(static_cast<size_t>(plan.num_tokens) * Hq * D, 0.0f);
  lse.assign(static_cast<size_t>(plan.num_tokens) * Hq, kNegInf);
  for (int32_t t = 0; t < plan.num_tokens; ++t) {
    for (int h = 0; h < Hq; ++h) {
      float* o = out.data() + (static_cast<size_t>(t) * Hq + h) * D;
      float& l = lse[static_cast<size_t>(t) * Hq + h];
      for (int32_t s = plan.merge_offsets[static_cast<size_t>(t)]; s < plan.merge_offsets[static_cast<size_t>(t) + 1]; ++s) {
        const size_t slot = static_cast<size_t>(plan.merge_slots[static_cast<size_t>(s)]);
        lse_merge_into(o, l, partial_o.data() + (slot * Hq + h) * D, partial_lse[slot * Hq + h], D);
      }
      for (int d = 0; d < D; ++d) o[d] = canopy::bf16_to_f32(f32_to_bf16(o[d]));
    }
  }
}

double ErrorStats::rel_l2() const { return sum_sq_ref > 0 ? std::sqrt(sum_sq_err / sum_sq_ref) : std::sqrt(sum_sq_err); }

std::string ErrorStats::str() const {
  return fmt::format("max|err| {:.3g} (max|ref| {:.3g}), rel L2 {:.3g}, {} values, {} non-finite, {} inf mismatches",
                     max_abs, max_ref, rel_l2(), count, nonfinite, mismatched_inf);
}

ErrorStats compare(const float* got, const float* ref, size_t n) {
  ErrorStats e;
  e.count = static_cast<int64_t>(n);
  for (size_t i = 0; i < n; ++i) {
    const double a = got[i];
    const double b = ref[i];
    if (std::isnan(a)) {
      ++e.nonfinite;
      continue;
    }
    if (std::isinf(a) || std::isinf(b)) {
      if (a != b) ++e.mismatched_inf;
      continue;
    }
    const double d = std::abs(a - b);
    e.max_abs = std::max(e.max_abs, d);
    e.max_ref = std::max(e.max_ref, std::abs(b));
    e.sum_sq_err += d * d;
    e.sum_sq_ref += b * b;
  }
  return e;
}

StepCost forest_step_cost(const ForestDecode& forest, int num_q_heads, int num_kv_heads, int head_dim) {
  StepCost c;
  const int g = num_q_heads / num_kv_heads;
  for (const AttentionItem& it : forest.plan.items) {
    c.kv_bytes += 2.0 * it.kv_len * num_kv_heads * head_dim * 2.0;
    c.flops += 4.0 * it.q_count * g * num_kv_heads * static_cast<double>(it.kv_len) * head_dim;
  }
  c.q_out_bytes = 2.0 * forest.plan.num_tokens * num_q_heads * head_dim * 2.0;
  return c;
}

}  // namespace canopy::testing
