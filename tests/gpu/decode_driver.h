// Drives a LlamaModel through prefill and decode steps of many sequences, as the engine would but
// without its scheduler: each sequence owns contiguous KV blocks, each step's plan has one causal
// item per sequence chunk, and only the last token of each chunk asks for logits. For GPU tests
// and benchmarks of whole steps (tests/model/step_runner.h asks for every token's logits instead).
#pragma once

#include <vector>

#include "model/llama.h"

namespace canopy::testing {

class DecodeDriver {
 public:
  DecodeDriver(LlamaModel& model, int num_sequences, int max_len, int block_size = 16)
      : model_(model), block_size_(block_size), blocks_per_seq_((max_len + block_size - 1) / block_size),
        max_len_(max_len), lengths_(static_cast<size_t>(num_sequences), 0) {
    cache_ = model.allocate_kv_cache(num_sequences * blocks_per_seq_, block_size);
  }

  struct Chunk {
    int sequence;
    std::vector<int32_t> tokens;
  };

  // Appends each chunk's tokens to its sequence; the logits of each chunk's last token are then
  // model.logits() row i for chunk i.
  void step(const std::vector<Chunk>& chunks) {
    tokens_.clear();
    slots_.clear();
    rows_.clear();
    plan_ = AttentionPlan{};
    for (const Chunk& c : chunks) {
      const int32_t pos0 = lengths_[static_cast<size_t>(c.sequence)];
      const auto n = static_cast<int32_t>(c.tokens.size());
      if (pos0 + n > max_len_) throw std::runtime_error("DecodeDriver: sequence longer than max_len");
      AttentionItem item;
      item.kv_page_begin = static_cast<int32_t>(plan_.kv_pages.size());
      item.kv_len = pos0 + n;
      item.q_begin = static_cast<int32_t>(plan_.q_tokens.size());
      item.q_count = n;
      item.out_begin = plan_.num_slots;
      item.causal = 1;
      item.node = c.sequence;
      for (int b = 0; b < (pos0 + n + block_size_ - 1) / block_size_; ++b)
        plan_.kv_pages.push_back(c.sequence * blocks_per_seq_ + b);
      for (int32_t j = 0; j < n; ++j) {
        const auto t = static_cast<int32_t>(tokens_.size());
        const int32_t pos = pos0 + j;
        tokens_.push_back(c.tokens[static_cast<size_t>(j)]);
        slots_.push_back((c.sequence * blocks_per_seq_ + pos / block_size_) * block_size_ + pos % block_size_);
        plan_.q_positions.push_back(pos);
        plan_.q_tokens.push_back(t);
        plan_.merge_offsets.push_back(plan_.num_slots + j);
        plan_.merge_slots.push_back(plan_.num_slots + j);
      }
      rows_.push_back(static_cast<int32_t>(tokens_.size()) - 1);
      plan_.num_slots += n;
      plan_.items.push_back(item);
      lengths_[static_cast<size_t>(c.sequence)] += n;
    }
    plan_.num_tokens = static_cast<int32_t>(tokens_.size());
    plan_.merge_offsets.push_back(plan_.num_slots);
    model_.forward(StepInput{tokens_, slots_, &plan_, rows_}, cache_);
  }

  std::vector<float> logits() const {
    const TensorView l = model_.logits();
    std::vector<float> host(static_cast<size_t>(l.numel()));
    model_.backend().download(l, host.data());
    return host;
  }

  // Waits for the steps so far: downloads one logit (a timing fence that costs no bandwidth).
  void synchronize() const {
    const TensorView l = model_.logits();
    float one = 0.0f;
    model_.backend().download(TensorView{l.data, l.dtype, Shape{1}}, &one);
  }

  int32_t length(int sequence) const { return lengths_[static_cast<size_t>(sequence)]; }

 private:
  LlamaModel& model_;
  int block_size_;
  int blocks_per_seq_;
  int max_len_;
  std::vector<int32_t> lengths_;
  KvCache cache_;
  std::vector<int32_t> tokens_, slots_, rows_;
  AttentionPlan plan_;
};

}  // namespace canopy::testing
