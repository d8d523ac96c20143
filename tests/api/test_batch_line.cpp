// One run-batch input line: the OpenAI Batch envelope and bare lines, each problem becoming that
// line's error (never an exception), and deep nesting refused before parsing.
#include <gtest/gtest.h>

#include "api/batch_line.h"

namespace canopy::cli {
namespace {

ParsedLine parse(const std::string& text, int64_t line_number = 3) { return parse_batch_line(text, line_number, {}); }

// "code: message" of a line's error, or "ok".
std::string error_of(const std::string& text) {
  const ParsedLine p = parse(text);
  EXPECT_NE(p.request.has_value(), p.error.has_value());
  return p.error ? p.error->code + ": " + p.error->message : "ok";
}

TEST(BatchLine, OpenAiBatchLines) {
  const ParsedLine p = parse(
      R"({"custom_id": "q-1", "method": "POST", "url": "/v1/chat/completions",
          "body": {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}})");
  ASSERT_TRUE(p.request) << p.error->message;
  EXPECT_EQ(p.custom_id, "q-1");
  EXPECT_TRUE(p.custom_id_given);
  EXPECT_EQ(p.line_number, 3);
  EXPECT_EQ(p.request->endpoint, Endpoint::ChatCompletions);
  EXPECT_EQ(p.request->params.max_tokens, 5);
  EXPECT_EQ(parse(R"({"custom_id": "c", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})")
                .request->endpoint,
            Endpoint::Completions);

  EXPECT_EQ(error_of(R"({"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})"),
            "invalid_request: 'custom_id' is required in a batch line");
  EXPECT_EQ(error_of(R"({"custom_id": 7, "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})"),
            "invalid_request: 'custom_id' must be a non-empty string");
  EXPECT_EQ(error_of(R"({"custom_id": "", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}})"),
            "invalid_request: 'custom_id' must be a non-empty string");
  EXPECT_EQ(error_of(R"({"custom_id": "c", "method": "GET", "url": "/v1/completions", "body": {"prompt": "x"}})"),
            "invalid_request: 'method' must be \"POST\"");
  EXPECT_EQ(error_of(R"({"custom_id": "c", "method": "POST", "body": {"prompt": "x"}})"),
            "invalid_url: 'url' is required in a batch line");
  EXPECT_EQ(error_of(R"({"custom_id": "c", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}})"),
            "invalid_url: 'url' must be \"/v1/completions\" or \"/v1/chat/completions\", got \"/v1/embeddings\"");
  EXPECT_EQ(error_of(R"({"custom_id": "c", "method": "POST", "url": "/v1/completions"})"),
            "invalid_request: 'body' must be a JSON object holding the request");
  EXPECT_EQ(error_of(R"({"custom_id": "c", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"},
                         "max_tokens": 3})"),
            "invalid_request: unknown field 'max_tokens' in a batch line (custom_id, method, url and body; request "
            "fields belong in body)");
  // A field error inside the body keeps the line's custom_id.
  const ParsedLine bad = parse(R"({"custom_id": "keep", "method": "POST", "url": "/v1/completions",
                                   "body": {"prompt": "x", "n": -1}})");
  EXPECT_EQ(bad.custom_id, "keep");
  ASSERT_TRUE(bad.error);
  EXPECT_EQ(bad.error->message, "'n' must be an integer in [1, 65536], got -1");
  // A batch line that lacks its custom_id has none in its result.
  EXPECT_TRUE(parse(R"({"url": "/v1/completions"})").custom_id.is_null());
}

TEST(BatchLine, BareLines) {
  const ParsedLine p = parse(R"({"prompt": "Once", "max_tokens": 4, "temperature": 0})", 12);
  ASSERT_TRUE(p.request);
  EXPECT_EQ(p.custom_id, "line-12");
  EXPECT_FALSE(p.custom_id_given);
  EXPECT_EQ(p.request->endpoint, Endpoint::Completions);
  EXPECT_EQ(p.request->prompt_text, "Once");
  EXPECT_EQ(p.request->params.max_tokens, 4);

  const ParsedLine c = parse(R"({"custom_id": "mine", "messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_TRUE(c.request);
  EXPECT_EQ(c.custom_id, "mine");
  EXPECT_TRUE(c.custom_id_given);
  EXPECT_EQ(c.request->endpoint, Endpoint::ChatCompletions);

  EXPECT_EQ(error_of(R"({"max_tokens": 4})"),
            "invalid_request: a line needs 'prompt' or 'messages' (or the batch fields custom_id, method, url and body)");
  EXPECT_EQ(error_of(R"({"prompt": "x", "messages": []})"),
            "invalid_request: a line holds both 'prompt' and 'messages': give one");
  EXPECT_EQ(error_of(R"({"prompt": "x", "temperature": "warm"})"),
            "invalid_request: 'temperature' must be a number, got \"warm\"");
  const ParsedLine bad = parse(R"({"prompt": "x", "top_p": 7})", 5);
  EXPECT_EQ(bad.custom_id, "line-5");
}

TEST(BatchLine, MalformedJson) {
  EXPECT_EQ(error_of("not json").rfind("invalid_json: the line is not valid JSON: ", 0), 0u);
  EXPECT_EQ(error_of("{\"prompt\": \"x\"").rfind("invalid_json: ", 0), 0u);
  EXPECT_EQ(error_of("{\"prompt\": \"\xff\"}").rfind("invalid_json: ", 0), 0u);  // not UTF-8
  EXPECT_EQ(error_of("[1, 2]"), "invalid_request: a line must be a JSON object");
  EXPECT_EQ(error_of("\"prompt\""), "invalid_request: a line must be a JSON object");
  EXPECT_TRUE(parse("not json").custom_id.is_null());
  // Deep nesting is refused without parsing (nlohmann's recursion would otherwise be at risk).
  const std::string deep = "{\"prompt\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(error_of(deep), "invalid_json: the line nests lists and objects deeper than 64 levels");
  const std::string ok_depth = "{\"prompt\": \"x\", \"metadata\": " + std::string(60, '[') + std::string(60, ']') + "}";
  EXPECT_EQ(error_of(ok_depth), "ok");
}

TEST(BatchLine, NestingDepthSkipsStrings) {
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": 2}]})", 64), 3);
  EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[{{{{"})", 64), 1);
  EXPECT_EQ(json_nesting_depth(R"({"a": "\"[[[["})", 64), 1);  // an escaped quote does not end the string
  EXPECT_EQ(json_nesting_depth(R"("\\" [[)", 64), 2);           // an escaped backslash does
  EXPECT_EQ(json_nesting_depth(std::string(1000, '['), 10), 11);  // stops counting past the limit
  EXPECT_EQ(json_nesting_depth("", 64), 0);
}

TEST(BatchLine, BlankLines) {
  EXPECT_TRUE(is_blank_line(""));
  EXPECT_TRUE(is_blank_line(" \t\r"));
  EXPECT_FALSE(is_blank_line(" {}"));
}

}  // namespace
}  // namespace canopy::cli
