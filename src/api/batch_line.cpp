// Parsing one run-batch input line: the OpenAI Batch envelope or a bare request (batch_line.h).
#include "api/batch_line.h"

#include <algorithm>
#include <array>

namespace canopy::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::array kEnvelopeKeys = {"custom_id", "method", "url", "body"};

// nlohmann's messages start with "[json.exception.parse_error.101] ": the reader needs the rest.
std::string parse_error_text(const std::string& what) {
  const size_t end = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && end != std::string::npos ? what.substr(end + 2) : what;
}

Endpoint endpoint_of(const Json& url) {
  if (url == "/v1/completions") return Endpoint::Completions;
  if (url == "/v1/chat/completions") return Endpoint::ChatCompletions;
  const std::string shown = url.dump(-1, ' ', false, Json::error_handler_t::replace);
  throw RequestError("invalid_url", fmt::format("'url' must be \"/v1/completions\" or \"/v1/chat/completions\", got {}",
                                                shown.size() > 80 ? shown.substr(0, 77) + "..." : shown));
}

void parse_envelope(const Json& line, const RequestDefaults& defaults, ParsedLine& out) {
  for (const auto& item : line.items())
    if (std::find(kEnvelopeKeys.begin(), kEnvelopeKeys.end(), item.key()) == kEnvelopeKeys.end())
      throw RequestError("invalid_request",
                         fmt::format("unknown field '{}' in a batch line (custom_id, method, url and body; request "
                                     "fields belong in body)",
                                     item.key()));
  if (!out.custom_id_given) throw RequestError("invalid_request", "'custom_id' is required in a batch line");
  if (!line.contains("method") || line["method"] != "POST")
    throw RequestError("invalid_request", "'method' must be \"POST\"");
  if (!line.contains("url")) throw RequestError("invalid_url", "'url' is required in a batch line");
  const Endpoint endpoint = endpoint_of(line["url"]);
  if (!line.contains("body") || !line["body"].is_object())
    throw RequestError("invalid_request", "'body' must be a JSON object holding the request");
  out.request = parse_openai_request(line["body"], endpoint, defaults);
}

void parse_bare(Json line, const RequestDefaults& defaults, ParsedLine& out) {
  const bool has_prompt = line.contains("prompt");
  const bool has_messages = line.contains("messages");
  if (has_prompt == has_messages)
    throw RequestError("invalid_request",
                       has_prompt ? "a line holds both 'prompt' and 'messages': give one"
                                  : "a line needs 'prompt' or 'messages' (or the batch fields custom_id, method, url "
                                    "and body)");
  line.erase("custom_id");
  out.request = parse_openai_request(line, has_prompt ? Endpoint::Completions : Endpoint::ChatCompletions, defaults);
}

}  // namespace

bool is_blank_line(std::string_view text) { return text.find_first_not_of(" \t\r") == std::string_view::npos; }

int json_nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

ParsedLine parse_batch_line(std::string_view text, int64_t line_number, const RequestDefaults& defaults) {
  ParsedLine out;
  out.line_number = line_number;
  try {
    if (json_nesting_depth(text, kMaxJsonDepth) > kMaxJsonDepth)
      throw RequestError("invalid_json", fmt::format("the line nests lists and objects deeper than {} levels", kMaxJsonDepth));
    Json line;
    try {
      line = Json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      throw RequestError("invalid_json", fmt::format("the line is not valid JSON: {}", parse_error_text(e.what())));
    }
    if (!line.is_object()) throw RequestError("invalid_request", "a line must be a JSON object");
    const bool batch_form = line.contains("method") || line.contains("url") || line.contains("body");
    if (const auto id = line.find("custom_id"); id != line.end()) {
      if (!id->is_string() || id->get_ref<const std::string&>().empty())
        throw RequestError("invalid_request", "'custom_id' must be a non-empty string");
      out.custom_id = *id;
      out.custom_id_given = true;
    } else if (!batch_form) {
      out.custom_id = fmt::format("line-{}", line_number);
    }
    if (batch_form) {
      parse_envelope(line, defaults, out);
    } else {
      parse_bare(std::move(line), defaults, out);
    }
  } catch (const RequestError& e) {
    out.request.reset();
    out.error = LineError{e.code(), e.what()};
  }
  return out;
}

}  // namespace canopy::cli
