// The engine: the step loop schedule -> plan -> forward -> sample -> commit.
//
// Every step gathers the decode tokens of all running sequences and fills the rest of the token
// budget with prefill chunks, reserves their KV slots (kv/kv_cache_manager.h), performs the
// copy-on-write copies, builds the attention plan over the step's prefix forest
// (attention/planner.h), runs the model, samples the rows that need a token and commits them.
//
// Sharing: with prefix sharing on, the n samples of a prompt are one sequence until the prompt is
// prefilled, then forks that share its blocks, and prompts reuse cached prefixes of earlier ones.
// With it off, every sample is its own sequence that prefills and reads its own copy of the
// prompt. Sample i of a request draws from the random stream sample_seed(seed, i), and a row's
// logits do not depend on the batch, so both modes give the same tokens.
//
// Batch order (BatchLLM): with prefix sharing on, the prefix forest of the whole batch
// (sched/prefix_forest.h) orders admission: groups of requests that share a prefix run together,
// decode-heavy groups first, depth-first inside a group. A request that shares a prefix with an
// earlier request waits until that request has prefilled the shared part, then starts from its
// cached blocks (kv/kv_cache_manager.h create()), so every shared forest node is prefilled once.
//
// Admission: a request is admitted when the KV blocks it can need at most (prompt plus max_tokens
// for every sample) fit beside those reserved by running requests, so a running sequence never
// runs out of KV memory.
#include "canopy/engine.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

#include "attention/planner.h"
#include "core/error.h"
#include "core/log.h"
#include "engine/backend_factory.h"
#include "kv/kv_cache_manager.h"
#include "model/llama.h"
#include "sampling/random.h"
#include "sched/prefix_forest.h"

namespace canopy {
namespace {

constexpr int64_t kDefaultCpuKvBytes = int64_t{1} << 30;

struct SequenceState {
  SeqId id = -1;
  size_t request = 0;
  int32_t sample = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  int32_t prompt_len = 0;
  int32_t generated = 0;
  bool fork_siblings = false;  // the shared parent of n > 1 samples, until its prompt is prefilled
  bool done = false;
};

struct RequestState {
  const GenerateRequest* request = nullptr;
  int32_t wait_for = -1;         // an earlier request whose prompt shares this one's prefix
  int32_t wait_tokens = 0;       // ... and how many of its prompt tokens must be in KV first
  int32_t prompt_prefilled = 0;  // prompt tokens in KV of this request's first sequence
  int32_t max_new = 0;   // max_tokens, clipped to the context
  int32_t reserved = 0;  // KV blocks reserved while running
  int32_t live = 0;      // unfinished sequences
  GenerateResult result;
};

int32_t ceil_div(int64_t a, int64_t b) { return static_cast<int32_t>((a + b - 1) / b); }

class LocalEngine final : public Engine {
 public:
  explicit LocalEngine(const EngineOptions& o) : options_(o) {
    CANOPY_CHECK(o.block_size >= 1 && o.block_size <= 256, "block_size = {} is out of range [1, 256]", o.block_size);
    CANOPY_CHECK(o.max_step_tokens >= 1 && o.max_step_tokens <= (1 << 16),
                 "max_step_tokens = {} is out of range [1, 65536]", o.max_step_tokens);
    CANOPY_CHECK(o.max_step_sequences >= 1 && o.max_step_sequences <= o.max_step_tokens,
                 "max_step_sequences = {} is out of range [1, max_step_tokens = {}]", o.max_step_sequences,
                 o.max_step_tokens);
    CANOPY_CHECK(o.kv_cache_bytes >= 0, "kv_cache_bytes = {} must be >= 0", o.kv_cache_bytes);
    backend_ = make_backend(BackendOptions{o.device, o.threads, o.gpu_memory_utilization, o.cuda_graphs});
    const StepCapacity capacity{o.max_step_tokens, o.max_step_sequences};
    model_ = o.random_weights ? LlamaModel::load_random(o.model_path, *backend_, capacity, o.random_weights_seed)
                              : LlamaModel::load(o.model_path, *backend_, capacity);
    const ModelConfig& c = model_->config();
    info_ = ModelInfo{c.architecture, c.vocab_size, c.max_context(), c.bos_token_id, c.eos_token_ids, c.summary()};

    // The KV cache takes what the device allows once the model is loaded (a GPU: its memory share
    // less what is in use), or the CPU default; an explicit size must fit the device's budget.
    const std::optional<int64_t> budget = backend_->kv_cache_budget_bytes();
    if (budget && o.kv_cache_bytes > 0)
      CANOPY_CHECK(o.kv_cache_bytes <= *budget,
                   "a KV cache of {} MiB does not fit: the model leaves {} MiB for it on the {} device (raise "
                   "--gpu-memory-utilization or ask for less)",
                   o.kv_cache_bytes >> 20, *budget >> 20, o.device);
    const int64_t bytes = o.kv_cache_bytes > 0 ? o.kv_cache_bytes : budget.value_or(kDefaultCpuKvBytes);
    const auto per_block = static_cast<int64_t>(model_->kv_bytes_per_block(o.block_size));
    const int64_t blocks = std::min<int64_t>(bytes / per_block, int64_t{1} << 24);
    CANOPY_CHECK(blocks >= 1,
                 "a KV cache of {} bytes holds no block of {} tokens ({} bytes each){}", bytes, o.block_size,
                 per_block,
                 budget ? ": the model's weights and buffers leave no room for it (raise --gpu-memory-utilization)"
                        : "");
    num_blocks_ = static_cast<int32_t>(blocks);
    cache_ = model_->allocate_kv_cache(num_blocks_, o.block_size);
    kv_ = std::make_unique<KvCacheManager>(KvCacheOptions{num_blocks_, o.block_size, o.prefix_sharing});
    const int32_t split = std::max(1, 1024 / o.block_size) * o.block_size;
    planner_ = std::make_unique<Planner>(PlannerOptions{o.block_size, num_blocks_, split, 64});
    CANOPY_LOG_INFO("model: {}", info_.summary);
    CANOPY_LOG_INFO("KV cache: {} blocks of {} tokens ({} MiB)", num_blocks_, o.block_size,
                    (static_cast<int64_t>(num_blocks_) * per_block) >> 20);
  }

  const ModelInfo& model_info() const override { return info_; }
  EngineStats stats() const override { return stats_; }

  std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests, const TokenCallback& on_token,
                                       const FinishCallback& on_finish) override {
    requests_.clear();
    seqs_.clear();
    pending_.clear();
    reserved_ = 0;
    for (size_t r = 0; r < requests.size(); ++r) {
      RequestState rs;
      rs.request = &requests[r];
      rs.max_new = validate(requests[r], fmt::format("request {}: ", r));
      rs.reserved = blocks_to_reserve(requests[r], rs.max_new);
      requests_.push_back(std::move(rs));
    }
    order_admission();
    on_token_ = &on_token;
    on_finish_ = &on_finish;
    try {
      while (admit() || has_work()) step();
    } catch (...) {
      release_all();
      throw;
    }
    std::vector<GenerateResult> out;
    for (RequestState& rs : requests_) out.push_back(std::move(rs.result));
    return out;
  }

  void check_request(const GenerateRequest& request) const override { validate(request, ""); }

 private:
  // The number of new tokens the request may generate; throws for a request that is malformed or
  // too big. `where` starts each message (e.g. "request 3: ").
  int32_t validate(const GenerateRequest& g, const std::string& where) const {
    try {
      validate_sampling_params(g.params);
    } catch (const Error& e) {
      fail("{}{}", where, e.what());
    }
    CANOPY_CHECK(!g.prompt.empty(), "{}the prompt is empty", where);
    for (int32_t id : g.prompt)
      CANOPY_CHECK(id >= 0 && id < info_.vocab_size, "{}token id {} is outside the vocabulary [0, {})", where, id,
                   info_.vocab_size);
    const auto len = static_cast<int64_t>(g.prompt.size());
    if (len >= info_.max_context)
      throw CapacityError(
          fmt::format("{}the prompt has {} tokens, the model's context is {}", where, len, info_.max_context));
    const auto max_new = static_cast<int32_t>(std::min<int64_t>(g.params.max_tokens, info_.max_context - len));
    const int32_t blocks = blocks_to_reserve(g, max_new);
    if (blocks > num_blocks_)
      throw CapacityError(fmt::format(
          "{}its {} samples of up to {} tokens after a {}-token prompt need up to {} KV blocks, but the KV cache has {}",
          where, g.params.n, max_new, len, blocks, num_blocks_));
    return max_new;
  }

  int32_t blocks_to_reserve(const GenerateRequest& g, int32_t max_new) const {
    const int64_t bs = options_.block_size;
    const auto total = static_cast<int64_t>(g.prompt.size()) + max_new;
    const int64_t n = g.params.n;
    int64_t blocks = options_.prefix_sharing ? ceil_div(total, bs) + (n - 1) * (ceil_div(max_new, bs) + 1)
                                             : n * ceil_div(total, bs);
    return static_cast<int32_t>(std::min<int64_t>(blocks, INT32_MAX));
  }

  // Fills pending_ with every request in admission order and sets their prefix dependencies.
  void order_admission() {
    pending_.clear();
    if (!options_.prefix_sharing || requests_.size() < 2) {
      for (size_t r = 0; r < requests_.size(); ++r) pending_.push_back(r);
      return;
    }
    std::vector<ForestRequest> batch;
    for (const RequestState& rs : requests_)
      batch.push_back(ForestRequest{rs.request->prompt, rs.request->params.n, rs.max_new});
    const PrefixForest forest = PrefixForest::build(batch);
    stats_.unique_prompt_tokens += forest.stats().unique_prompt_tokens;
    // The first request (in admission order) through each node prefills it; a later request
    // through the same node waits for that one, on its deepest such node.
    std::vector<int32_t> first_through(forest.nodes().size(), -1);
    for (int32_t r : forest.schedule(GroupOrder::DecodeHeavyFirst)) {
      pending_.push_back(static_cast<size_t>(r));
      RequestState& rs = requests_[static_cast<size_t>(r)];
      for (int32_t node : forest.path(forest.leaf_of(r))) {
        int32_t& first = first_through[static_cast<size_t>(node)];
        if (first < 0) {
          first = r;
          continue;
        }
        const ForestNode& n = forest.nodes()[static_cast<size_t>(node)];
        rs.wait_for = first;
        rs.wait_tokens = n.first_token + n.num_tokens;
      }
      // Sharing below a block's worth of tokens saves nothing: blocks are the unit of reuse.
      if (rs.wait_tokens < options_.block_size) rs.wait_for = -1;
    }
  }

  bool waits_for_prefix(const RequestState& rs) const {
    return rs.wait_for >= 0 && requests_[static_cast<size_t>(rs.wait_for)].prompt_prefilled < rs.wait_tokens;
  }

  // Admits pending requests whose KV fits, in order, passing over those that wait for a shared
  // prefix; returns whether any was admitted.
  bool admit() {
    bool any = false;
    for (auto it = pending_.begin(); it != pending_.end();) {
      RequestState& rs = requests_[*it];
      if (waits_for_prefix(rs)) {
        ++it;
        continue;
      }
      if (reserved_ + rs.reserved > num_blocks_) break;
      const size_t r = *it;
      it = pending_.erase(it);
      reserved_ += rs.reserved;
      const GenerateRequest& g = *rs.request;
      rs.result.samples.resize(static_cast<size_t>(g.params.n));
      const int32_t sequences = options_.prefix_sharing ? 1 : g.params.n;
      for (int32_t i = 0; i < sequences; ++i) {
        SequenceState s;
        s.id = kv_->create(g.prompt);
        s.request = r;
        s.sample = i;
        s.tokens = g.prompt;
        s.prompt_len = static_cast<int32_t>(g.prompt.size());
        s.fork_siblings = options_.prefix_sharing && g.params.n > 1;
        seqs_.push_back(std::move(s));
      }
      rs.live = g.params.n;
      stats_.prompt_tokens += static_cast<int64_t>(g.prompt.size()) * g.params.n;
      any = true;
    }
    return any;
  }

  bool has_work() const {
    return std::any_of(seqs_.begin(), seqs_.end(), [](const SequenceState& s) { return !s.done; });
  }

  void step() {
    const auto t0 = std::chrono::steady_clock::now();
    step_tokens_.clear();
    step_slots_.clear();
    copies_.clear();
    logit_rows_.clear();
    planner_seqs_.clear();
    step_members_.clear();
    int32_t budget = options_.max_step_tokens;
    int32_t rows = 0;
    int64_t prefill_tokens = 0;

    // Decode tokens first (each sequence's last sampled token), then prefill chunks. Sequences
    // beyond the step's limits wait for a later step; rotation keeps that fair.
    const size_t n = seqs_.size();
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t k = 0; k < n && budget > 0; ++k) {
        const size_t i = (rotation_ + k) % n;
        SequenceState& s = seqs_[i];
        if (s.done) continue;
        const int32_t kv_len = kv_->length(s.id);
        const bool decoding = kv_len >= s.prompt_len;
        if ((pass == 0) != decoding) continue;
        int32_t count = decoding ? 1 : std::min(s.prompt_len - kv_len, budget);
        const bool wants_logits = kv_len + count == static_cast<int32_t>(s.tokens.size());
        if (wants_logits && rows == options_.max_step_sequences) continue;
        add_to_step(i, kv_len, count, wants_logits);
        budget -= count;
        rows += wants_logits ? 1 : 0;
        if (!decoding) prefill_tokens += count;
      }
    }
    rotation_ = n == 0 ? 0 : (rotation_ + 1) % n;
    CANOPY_ASSERT(!step_tokens_.empty());

    planner_->build(planner_seqs_, static_cast<int32_t>(step_tokens_.size()), plan_);
    copy_src_.clear();
    copy_dst_.clear();
    for (const BlockCopy& c : copies_) {
      copy_src_.push_back(c.src);
      copy_dst_.push_back(c.dst);
    }
    model_->copy_kv_blocks(cache_, copy_src_, copy_dst_);
    model_->forward(StepInput{step_tokens_, step_slots_, &plan_, logit_rows_}, cache_);
    stats_.steps += 1;
    stats_.prefill_tokens_computed += prefill_tokens;

    // Prompts fully prefilled enter the prefix cache; shared parents fork their siblings.
    sample_seqs_.clear();
    sample_rows_.clear();
    sample_params_.clear();
    for (const StepMember& member : step_members_) {
      const size_t seq = member.seq;
      const int32_t kv_len = kv_->length(seqs_[seq].id);
      if (kv_len <= seqs_[seq].prompt_len) {
        RequestState& rs = requests_[seqs_[seq].request];
        if (seqs_[seq].sample == 0) rs.prompt_prefilled = kv_len;
        if (options_.prefix_sharing)
          kv_->cache_prefix(seqs_[seq].id,
                            std::span<const int32_t>(seqs_[seq].tokens.data(), static_cast<size_t>(seqs_[seq].prompt_len)));
      }
      if (member.logit_row < 0) continue;
      queue_sample(seq, member.logit_row);
      if (seqs_[seq].fork_siblings) {
        // The prompt is in KV: the other samples start here, sharing its blocks and its logits.
        seqs_[seq].fork_siblings = false;
        const size_t first_sibling = seqs_.size();
        fork_siblings(seq);  // grows seqs_: no references into it are held across this call
        for (size_t c = first_sibling; c < seqs_.size(); ++c) queue_sample(c, member.logit_row);
      }
    }
    sampled_.resize(sample_seqs_.size());
    backend_->sample(model_->logits(), sample_rows_, sample_params_, sampled_);
    for (size_t k = 0; k < sample_seqs_.size(); ++k) commit(sample_seqs_[k], sampled_[k]);

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (prefill_tokens > 0) {
      stats_.prefill_seconds += seconds;
    } else {
      stats_.decode_seconds += seconds;
      stats_.decode_step_tokens += static_cast<int64_t>(step_tokens_.size());
    }
  }

  void add_to_step(size_t seq, int32_t kv_len, int32_t count, bool wants_logits) {
    SequenceState& s = seqs_[seq];
    const auto q_begin = static_cast<int32_t>(step_tokens_.size());
    kv_->append(s.id, count, step_slots_, copies_);
    for (int32_t j = 0; j < count; ++j) step_tokens_.push_back(s.tokens[static_cast<size_t>(kv_len + j)]);
    int32_t row = -1;
    if (wants_logits) {
      row = static_cast<int32_t>(logit_rows_.size());
      logit_rows_.push_back(q_begin + count - 1);
    }
    step_members_.push_back({seq, row});
    planner_seqs_.push_back(PlannerSequence{kv_->block_table(s.id), kv_->length(s.id), q_begin, count});
  }

  void fork_siblings(size_t parent) {
    const int32_t n = requests_[seqs_[parent].request].request->params.n;
    for (int32_t i = 1; i < n; ++i) {
      SequenceState c;
      c.id = kv_->fork(seqs_[parent].id);
      c.request = seqs_[parent].request;
      c.sample = i;
      c.tokens = seqs_[parent].tokens;
      c.prompt_len = seqs_[parent].prompt_len;
      seqs_.push_back(std::move(c));
    }
  }

  void queue_sample(size_t seq, int32_t row) {
    const SequenceState& s = seqs_[seq];
    const SamplingParams& p = requests_[s.request].request->params;
    sample_seqs_.push_back(seq);
    sample_rows_.push_back(row);
    sample_params_.push_back(SamplingRow{p.temperature, p.top_k, p.top_p,
                                         sample_seed(p.seed, static_cast<uint64_t>(s.sample)),
                                         static_cast<uint64_t>(s.generated)});
  }

  void commit(size_t seq, const SampledToken& t) {
    SequenceState& s = seqs_[seq];
    RequestState& rs = requests_[s.request];
    Sample& out = rs.result.samples[static_cast<size_t>(s.sample)];
    const bool eos = !rs.request->params.ignore_eos && model_->config().is_eos(t.token);
    if (eos) {
      out.finish = FinishReason::Stop;
    } else {
      s.tokens.push_back(t.token);
      s.generated += 1;
      out.tokens.push_back(t.token);
      out.logprobs.push_back(t.logprob);
      stats_.generated_tokens += 1;
      const bool go_on = !*on_token_ || (*on_token_)(s.request, s.sample, t.token);
      if (!go_on) {
        out.finish = FinishReason::Stop;
      } else if (s.generated < rs.max_new) {
        return;
      } else {
        out.finish = FinishReason::Length;
      }
    }
    finish(s);
    if (*on_finish_) (*on_finish_)(s.request, s.sample, out.finish);
  }

  void finish(SequenceState& s) {
    s.done = true;
    kv_->free(s.id);
    RequestState& rs = requests_[s.request];
    if (--rs.live == 0) reserved_ -= rs.reserved;
  }

  // After an error: every sequence gives its KV back, so the engine stays usable.
  void release_all() {
    for (SequenceState& s : seqs_)
      if (!s.done) {
        s.done = true;
        kv_->free(s.id);
      }
    reserved_ = 0;
  }

  struct StepMember {
    size_t seq;
    int32_t logit_row;  // -1: a prefill chunk that does not reach the prompt's end
  };

  EngineOptions options_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  ModelInfo info_;
  int32_t num_blocks_ = 0;
  KvCache cache_;
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Planner> planner_;
  EngineStats stats_;

  // The callbacks of the generate() call in progress.
  const TokenCallback* on_token_ = nullptr;
  const FinishCallback* on_finish_ = nullptr;
  std::vector<RequestState> requests_;
  std::vector<SequenceState> seqs_;
  std::deque<size_t> pending_;
  int32_t reserved_ = 0;
  size_t rotation_ = 0;

  // Step buffers, reused.
  std::vector<int32_t> step_tokens_, step_slots_, logit_rows_, copy_src_, copy_dst_;
  std::vector<BlockCopy> copies_;
  std::vector<PlannerSequence> planner_seqs_;
  std::vector<StepMember> step_members_;
  AttentionPlan plan_;
  std::vector<size_t> sample_seqs_;
  std::vector<int32_t> sample_rows_;
  std::vector<SamplingRow> sample_params_;
  std::vector<SampledToken> sampled_;
};

}  // namespace

std::unique_ptr<Engine> Engine::create(const EngineOptions& options) { return std::make_unique<LocalEngine>(options); }

}  // namespace canopy
