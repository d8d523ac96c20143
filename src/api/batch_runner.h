// `canopy run-batch` as a function of streams: read a JSONL batch, run every valid request in one
// engine->generate() call, write one result line per input line.
//
// Output: for each non-blank input line, in input order, one JSON line (OpenAI Batch output):
//   success: {"id": "batch_req_<k>", "custom_id", "response": {"status_code": 200,
//             "request_id": "req_<k>", "body": <completion or chat.completion>}, "error": null}
//   failure: {"id": "batch_req_<k>", "custom_id", "response": null,
//             "error": {"code", "message"}}
// k is the 1-based input line number; custom_id is null when the line has none that can be
// read (invalid JSON, a batch line without one). Blank lines are skipped and produce nothing.
//
// Error codes: invalid_json, invalid_request (types, ranges, unknown fields, empty prompt, token
// ids outside the vocabulary), invalid_url, unsupported_parameter, duplicate_custom_id (a later
// line reusing a custom_id; the first keeps it), context_length_exceeded (prompt not shorter than
// the model's context), kv_cache_exceeded (the request's samples cannot fit the KV cache at all),
// template_error (the chat template refused the messages), engine_error (the batch's generation
// failed: every request of it gets the message).
//
// Text: completion prompts are tokenized with the tokenizer's own BOS/EOS handling; chat
// messages are rendered with the chat template (generation prompt added) and tokenized without
// adding any. Output text leaves special tokens out. A request without "seed" uses
// options.seed + k, so results do not depend on which other lines the file holds.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>

namespace canopy::cli {

struct RunBatchOptions {
  std::string model;          // Hugging Face folder or .gguf file
  std::string tokenizer;      // empty: the model's
  std::string chat_template;  // a .jinja file; empty: the tokenizer folder's (if given), else the model's
  std::string device = "cpu";
  double gpu_memory_utilization = 0.9;  // GPU: share of the device memory canopy may hold
  bool no_cuda_graphs = false;          // GPU: every step op by op
  bool random_weights = false;          // model is a config.json, weights random (needs tokenizer)
  bool prefix_sharing = true;
  int threads = 0;            // CPU threads (0: every core)
  int64_t kv_cache_mib = 0;   // 0: the device's default
  int32_t max_step_tokens = 0;     // 0: the engine's default
  int32_t max_step_sequences = 0;  // 0: the engine's default
  int32_t chat_max_tokens = 256;   // max_tokens of a chat request that sets none
  uint64_t seed = 0;
  bool quiet = false;              // no progress lines
  double progress_interval_seconds = 1.0;
};

struct BatchSummary {
  int64_t requests = 0;   // non-blank input lines
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t samples = 0;    // sequences generated (n of each request that ran)
  int64_t prompt_tokens = 0;            // logical: every sample's prompt (EngineStats)
  int64_t unique_prompt_tokens = 0;     // the prefix forest's optimum (0 without sharing)
  int64_t prefill_tokens_computed = 0;  // prompt tokens the engine actually ran
  int64_t generated_tokens = 0;
  double seconds = 0.0;   // generation (the engine call)
  double total_seconds = 0.0;  // everything, model loading included
  bool prefix_sharing = true;
  std::string device;
  std::string model;

  double tokens_per_second() const { return seconds > 0 ? static_cast<double>(generated_tokens) / seconds : 0.0; }
  nlohmann::ordered_json to_json() const;
};

// Runs the batch read from `input`, writing result lines to `output` and progress to `progress`.
// Throws canopy::Error only for what fails the whole run (model, tokenizer, chat template file,
// device); every problem of a line becomes that line's error result.
BatchSummary run_batch(const RunBatchOptions& options, std::istream& input, std::ostream& output,
                       std::ostream& progress);

}  // namespace canopy::cli
