// OpenAI completion and chat.completion response bodies.
//
//   /v1/completions:       {"id", "object": "text_completion", "created", "model",
//                           "choices": [{"index", "text", "logprobs", "finish_reason"}], "usage"}
//   /v1/chat/completions:  {"id", "object": "chat.completion", "created", "model",
//                           "choices": [{"index", "message": {"role": "assistant", "content"},
//                                        "logprobs", "finish_reason"}], "usage"}
// finish_reason is "stop" (end-of-sequence token or stop string) or "length" (max_tokens or the
// context); usage counts the prompt once and the completion tokens of every choice.
//
// logprobs (when asked for), the chosen tokens only:
//   completions: {"tokens": [...], "token_logprobs": [...], "top_logprobs": null,
//                 "text_offset": [...]} (offsets in bytes from the start of the choice's text)
//   chat:        {"content": [{"token", "logprob", "bytes": [...], "top_logprobs": []}, ...],
//                 "refusal": null}
// A token that is part of a UTF-8 character shows as U+FFFD in "token"; "bytes" has its bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "api/openai_request.h"

namespace canopy::cli {

struct TokenLogprob {
  std::string token;   // the token's bytes
  float logprob = 0.0f;
  size_t text_offset = 0;  // where the token's text starts in the choice's text
};

struct ChoiceOutput {
  std::string text;
  bool stopped = false;  // finish_reason "stop", else "length"
  std::vector<TokenLogprob> logprobs;
};

struct ResponseOutput {
  Endpoint endpoint = Endpoint::Completions;
  std::string id;  // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix time, seconds
  std::string model;
  std::vector<ChoiceOutput> choices;
  bool logprobs = false;  // include logprobs in every choice
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

nlohmann::ordered_json response_body(const ResponseOutput& response);

}  // namespace canopy::cli
