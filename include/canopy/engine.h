// canopy's public C++ API: load a model, generate continuations of many prompts at once.
//
//   auto engine = canopy::Engine::create({.model_path = "model.gguf"});
//   auto results = engine->generate({{.prompt = ids, .params = {.n = 4, .max_tokens = 64}}});
//
// Errors a caller can cause (bad path, bad model file, out-of-range parameters, a prompt longer
// than the context or the KV cache) are thrown as canopy::Error (core/error.h) with a message that
// names the cause; CapacityError for requests that ask for more than the engine can hold.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "canopy/sampling_params.h"

namespace canopy {

struct EngineOptions {
  std::string model_path;       // a Hugging Face folder or a .gguf file
  std::string device = "cpu";   // "cpu" or "cuda"
  // Off: the honest baseline. No prefix reuse between requests and no sharing between the n
  // samples of a prompt: every sequence prefills and reads its own copy of its prompt.
  bool prefix_sharing = true;
  int32_t block_size = 16;            // tokens per KV block
  int64_t kv_cache_bytes = 0;         // 0: device default (CPU: 1 GiB; GPU: what the memory share leaves)
  int32_t max_step_tokens = 512;      // token budget of one step (decode tokens + prefill chunks)
  int32_t max_step_sequences = 256;   // sequences decoding in one step at most
  int threads = 0;                    // CPU threads (0: every core)
  double gpu_memory_utilization = 0.9;  // GPU: share of the device memory canopy may hold, in (0, 1]
  bool cuda_graphs = true;              // GPU: replay decode steps as CUDA graphs
  // model_path is a Hugging Face config.json and the weights are random, made on the device: for
  // throughput benchmarks of real-size models (throughput does not depend on the weights' values).
  bool random_weights = false;
  uint64_t random_weights_seed = 0;
};

struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids, not empty
  SamplingParams params;
};

// Stop: an end-of-sequence token, or the TokenCallback said stop. Length: max_tokens or the context.
enum class FinishReason { Stop, Length };

struct Sample {
  std::vector<int32_t> tokens;   // generated ids (the end-of-sequence token excluded)
  std::vector<float> logprobs;   // log-probability of each generated token under the model
  FinishReason finish = FinishReason::Length;
};

struct GenerateResult {
  std::vector<Sample> samples;  // params.n of them
};

struct ModelInfo {
  std::string architecture;
  int64_t vocab_size = 0;
  int64_t max_context = 0;
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string summary;
};

// Counters since the engine was created.
struct EngineStats {
  int64_t steps = 0;
  int64_t prompt_tokens = 0;            // over all sequences, as requested
  int64_t prefill_tokens_computed = 0;  // prompt tokens actually run (the rest came from shared KV)
  int64_t unique_prompt_tokens = 0;     // the prefill optimum of the batches' prefix forests
                                        // (with prefix sharing; 0 when it is off)
  int64_t generated_tokens = 0;
  double prefill_seconds = 0.0;  // steps that ran any prefill tokens
  double decode_seconds = 0.0;   // steps of decode tokens only
  int64_t decode_step_tokens = 0;  // tokens of those decode-only steps
};

// Called as each token is sampled (request index, sample index, token id), on the thread that
// called generate(); optional. A callable that returns bool decides whether the sample goes on:
// false finishes it after this token with FinishReason::Stop (e.g. a stop string appeared in its
// text), so it generates no more. A callable that returns void always lets it go on.
class TokenCallback {
 public:
  TokenCallback() = default;
  TokenCallback(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): "no callback"
  template <typename F>
    requires(!std::same_as<std::remove_cvref_t<F>, TokenCallback> &&
             std::invocable<F&, size_t, int32_t, int32_t>)
  TokenCallback(F f) {  // NOLINT(google-explicit-constructor): a lambda converts, as to std::function
    if constexpr (std::is_void_v<std::invoke_result_t<F&, size_t, int32_t, int32_t>>) {
      fn_ = [f = std::move(f)](size_t request, int32_t sample, int32_t token) mutable {
        f(request, sample, token);
        return true;
      };
    } else {
      fn_ = std::move(f);
    }
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }
  // Whether the sample goes on.
  bool operator()(size_t request, int32_t sample, int32_t token) const { return fn_(request, sample, token); }

 private:
  std::function<bool(size_t, int32_t, int32_t)> fn_;
};

// Called once per sample when it finishes (request index, sample index, why), after its last
// token's TokenCallback; optional. Every sample finishes exactly once in a generate() that returns.
using FinishCallback = std::function<void(size_t request, int32_t sample, FinishReason finish)>;

class Engine {
 public:
  static std::unique_ptr<Engine> create(const EngineOptions& options);
  virtual ~Engine() = default;

  virtual const ModelInfo& model_info() const = 0;
  // Runs every request to completion, batching all their sequences together, and returns one
  // result per request, in order. Throws before generating anything when a request is invalid
  // (see check_request), so a caller that must not lose a whole batch to one request checks each
  // request first.
  virtual std::vector<GenerateResult> generate(const std::vector<GenerateRequest>& requests,
                                               const TokenCallback& on_token = nullptr,
                                               const FinishCallback& on_finish = nullptr) = 0;
  // Throws what generate() would throw for this request alone: canopy::Error for a malformed
  // request (parameters out of range, empty prompt, token ids outside the vocabulary),
  // CapacityError for one the engine cannot hold (prompt not shorter than the context, more KV
  // memory than the cache has).
  virtual void check_request(const GenerateRequest& request) const = 0;
  virtual EngineStats stats() const = 0;
};

}  // namespace canopy
