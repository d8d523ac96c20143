// A test-local driver for LlamaModel: sequences in fixed, contiguous KV blocks and a plain
// attention plan (one causal item per sequence over all its blocks). The engine uses the real KV
// manager and planner; this exists so the model can be tested alone.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/llama.h"
#include "testing/testing.h"

namespace canopy::testing {

class StepRunner {
 public:
  StepRunner(LlamaModel& model, int num_sequences, int max_len, int block_size = 16)
      : model_(model), block_size_(block_size), blocks_per_seq_((max_len + block_size - 1) / block_size),
        lengths_(static_cast<size_t>(num_sequences), 0) {
    cache_ = model.allocate_kv_cache(num_sequences * blocks_per_seq_, block_size);
  }

  struct Chunk {
    int sequence;
    std::vector<int32_t> tokens;
  };

  // Runs one step with the given chunks (each appends its tokens to its sequence) and returns
  // the logits of every token of the step, [T][V].
  std::vector<std::vector<float>> step(const std::vector<Chunk>& chunks) {
    std::vector<int32_t> tokens, rows;
    std::vector<int32_t> slots;
    AttentionPlan plan;
    for (const Chunk& c : chunks) {
      const int32_t pos0 = lengths_[static_cast<size_t>(c.sequence)];
      const auto n = static_cast<int32_t>(c.tokens.size());
      AttentionItem item;
      item.kv_page_begin = static_cast<int32_t>(plan.kv_pages.size());
      item.kv_len = pos0 + n;
      item.kv_pos0 = 0;
      item.q_begin = static_cast<int32_t>(plan.q_tokens.size());
      item.q_count = n;
      item.out_begin = plan.num_slots;
      item.causal = 1;
      item.node = c.sequence;
      for (int b = 0; b < (pos0 + n + block_size_ - 1) / block_size_; ++b)
        plan.kv_pages.push_back(c.sequence * blocks_per_seq_ + b);
      for (int32_t j = 0; j < n; ++j) {
        const auto t = static_cast<int32_t>(tokens.size());
        const int32_t pos = pos0 + j;
        tokens.push_back(c.tokens[static_cast<size_t>(j)]);
        slots.push_back((c.sequence * blocks_per_seq_ + pos / block_size_) * block_size_ + pos % block_size_);
        plan.q_positions.push_back(pos);
        plan.q_tokens.push_back(t);
        plan.merge_offsets.push_back(plan.num_slots + j);
        plan.merge_slots.push_back(plan.num_slots + j);
        rows.push_back(t);
      }
      plan.num_slots += n;
      plan.items.push_back(item);
      lengths_[static_cast<size_t>(c.sequence)] += n;
    }
    plan.num_tokens = static_cast<int32_t>(tokens.size());
    plan.merge_offsets.push_back(plan.num_slots);
    StepInput in{tokens, slots, &plan, rows};
    model_.forward(in, cache_);
    const int64_t V = model_.config().vocab_size;
    std::vector<float> flat(static_cast<size_t>(rows.size()) * static_cast<size_t>(V));
    model_.backend().download(model_.logits(), flat.data());
    std::vector<std::vector<float>> out;
    for (size_t r = 0; r < rows.size(); ++r)
      out.emplace_back(flat.begin() + static_cast<ptrdiff_t>(r * static_cast<size_t>(V)),
                       flat.begin() + static_cast<ptrdiff_t>((r + 1) * static_cast<size_t>(V)));
    return out;
  }

 private:
  LlamaModel& model_;
  int block_size_;
  int blocks_per_seq_;
  std::vector<int32_t> lengths_;
  KvCache cache_;
};

// Goldens written by tools/make_tiny_models.py.
struct GoldenCase {
  std::vector<int32_t> prompt;
  std::vector<int32_t> greedy;
  std::vector<std::vector<float>> logits;  // [prompt + greedy - 1][V]
};

inline std::vector<GoldenCase> load_goldens(const std::string& folder) {
  std::ifstream meta_file(folder + "/golden.json");
  const nlohmann::json meta = nlohmann::json::parse(meta_file);
  const std::string blob = read_file(folder + "/golden_logits.bin");
  const auto V = meta.at("vocab").get<size_t>();
  std::vector<GoldenCase> cases;
  for (const auto& c : meta.at("cases")) {
    GoldenCase g;
    g.prompt = c.at("prompt").get<std::vector<int32_t>>();
    g.greedy = c.at("greedy").get<std::vector<int32_t>>();
    const auto offset = c.at("logits_offset").get<size_t>();
    const auto rows = c.at("logits_rows").get<size_t>();
    if ((offset + rows * V) * sizeof(float) > blob.size()) throw std::runtime_error("golden_logits.bin too short");
    for (size_t r = 0; r < rows; ++r) {
      std::vector<float> row(V);
      std::memcpy(row.data(), blob.data() + (offset + r * V) * sizeof(float), V * sizeof(float));
      g.logits.push_back(std::move(row));
    }
    cases.push_back(std::move(g));
  }
  return cases;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

inline int32_t argmax_of(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace canopy::testing
