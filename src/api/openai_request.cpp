// Parsing an OpenAI completions / chat completions request body (see openai_request.h).
#include "api/openai_request.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string_view>

namespace canopy::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr int64_t kMaxTokensLimit = int64_t{1} << 20;
constexpr int64_t kMaxN = 65536;
constexpr int64_t kMaxTopK = int64_t{1} << 24;
constexpr size_t kMaxStopStrings = 16;
constexpr size_t kMaxStopBytes = 4096;

[[noreturn]] void invalid(const std::string& message) { throw RequestError("invalid_request", message); }
[[noreturn]] void unsupported(const std::string& message) { throw RequestError("unsupported_parameter", message); }

// A value as the message shows it: JSON text, cut short when long.
std::string shown(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// The value of `key`, or nullptr when it is absent or null (OpenAI treats null as "not given").
const Json* field(const Json& body, const char* key) {
  const auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

int64_t integer_in(const Json& v, const std::string& name, int64_t lo, int64_t hi) {
  // nlohmann stores non-negative integers as unsigned: compare those as unsigned (no overflow).
  const bool in_range =
      v.is_number_integer() && (v.is_number_unsigned()
                                    ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
                                          (lo <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(lo))
                                    : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi);
  if (!in_range) invalid(fmt::format("'{}' must be an integer in [{}, {}], got {}", name, lo, hi, shown(v)));
  return v.get<int64_t>();
}

double number_in(const Json& v, const std::string& name, double lo, double hi, bool lo_open = false) {
  if (!v.is_number()) invalid(fmt::format("'{}' must be a number, got {}", name, shown(v)));
  const double x = v.get<double>();
  const bool above = lo_open ? x > lo : x >= lo;
  if (!std::isfinite(x) || !above || x > hi)
    invalid(fmt::format("'{}' must be in {}{}, {}], got {}", name, lo_open ? "(" : "[", lo, hi, shown(v)));
  return x;
}

bool boolean(const Json& v, const std::string& name) {
  if (!v.is_boolean()) invalid(fmt::format("'{}' must be true or false, got {}", name, shown(v)));
  return v.get<bool>();
}

uint64_t seed_of(const Json& v) {
  if (!v.is_number_integer()) invalid(fmt::format("'seed' must be an integer, got {}", shown(v)));
  return v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
}

// A token id list: every element an integer in [0, 2^31).
std::vector<int32_t> token_ids(const Json& list, const std::string& name) {
  std::vector<int32_t> ids;
  ids.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i)
    ids.push_back(static_cast<int32_t>(
        integer_in(list[i], fmt::format("{}[{}]", name, i), 0, std::numeric_limits<int32_t>::max())));
  return ids;
}

bool is_id_list(const Json& v) {
  return v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const Json& e) { return e.is_number(); });
}

void read_prompt(const Json& body, OpenAiRequest& out) {
  const Json* p = field(body, "prompt");
  if (p == nullptr) invalid("'prompt' is required for /v1/completions");
  const Json* one = p;
  if (p->is_array() && !is_id_list(*p)) {
    if (p->empty()) invalid("'prompt' is an empty list");
    if (p->size() > 1)
      unsupported(fmt::format("'prompt' holds {} prompts; run-batch takes one prompt per request (give each its own line)",
                              p->size()));
    one = &(*p)[0];
  }
  if (one->is_string()) {
    out.prompt_text = one->get<std::string>();
  } else if (is_id_list(*one)) {
    out.prompt_ids = token_ids(*one, "prompt");
  } else if (one->is_array() && one->empty()) {
    invalid("'prompt' is an empty list of token ids");
  } else {
    invalid(fmt::format("'prompt' must be a string or a list of token ids, got {}", shown(*one)));
  }
}

// The text of a message's content: a string, null, or text parts joined with "\n".
Json content_of(const Json& content, const std::string& name) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array())
    invalid(fmt::format("'{}' must be a string, null or a list of content parts, got {}", name, shown(content)));
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string part_name = fmt::format("{}[{}]", name, i);
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      invalid(fmt::format("'{}' must be an object with a string \"type\"", part_name));
    const auto type = part["type"].get<std::string>();
    if (type != "text")
      unsupported(fmt::format("'{}': content parts of type \"{}\" are not supported (text only)", part_name, type));
    if (!part.contains("text") || !part["text"].is_string())
      invalid(fmt::format("'{}.text' must be a string", part_name));
    if (i > 0) text += '\n';
    text += part["text"].get<std::string>();
  }
  return text;
}

void read_messages(const Json& body, OpenAiRequest& out) {
  const Json* m = field(body, "messages");
  if (m == nullptr) invalid("'messages' is required for /v1/chat/completions");
  if (!m->is_array() || m->empty()) invalid(fmt::format("'messages' must be a non-empty list, got {}", shown(*m)));
  out.messages = Json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string name = fmt::format("messages[{}]", i);
    if (!msg.is_object()) invalid(fmt::format("'{}' must be an object, got {}", name, shown(msg)));
    if (!msg.contains("role") || !msg["role"].is_string() || msg["role"].get_ref<const std::string&>().empty())
      invalid(fmt::format("'{}.role' must be a non-empty string", name));
    Json copy = msg;
    if (msg.contains("content")) copy["content"] = content_of(msg["content"], name + ".content");
    out.messages.push_back(std::move(copy));
  }
}

std::vector<std::string> read_stop(const Json& v) {
  std::vector<std::string> stops;
  if (v.is_string()) {
    stops.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > kMaxStopStrings)
      invalid(fmt::format("'stop' holds {} strings, at most {} are allowed", v.size(), kMaxStopStrings));
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].is_string()) invalid(fmt::format("'stop[{}]' must be a string, got {}", i, shown(v[i])));
      stops.push_back(v[i].get<std::string>());
    }
  } else {
    invalid(fmt::format("'stop' must be a string or a list of strings, got {}", shown(v)));
  }
  for (const std::string& s : stops) {
    if (s.empty()) invalid("'stop' strings must not be empty");
    if (s.size() > kMaxStopBytes)
      invalid(fmt::format("a 'stop' string has {} bytes, at most {} are allowed", s.size(), kMaxStopBytes));
  }
  return stops;
}

// Fields that would change the result in ways canopy does not implement: accepted only at their
// neutral value.
void refuse_unsupported(const Json& body, const OpenAiRequest& out) {
  const auto neutral_number = [&](const char* key, double neutral) {
    if (const Json* v = field(body, key); v != nullptr && !(v->is_number() && v->get<double>() == neutral))
      unsupported(fmt::format("'{}' is not supported (only {} is accepted)", key, neutral));
  };
  neutral_number("presence_penalty", 0.0);
  neutral_number("frequency_penalty", 0.0);
  neutral_number("repetition_penalty", 1.0);
  const auto neutral_false = [&](const char* key, const char* why) {
    if (const Json* v = field(body, key); v != nullptr && !(v->is_boolean() && !v->get<bool>()))
      unsupported(fmt::format("'{}' is not supported: {}", key, why));
  };
  neutral_false("stream", "a batch writes whole responses");
  neutral_false("echo", "the prompt is not repeated in the output");
  if (const Json* v = field(body, "suffix"); v != nullptr && !(v->is_string() && v->get_ref<const std::string&>().empty()))
    unsupported("'suffix' (insertion) is not supported");
  if (const Json* v = field(body, "best_of")) {
    const int64_t best_of = integer_in(*v, "best_of", 1, kMaxN);
    if (best_of != out.params.n) unsupported("'best_of' other than n is not supported");
  }
  if (const Json* v = field(body, "logit_bias"); v != nullptr && !(v->is_object() && v->empty()))
    unsupported("'logit_bias' is not supported");
  for (const char* key : {"tools", "functions"})
    if (const Json* v = field(body, key); v != nullptr && !(v->is_array() && v->empty()))
      unsupported(fmt::format("'{}' (tool calling) is not supported", key));
  for (const char* key : {"tool_choice", "function_call"})
    if (const Json* v = field(body, key); v != nullptr && !(v->is_string() && (*v == "none" || *v == "auto")))
      unsupported(fmt::format("'{}' other than \"none\" or \"auto\" is not supported", key));
  if (const Json* v = field(body, "response_format");
      v != nullptr && !(v->is_object() && v->contains("type") && (*v)["type"] == "text"))
    unsupported("'response_format' other than {\"type\": \"text\"} is not supported");
}

constexpr std::array kCommonFields = {"model",      "max_tokens",       "max_completion_tokens", "temperature",
                                      "top_p",      "top_k",            "n",                     "seed",
                                      "stop",       "ignore_eos",       "logprobs",              "stream",
                                      "stream_options", "presence_penalty", "frequency_penalty", "repetition_penalty",
                                      "logit_bias", "user",             "metadata",              "store",
                                      "service_tier", "best_of"};
constexpr std::array kCompletionFields = {"prompt", "echo", "suffix"};
constexpr std::array kChatFields = {"messages",       "top_logprobs",        "tools",         "tool_choice",
                                    "functions",      "function_call",       "parallel_tool_calls",
                                    "response_format", "chat_template_kwargs"};

bool known_field(std::string_view key, Endpoint endpoint) {
  const auto in = [&](const auto& list) { return std::find(list.begin(), list.end(), key) != list.end(); };
  return in(kCommonFields) || (endpoint == Endpoint::Completions ? in(kCompletionFields) : in(kChatFields));
}

}  // namespace

const char* endpoint_url(Endpoint endpoint) {
  return endpoint == Endpoint::Completions ? "/v1/completions" : "/v1/chat/completions";
}

OpenAiRequest parse_openai_request(const Json& body, Endpoint endpoint, const RequestDefaults& defaults) {
  if (!body.is_object()) invalid(fmt::format("the request body must be a JSON object, got {}", shown(body)));
  for (const auto& item : body.items())
    if (!known_field(item.key(), endpoint))
      invalid(fmt::format("unknown field '{}' for {}", item.key(), endpoint_url(endpoint)));

  OpenAiRequest out;
  out.endpoint = endpoint;
  if (endpoint == Endpoint::Completions) {
    read_prompt(body, out);
  } else {
    read_messages(body, out);
  }
  if (const Json* v = field(body, "model"); v != nullptr && !v->is_string())
    invalid(fmt::format("'model' must be a string, got {}", shown(*v)));

  SamplingParams& p = out.params;
  p.max_tokens = endpoint == Endpoint::Completions ? defaults.completion_max_tokens : defaults.chat_max_tokens;
  if (const Json* v = field(body, "max_tokens"))
    p.max_tokens = static_cast<int32_t>(integer_in(*v, "max_tokens", 1, kMaxTokensLimit));
  if (const Json* v = field(body, "max_completion_tokens"))
    p.max_tokens = static_cast<int32_t>(integer_in(*v, "max_completion_tokens", 1, kMaxTokensLimit));
  if (const Json* v = field(body, "temperature")) p.temperature = static_cast<float>(number_in(*v, "temperature", 0, 100));
  if (const Json* v = field(body, "top_p")) p.top_p = static_cast<float>(number_in(*v, "top_p", 0, 1, true));
  if (const Json* v = field(body, "top_k")) p.top_k = static_cast<int32_t>(std::max<int64_t>(0, integer_in(*v, "top_k", -1, kMaxTopK)));
  if (const Json* v = field(body, "n")) p.n = static_cast<int32_t>(integer_in(*v, "n", 1, kMaxN));
  p.seed = defaults.seed;
  if (const Json* v = field(body, "seed")) p.seed = seed_of(*v);
  if (const Json* v = field(body, "ignore_eos")) p.ignore_eos = boolean(*v, "ignore_eos");
  if (const Json* v = field(body, "stop")) out.stop = read_stop(*v);

  if (const Json* v = field(body, "logprobs")) {
    if (endpoint == Endpoint::Completions) {
      if (integer_in(*v, "logprobs", 0, 20) > 0)
        unsupported("'logprobs' > 0 (top alternatives) is not supported; 0 returns the chosen tokens' log-probabilities");
      out.logprobs = true;
    } else {
      out.logprobs = boolean(*v, "logprobs");
    }
  }
  if (const Json* v = field(body, "top_logprobs"); v != nullptr && integer_in(*v, "top_logprobs", 0, 20) > 0)
    unsupported("'top_logprobs' > 0 (top alternatives) is not supported; 'logprobs': true returns the chosen tokens'");
  if (const Json* v = field(body, "chat_template_kwargs")) {
    if (!v->is_object()) invalid(fmt::format("'chat_template_kwargs' must be an object, got {}", shown(*v)));
    out.chat_template_kwargs = *v;
  }
  refuse_unsupported(body, out);
  return out;
}

}  // namespace canopy::cli
