// One line of a `canopy run-batch` input file, parsed and checked (no model needed).
//
// Two forms are accepted:
//   OpenAI Batch: {"custom_id": "...", "method": "POST", "url": "/v1/completions" or
//                  "/v1/chat/completions", "body": {...}}; custom_id is a required non-empty string
//                 (its uniqueness over the file is checked by the caller) and no other key is allowed.
//   Bare:         {"prompt": ...} or {"messages": [...]}, with any request field at the top level
//                 and an optional custom_id (default "line-<k>", k the 1-based line number).
// A line is a batch line when it has any of custom_id's companions method, url or body.
//
// A line that cannot run becomes a ParsedLine with an error (code, message); nothing is thrown for
// bad input. Lines nested deeper than kMaxJsonDepth are refused before they are parsed, so a
// hostile line cannot exhaust the stack.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "api/openai_request.h"

namespace canopy::cli {

inline constexpr int kMaxJsonDepth = 64;

struct LineError {
  std::string code;     // "invalid_json", "invalid_request", "invalid_url", "unsupported_parameter", ...
  std::string message;  // names the field and the cause
};

struct ParsedLine {
  int64_t line_number = 0;                 // 1-based, in the input file
  nlohmann::ordered_json custom_id;        // a string, or null when the line has no usable one
  bool custom_id_given = false;            // written in the line (then it must be unique)
  std::optional<OpenAiRequest> request;    // set when the line parsed
  std::optional<LineError> error;          // set when it did not
};

// Whether `text` holds nothing but spaces, tabs and carriage returns (such lines are skipped).
bool is_blank_line(std::string_view text);

// The deepest nesting of arrays and objects in JSON text (strings skipped), counted without
// parsing; stops counting past `limit`.
int json_nesting_depth(std::string_view text, int limit);

// Parses one input line. `defaults.seed` is the seed of a request that gives none.
ParsedLine parse_batch_line(std::string_view text, int64_t line_number, const RequestDefaults& defaults);

}  // namespace canopy::cli
