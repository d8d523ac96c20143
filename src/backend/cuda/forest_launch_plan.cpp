#include "forest_launch_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <numeric>
#include <queue>
#include <set>

#include "core/error.h"
#include "forest_layout.h"
#include "forest_layout_sm90.h"

namespace canopy::cuda {

namespace {

constexpr int kWideRows = kernels::ForestConfig<128>::kWideRows;
constexpr int kNarrowRows = kernels::ForestConfig<128>::kNarrowRows;
constexpr int kTileKeys = kernels::ForestConfig<128>::kTileKeys;
constexpr int kUnitsPerNarrowCta = kernels::ForestConfig<128>::kWarps;
static_assert(kernels::ForestConfig<64>::kWideRows == kWideRows && kernels::ForestConfig<64>::kTileKeys == kTileKeys);

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct CostedUnit {
  kernels::ForestUnit unit;
  double cost_ns;
  int64_t order;  // item, piece, KV head, token tile: the tie-break keeps units that read the same KV together
};

}  // namespace

std::string ForestLaunchPlan::summary() const {
  if (kernel == ForestKernel::kWgmma)
    return fmt::format(
        "v{}: {} units ({} wide, {} narrow), {} CTAs ({} start on wide units), {} split items, {} slots, leaf "
        "prefetch {}, makespan model {:.1f} us",
        wgmma_version, units.size(), wide_units, narrow_units, grid_ctas, num_tensor_ctas, split_items, num_slots,
        leaf_prefetch_window, predicted_makespan_ns / 1e3);
  return fmt::format(
      "v1: {} units ({} wide, {} narrow) in {} CTAs, {} split items, {} slots, {:.1f} SM-us of work, makespan model "
      "{:.1f} us",
      units.size(), wide_units, narrow_units, grid_ctas, split_items, num_slots, total_cost_ns / 1e3,
      predicted_makespan_ns / 1e3);
}

void validate_plan_for_gpu(const AttentionPlan& plan, const AttentionShape& shape, const KvLayout& layout) {
  CANOPY_CHECK(kernels::forest_head_dim_supported(shape.head_dim),
               "GPU attention: head_dim {} is not supported (64 or 128)", shape.head_dim);
  CANOPY_CHECK(shape.num_q_heads > 0 && shape.num_kv_heads > 0 && shape.num_q_heads % shape.num_kv_heads == 0,
               "GPU attention: {} query heads cannot be grouped over {} KV heads", shape.num_q_heads,
               shape.num_kv_heads);
  CANOPY_CHECK(shape.group() <= kWideRows, "GPU attention: a GQA group of {} query heads exceeds {}", shape.group(),
               kWideRows);
  CANOPY_CHECK(std::isfinite(shape.scale), "GPU attention: the softmax scale is not finite");
  CANOPY_CHECK(layout.block_size >= 1, "GPU attention: block_size {} must be at least 1", layout.block_size);
  CANOPY_CHECK(layout.num_kv_heads == shape.num_kv_heads && layout.head_dim == shape.head_dim,
               "GPU attention: the KV cache has {} heads of {} but the model {} heads of {}", layout.num_kv_heads,
               layout.head_dim, shape.num_kv_heads, shape.head_dim);

  const int64_t T = plan.num_tokens;
  CANOPY_CHECK(T >= 0 && static_cast<int64_t>(plan.q_positions.size()) == T,
               "attention plan: {} query positions for {} tokens", plan.q_positions.size(), T);
  CANOPY_CHECK(static_cast<int64_t>(plan.merge_offsets.size()) == T + 1,
               "attention plan: {} merge offsets for {} tokens", plan.merge_offsets.size(), T);
  CANOPY_CHECK(plan.num_slots >= 0, "attention plan: negative slot count");
  CANOPY_CHECK(plan.merge_offsets[0] == 0 &&
                   plan.merge_offsets.back() == static_cast<int64_t>(plan.merge_slots.size()),
               "attention plan: merge offsets do not span the merge slots");
  for (int64_t t = 0; t < T; ++t)
    CANOPY_CHECK(plan.merge_offsets[static_cast<size_t>(t)] <= plan.merge_offsets[static_cast<size_t>(t) + 1],
                 "attention plan: merge offsets decrease at token {}", t);
  for (int64_t t = 0; t < T; ++t)
    CANOPY_CHECK(plan.q_positions[static_cast<size_t>(t)] >= 0, "attention plan: token {} has a negative position", t);
  for (size_t i = 0; i < plan.q_tokens.size(); ++i)
    CANOPY_CHECK(plan.q_tokens[i] >= 0 && plan.q_tokens[i] < T, "attention plan: q_tokens[{}] = {} is not a token",
                 i, plan.q_tokens[i]);
  for (size_t i = 0; i < plan.kv_pages.size(); ++i)
    CANOPY_CHECK(plan.kv_pages[i] >= 0 && plan.kv_pages[i] < layout.num_blocks,
                 "attention plan: kv_pages[{}] = {} is not one of the {} blocks", i, plan.kv_pages[i],
                 layout.num_blocks);

  // Every slot is written by exactly one (item, query) and merged exactly once, by that query's token.
  std::vector<int32_t> slot_token(static_cast<size_t>(plan.num_slots), -1);
  for (size_t n = 0; n < plan.items.size(); ++n) {
    const AttentionItem& it = plan.items[n];
    CANOPY_CHECK(it.kv_len >= 0 && it.q_count >= 0 && it.q_begin >= 0 && it.out_begin >= 0 && it.kv_page_begin >= 0,
                 "attention plan: item {} has a negative field", n);
    CANOPY_CHECK(it.causal == 0 || it.causal == 1, "attention plan: item {} has causal = {}", n, it.causal);
    CANOPY_CHECK(static_cast<int64_t>(it.q_begin) + it.q_count <= static_cast<int64_t>(plan.q_tokens.size()),
                 "attention plan: item {} reads queries past q_tokens", n);
    CANOPY_CHECK(static_cast<int64_t>(it.out_begin) + it.q_count <= plan.num_slots,
                 "attention plan: item {} writes slots past num_slots", n);
    CANOPY_CHECK(static_cast<int64_t>(it.kv_page_begin) + ceil_div(it.kv_len, layout.block_size) <=
                     static_cast<int64_t>(plan.kv_pages.size()),
                 "attention plan: item {} reads blocks past kv_pages", n);
    CANOPY_CHECK(static_cast<int64_t>(it.kv_pos0) + it.kv_len <= INT32_MAX && it.kv_pos0 >= 0,
                 "attention plan: item {} has key positions out of range", n);
    for (int32_t j = 0; j < it.q_count; ++j) {
      int32_t& owner = slot_token[static_cast<size_t>(it.out_begin + j)];
      CANOPY_CHECK(owner == -1, "attention plan: slot {} is written twice", it.out_begin + j);
      owner = plan.q_tokens[static_cast<size_t>(it.q_begin + j)];
    }
  }
  std::vector<uint8_t> merged(static_cast<size_t>(plan.num_slots), 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int32_t i = plan.merge_offsets[static_cast<size_t>(t)]; i < plan.merge_offsets[static_cast<size_t>(t) + 1];
         ++i) {
      const int32_t s = plan.merge_slots[static_cast<size_t>(i)];
      CANOPY_CHECK(s >= 0 && s < plan.num_slots, "attention plan: token {} merges slot {} of {}", t, s,
                   plan.num_slots);
      CANOPY_CHECK(slot_token[static_cast<size_t>(s)] == t,
                   "attention plan: token {} merges slot {}, which {} (written for token {})", t, s,
                   slot_token[static_cast<size_t>(s)] < 0 ? "no item writes" : "belongs to another token",
                   slot_token[static_cast<size_t>(s)]);
      CANOPY_CHECK(merged[static_cast<size_t>(s)] == 0, "attention plan: slot {} is merged twice", s);
      merged[static_cast<size_t>(s)] = 1;
    }
  }
  for (int32_t s = 0; s < plan.num_slots; ++s)
    CANOPY_CHECK(slot_token[static_cast<size_t>(s)] < 0 || merged[static_cast<size_t>(s)] == 1,
                 "attention plan: slot {} is written but never merged", s);
}

ForestLaunchPlan build_forest_launch_plan(const AttentionPlan& plan, const AttentionShape& shape,
                                          const KvLayout& layout, const ForestLaunchOptions& options) {
  validate_plan_for_gpu(plan, shape, layout);
  CANOPY_ASSERT(options.min_split_keys >= kTileKeys && options.min_split_keys % kTileKeys == 0);
  CANOPY_ASSERT(options.num_sms > 0 && options.ctas_per_sm > 0);
  const int g = shape.group();
  const int D = shape.head_dim;
  const int Hkv = shape.num_kv_heads;

  auto rows_computed = [&](int32_t q_count) {  // rows the tensor cores compute for a unit
    const int rows = q_count * g;
    if (rows <= kNarrowRows) return kNarrowRows;
    return static_cast<int>(ceil_div(rows, 32) * 32);  // wide: warps past the last row skip
  };
  // A unit's DRAM bytes are its share of the segment's KV: the token tiles of one segment run
  // side by side and read it once from DRAM, then from L2.
  auto unit_cost = [&](int32_t q_count, int64_t keys, int64_t tiles_sharing) {
    const double mem_ns = static_cast<double>(keys) * D * 4.0 / static_cast<double>(tiles_sharing) / options.sm_bytes_per_ns;
    const double flop_ns = 4.0 * rows_computed(q_count) * static_cast<double>(keys) * D / options.sm_flops_per_ns;
    return std::max(mem_ns, flop_ns) + options.unit_overhead_ns;
  };
  auto tokens_per_unit = [&](const AttentionItem& it) {
    return it.q_count * g <= kNarrowRows ? it.q_count : std::max(1, kWideRows / g);
  };

  const bool v2 = options.kernel == ForestKernel::kWgmma;
  // Key tiles of the kernel that runs: key pieces are whole tiles (the wgmma kernel's wide units
  // take 128 keys at a time, v1's 64).
  const int64_t tile_keys = v2 ? kernels::ForestConfigSm90<128>::kTileKeys : kTileKeys;
  CANOPY_ASSERT(!v2 || (options.wgmma_sm_flops_per_ns > 0 && options.leaf_sm_bytes_per_ns > 0 &&
                        options.dram_bytes_per_ns > 0 && options.wide_pieces_per_cta > 0));

  // v2 model (one persistent CTA per SM). A wide unit occupies a tensor CTA for its wgmma time
  // (rows rounded up to the consumer warpgroups' 64) or for streaming its share of the node's KV
  // (the row tiles of a node read it from DRAM once, then from L2), whichever is longer; a leaf
  // occupies one of the 8 leaf warps of a CTA for its bytes at an eighth of the CTA's streaming rate.
  auto wide_ns_v2 = [&](int32_t q_count, int64_t keys, int64_t tiles_sharing = 1) {
    const double rows = static_cast<double>(ceil_div(static_cast<int64_t>(q_count) * g, 64) * 64);
    const double tiles_keys = static_cast<double>(std::max<int64_t>(1, ceil_div(keys, tile_keys)) * tile_keys);
    const double flop_ns = 4.0 * rows * tiles_keys * D / options.wgmma_sm_flops_per_ns;
    const double mem_ns = tiles_keys * D * 4.0 / static_cast<double>(tiles_sharing) / options.wide_sm_bytes_per_ns;
    return std::max(flop_ns, mem_ns) + options.unit_overhead_ns;
  };
  auto leaf_bytes = [&](int64_t keys) { return static_cast<double>(std::max<int64_t>(keys, 16)) * D * 4.0; };
  auto leaf_warp_ns = [&](int64_t keys) {
    return leaf_bytes(keys) / (options.leaf_sm_bytes_per_ns / 8.0) + options.leaf_overhead_ns;
  };

  // Pass 1: the launch's total cost without splits, to size the pieces (and, for v2, to share
  // the SMs between the two queues).
  double total = 0.0;
  double wide_sm_ns = 0.0;    // v2: the wide units' time on one tensor CTA, summed
  double leaf_sm_ns = 0.0;    // v2: the leaves' time on one leaf CTA (8 warps), summed
  double dram_bytes = 0.0;    // v2: every node's KV once
  for (const AttentionItem& it : plan.items) {
    if (it.q_count == 0) continue;
    const int tpu = tokens_per_unit(it);
    const int64_t tiles = ceil_div(it.q_count, tpu);
    const bool narrow = it.q_count * g <= kNarrowRows;
    for (int32_t j0 = 0; j0 < it.q_count; j0 += tpu) {
      total += Hkv * unit_cost(std::min(tpu, it.q_count - j0), it.kv_len, tiles);
      if (narrow) {
        leaf_sm_ns += Hkv * leaf_warp_ns(it.kv_len) / 8.0;
      } else {
        wide_sm_ns += Hkv * wide_ns_v2(std::min(tpu, it.q_count - j0), it.kv_len, tiles);
      }
    }
    dram_bytes += static_cast<double>(Hkv) * it.kv_len * D * 4.0;
  }
  const double target = total / (static_cast<double>(options.num_sms) * options.ctas_per_sm);

  // v2: CTAs that start on the wide queue. Leaves stream on the other SMs (at most the DRAM
  // bandwidth) while the tensor CTAs work; then every SM streams. The fewest-nanoseconds choice wins,
  // ties going to more tensor CTAs (they can join the leaves; leaf CTAs never take wide units).
  const int G = options.num_sms;
  int tensor_ctas = 0;
  double makespan_v2 = 0.0;
  if (v2) {
    const double leaf_bytes_eff = leaf_sm_ns * options.leaf_sm_bytes_per_ns;  // the leaves as bytes at the SM rate
    auto rate = [&](int k) { return std::min(options.dram_bytes_per_ns, k * options.leaf_sm_bytes_per_ns); };
    auto model = [&](int nt) {
      const double dram_ns = dram_bytes / options.dram_bytes_per_ns;  // every byte once, at full bandwidth
      const double t1 = nt > 0 ? wide_sm_ns / nt : 0.0;
      if (leaf_bytes_eff <= 0.0) return std::max(t1, dram_ns);
      const double r1 = rate(G - nt);
      const double b1 = t1 * r1;
      if (r1 > 0.0 && b1 >= leaf_bytes_eff) return std::max({t1, leaf_bytes_eff / r1, dram_ns});
      return std::max(t1 + (leaf_bytes_eff - b1) / rate(G), dram_ns);
    };
    if (wide_sm_ns <= 0.0) {
      tensor_ctas = 0;
    } else if (options.tensor_ctas >= 0) {
      tensor_ctas = std::clamp(options.tensor_ctas, 1, G);
    } else {
      tensor_ctas = G;
      double best = model(G);
      for (int nt = G - 1; nt >= 1; --nt) {
        const double t = model(nt);
        if (t < best * (1.0 - 1e-9)) {
          best = t;
          tensor_ctas = nt;
        }
      }
    }
    makespan_v2 = model(tensor_ctas);
  }
  // v2 split targets: a shared node in at least wide_pieces_per_cta pieces per tensor CTA; no leaf
  // longer than a quarter of the launch on one warp.
  const double wide_target_ns =
      tensor_ctas > 0 ? wide_sm_ns / (static_cast<double>(tensor_ctas) * options.wide_pieces_per_cta) : 1.0;
  const double leaf_target_ns = std::max(makespan_v2 / 4.0, 1.0);

  ForestLaunchPlan lp;
  lp.num_tokens = plan.num_tokens;
  int32_t next_slot = plan.num_slots;
  std::vector<std::vector<int32_t>> extra_slots(static_cast<size_t>(plan.num_tokens));
  std::vector<CostedUnit> costed;

  for (size_t n = 0; n < plan.items.size(); ++n) {
    const AttentionItem& it = plan.items[n];
    if (it.q_count == 0) continue;
    const int tpu = tokens_per_unit(it);
    const int64_t tiles = ceil_div(it.q_count, tpu);
    const bool narrow = it.q_count * g <= kNarrowRows;

    // Key pieces: whole key tiles, at least min_split_keys each.
    int64_t piece_keys = std::max<int64_t>(it.kv_len, 1);
    if (options.split_kv && it.kv_len >= 2 * options.min_split_keys) {
      double wanted = 1.0;
      if (!v2) {
        wanted = unit_cost(std::min(tpu, it.q_count), it.kv_len, tiles) / std::max(target, 1.0);
      } else if (narrow) {
        wanted = leaf_warp_ns(it.kv_len) / leaf_target_ns;
      } else {
        wanted = wide_ns_v2(std::min(tpu, it.q_count), it.kv_len, tiles) / std::max(wide_target_ns, 1.0);
      }
      const int64_t max_pieces = it.kv_len / options.min_split_keys;
      const int64_t pieces = std::min<int64_t>(max_pieces, static_cast<int64_t>(std::ceil(wanted)));
      if (pieces > 1) piece_keys = ceil_div(ceil_div(it.kv_len, pieces), tile_keys) * tile_keys;
    }
    const int64_t num_pieces = std::max<int64_t>(1, ceil_div(it.kv_len, piece_keys));
    if (num_pieces > 1) ++lp.split_items;

    for (int64_t piece = 0; piece < num_pieces; ++piece) {
      const int32_t kb = static_cast<int32_t>(piece * piece_keys);
      const int32_t ke = static_cast<int32_t>(std::min<int64_t>(it.kv_len, (piece + 1) * piece_keys));
      int32_t slot_base = it.out_begin;
      if (piece > 0) {
        slot_base = next_slot;
        next_slot += it.q_count;
        for (int32_t j = 0; j < it.q_count; ++j)
          extra_slots[static_cast<size_t>(plan.q_tokens[static_cast<size_t>(it.q_begin + j)])].push_back(slot_base + j);
      }
      for (int32_t j0 = 0, tile = 0; j0 < it.q_count; j0 += tpu, ++tile) {
        const int32_t count = std::min(tpu, it.q_count - j0);
        int32_t kv_end = ke;
        int32_t mask_from = kernels::kNoMask;
        if (it.causal) {
          int32_t qmin = INT32_MAX, qmax = INT32_MIN;
          for (int32_t j = j0; j < j0 + count; ++j) {
            const int32_t pos = plan.q_positions[static_cast<size_t>(plan.q_tokens[static_cast<size_t>(it.q_begin + j)])];
            qmin = std::min(qmin, pos);
            qmax = std::max(qmax, pos);
          }
          // Key offset k is visible to position q iff kv_pos0 + k <= q.
          const int64_t last_visible = static_cast<int64_t>(qmax) - it.kv_pos0;  // may be negative
          kv_end = static_cast<int32_t>(std::clamp<int64_t>(last_visible + 1, kb, ke));
          const int64_t all_see = static_cast<int64_t>(qmin) - it.kv_pos0 + 1;  // keys < this: seen by all
          if (all_see < kv_end) mask_from = static_cast<int32_t>(std::max<int64_t>(all_see, INT32_MIN / 2));
        }
        kernels::ForestUnit u{};
        u.kv_page_begin = it.kv_page_begin;
        u.kv_begin = kb;
        u.kv_end = std::max(kv_end, kb);
        u.kv_pos0 = it.kv_pos0;
        u.q_begin = it.q_begin + j0;
        u.q_count = count;
        u.slot_base = slot_base + j0;
        u.mask_from = mask_from;
        u.flags = narrow ? kernels::kUnitNarrow : 0;
        const int64_t keys = u.kv_end - u.kv_begin;
        const double cost =
            !v2 ? unit_cost(count, keys, tiles) : narrow ? leaf_warp_ns(keys) : wide_ns_v2(count, keys, tiles);
        for (int h = 0; h < Hkv; ++h) {
          u.kv_head = h;
          const int64_t order = ((static_cast<int64_t>(n) * (num_pieces + 1) + piece) * Hkv + h) * (it.q_count + 1) + tile;
          costed.push_back({u, cost, order});
        }
      }
    }
  }

  // Merge lists: the plan's slots, then the extra ones. A token that no item covers gets a fresh
  // slot and one empty unit per KV head (its query appended to q_tokens), so that it is written.
  lp.q_tokens = plan.q_tokens;
  lp.merge_offsets.assign(static_cast<size_t>(plan.num_tokens) + 1, 0);
  for (int32_t t = 0; t < plan.num_tokens; ++t) {
    const int32_t begin = plan.merge_offsets[static_cast<size_t>(t)];
    const int32_t end = plan.merge_offsets[static_cast<size_t>(t) + 1];
    for (int32_t i = begin; i < end; ++i) lp.merge_slots.push_back(plan.merge_slots[static_cast<size_t>(i)]);
    for (int32_t s : extra_slots[static_cast<size_t>(t)]) lp.merge_slots.push_back(s);
    if (begin == end) {
      CANOPY_ASSERT(extra_slots[static_cast<size_t>(t)].empty());
      kernels::ForestUnit u{};
      u.q_begin = static_cast<int32_t>(lp.q_tokens.size());
      u.q_count = 1;
      u.slot_base = next_slot++;
      u.mask_from = kernels::kNoMask;
      u.flags = kernels::kUnitNarrow;
      lp.q_tokens.push_back(t);
      lp.merge_slots.push_back(u.slot_base);
      for (int h = 0; h < Hkv; ++h) {
        u.kv_head = h;
        costed.push_back({u, v2 ? leaf_warp_ns(0) : options.unit_overhead_ns,
                          INT64_MAX - Hkv * static_cast<int64_t>(t + 1) + h});
      }
    }
    lp.merge_offsets[static_cast<size_t>(t) + 1] = static_cast<int32_t>(lp.merge_slots.size());
  }
  lp.num_slots = next_slot;

  lp.kernel = options.kernel;
  CANOPY_CHECK(options.wgmma_version == 2 || options.wgmma_version == 3,
               "GPU attention: wgmma kernel version {} (expected 2 or 3)", options.wgmma_version);
  lp.wgmma_version = options.wgmma_version;
  if (v2) {
    // Two queues: wide units, then narrow units, each longest first; equal costs keep the plan's
    // order (the token tiles of one KV range side by side: they share it through L2).
    auto by_cost = [](const CostedUnit& a, const CostedUnit& b) {
      if (a.cost_ns != b.cost_ns) return a.cost_ns > b.cost_ns;
      return a.order < b.order;
    };
    std::stable_sort(costed.begin(), costed.end(), [&](const CostedUnit& a, const CostedUnit& b) {
      const bool wa = !(a.unit.flags & kernels::kUnitNarrow), wb = !(b.unit.flags & kernels::kUnitNarrow);
      if (wa != wb) return wa;
      return by_cost(a, b);
    });
    lp.units.reserve(costed.size());
    for (const CostedUnit& c : costed) {
      lp.units.push_back(c.unit);
      lp.total_cost_ns += c.cost_ns;
      if (!(c.unit.flags & kernels::kUnitNarrow)) {
        ++lp.wide_units;
        lp.wide_cost_ns += c.cost_ns;
      } else {
        ++lp.narrow_units;
      }
    }
    lp.num_wide_units = lp.wide_units;
    lp.num_tensor_ctas = lp.wide_units > 0 ? std::max(tensor_ctas, 1) : 0;
    lp.grid_ctas = G;
    CANOPY_CHECK(options.leaf_prefetch_window >= -1, "GPU attention: leaf prefetch window {} (expected >= -1)",
                 options.leaf_prefetch_window);
    if (lp.wgmma_version == 3 && lp.narrow_units > 0)
      lp.leaf_prefetch_window = options.leaf_prefetch_window < 0 ? 2 * G : options.leaf_prefetch_window;
    lp.predicted_makespan_ns = makespan_v2;
    lp.cta_offsets.clear();
    return lp;
  }

  // CTAs: a wide unit alone; narrow units four to a CTA (one per warp), longest first, so that the
  // four have similar costs (a narrow CTA streams its four leaves side by side: it costs their sum).
  struct Cta {
    std::vector<kernels::ForestUnit> units;
    double cost_ns = 0.0;
    int64_t order = 0;
  };
  auto by_cost = [](const CostedUnit& a, const CostedUnit& b) {
    if (a.cost_ns != b.cost_ns) return a.cost_ns > b.cost_ns;
    return a.order < b.order;
  };
  std::stable_sort(costed.begin(), costed.end(), by_cost);
  std::vector<Cta> wide, narrow;
  for (const CostedUnit& c : costed) {
    lp.total_cost_ns += c.cost_ns;
    if (!(c.unit.flags & kernels::kUnitNarrow)) {
      wide.push_back({{c.unit}, c.cost_ns, c.order});
      lp.wide_cost_ns += c.cost_ns;
      ++lp.wide_units;
      continue;
    }
    ++lp.narrow_units;
    // The four warps' start-up latencies overlap: one overhead per CTA.
    if (narrow.empty() || narrow.back().units.size() == static_cast<size_t>(kUnitsPerNarrowCta))
      narrow.push_back({{}, options.unit_overhead_ns, c.order});
    narrow.back().units.push_back(c.unit);
    narrow.back().cost_ns += c.cost_ns - options.unit_overhead_ns;
  }

  // Launch order: replay the GPU's CTA dispatch (slots of num_sms x ctas_per_sm, each freed when its
  // CTA's predicted time is up, the next CTA of the list taking it) and fill each freed slot with a
  // wide CTA while fewer than one per SM are running, else with a narrow one. Each SM then keeps
  // about one tensor-core CTA (a shared node) beside streaming ones (leaves) for the whole launch,
  // and the long wide CTAs start early instead of forming the tail. Predicted times: a CTA's cost
  // stretched by sharing: wide CTAs share the SMs' tensor cores (more than one per SM), narrow
  // CTAs share the DRAM bandwidth (more than one per SM).
  std::vector<const Cta*> order;
  order.reserve(wide.size() + narrow.size());
  {
    using Slot = std::pair<double, int>;  // (free at, slot)
    std::priority_queue<Slot, std::vector<Slot>, std::greater<>> slots;
    const int num_slots = options.num_sms * options.ctas_per_sm;
    for (int i = 0; i < num_slots; ++i) slots.push({0.0, i});
    std::multiset<double> wide_running, narrow_running;  // end times
    size_t iw = 0, in = 0;
    while (iw < wide.size() || in < narrow.size()) {
      const auto [t, slot] = slots.top();
      slots.pop();
      while (!wide_running.empty() && *wide_running.begin() <= t) wide_running.erase(wide_running.begin());
      while (!narrow_running.empty() && *narrow_running.begin() <= t) narrow_running.erase(narrow_running.begin());
      const bool take_wide = iw < wide.size() &&
                             (in == narrow.size() || static_cast<int>(wide_running.size()) < options.num_sms);
      const Cta& c = take_wide ? wide[iw++] : narrow[in++];
      auto& running = take_wide ? wide_running : narrow_running;
      const double share = std::max(1.0, static_cast<double>(running.size() + 1) / options.num_sms);
      const double end = t + c.cost_ns * share;
      running.insert(end);
      slots.push({end, slot});
      lp.predicted_makespan_ns = std::max(lp.predicted_makespan_ns, end);
      order.push_back(&c);
    }
  }
  lp.units.reserve(costed.size());
  lp.cta_offsets.reserve(order.size() + 1);
  lp.cta_offsets.push_back(0);
  for (const Cta* c : order) {
    lp.units.insert(lp.units.end(), c->units.begin(), c->units.end());
    lp.cta_offsets.push_back(static_cast<int32_t>(lp.units.size()));
  }
  lp.grid_ctas = static_cast<int32_t>(order.size());
  return lp;
}

}  // namespace canopy::cuda
