// The body of an OpenAI /v1/completions or /v1/chat/completions request, parsed and checked.
//
// Parsing needs no model: it checks every field's type and range and turns the body into an
// OpenAiRequest (the prompt still as text, token ids or messages). Tokenizing, rendering the chat
// template and checking the prompt against the model come later (batch_prepare.h).
//
// Fields (OpenAI's, with canopy's ranges; null means "not given" everywhere):
//   prompt        completions: a string, a list of token ids, or a list holding one of those
//                 (several prompts in one request are refused: give each its own line)
//   messages      chat: a non-empty list of {role, content, ...}; content is a string, null or a
//                 list of {"type": "text", "text": ...} parts (joined with "\n"); other message
//                 keys (name, tool_calls, ...) pass to the chat template as they are
//   max_tokens, max_completion_tokens   1 .. 1048576 (the latter wins); the default is
//                 RequestDefaults; clipped to what the context leaves after the prompt
//   temperature   0 .. 100 (0: greedy; default 1)     top_p   (0, 1] (default 1)
//   top_k         extension: -1 or 0 (off) or 1 .. 16777216
//   n             1 .. 65536                          seed    any 64-bit integer
//   stop          a string or a list of up to 16 non-empty strings of at most 4096 bytes
//   ignore_eos    extension: bool
//   logprobs      completions: 0 returns the chosen tokens' log-probabilities (more, i.e. top
//                 alternatives, is refused); chat: true, with top_logprobs absent or 0
//   model         ignored (the loaded model answers; its name is in the response)
//   chat_template_kwargs   extension, chat: an object of extra template variables
//   user, metadata, store, service_tier, stream_options, parallel_tool_calls: ignored
// Fields that ask for what canopy does not do (stream, echo, suffix, best_of > n, penalties,
// logit_bias, tools, non-text response_format, image parts...) are refused with the code
// "unsupported_parameter" unless they hold their neutral value; unknown fields are refused with
// "invalid_request", so a misspelt field never goes unnoticed.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "canopy/sampling_params.h"
#include "core/error.h"

namespace canopy::cli {

enum class Endpoint { Completions, ChatCompletions };

// "/v1/completions" or "/v1/chat/completions".
const char* endpoint_url(Endpoint endpoint);

// A request that cannot run: an OpenAI-style error code ("invalid_request",
// "unsupported_parameter", ...) and a message naming the field and the cause.
class RequestError : public Error {
 public:
  RequestError(std::string code, const std::string& message) : Error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

struct RequestDefaults {
  int32_t completion_max_tokens = 16;  // OpenAI's default for /v1/completions
  int32_t chat_max_tokens = 256;       // OpenAI has none: canopy bounds it (KV is reserved for it)
  uint64_t seed = 0;                   // for a request without "seed"
};

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::optional<std::string> prompt_text;  // completions: the prompt as text ...
  std::vector<int32_t> prompt_ids;         // ... or as token ids
  nlohmann::ordered_json messages;         // chat: [{role, content: string or null, ...}, ...]
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  SamplingParams params;
  std::vector<std::string> stop;  // stop strings
  bool logprobs = false;          // return the chosen tokens' log-probabilities
};

// Parses a request body; throws RequestError naming the offending field.
OpenAiRequest parse_openai_request(const nlohmann::ordered_json& body, Endpoint endpoint,
                                   const RequestDefaults& defaults);

}  // namespace canopy::cli
