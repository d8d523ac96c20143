// Parsing OpenAI request bodies: every field's type and range is checked with a message naming
// the field, prompts come as text or token ids, chat content parts are flattened, unsupported and
// unknown fields are refused, and defaults apply.
#include <gtest/gtest.h>

#include "api/openai_request.h"

namespace canopy::cli {
namespace {

using Json = nlohmann::ordered_json;

OpenAiRequest completion(const std::string& body_text, RequestDefaults defaults = {}) {
  return parse_openai_request(Json::parse(body_text), Endpoint::Completions, defaults);
}
OpenAiRequest chat(const std::string& body_text) {
  return parse_openai_request(Json::parse(body_text), Endpoint::ChatCompletions, {});
}

// "code: message" of the error a body gives, or "ok".
std::string error_of(const std::string& body_text, Endpoint endpoint = Endpoint::Completions) {
  try {
    parse_openai_request(Json::parse(body_text), endpoint, {});
  } catch (const RequestError& e) {
    return e.code() + ": " + e.what();
  }
  return "ok";
}

TEST(OpenAiRequest, PromptAsTextOrTokenIds) {
  EXPECT_EQ(completion(R"({"prompt": "Hello"})").prompt_text, "Hello");
  EXPECT_EQ(completion(R"({"prompt": ""})").prompt_text, "");  // tokenization may still add BOS
  EXPECT_EQ(completion(R"({"prompt": ["Hi"]})").prompt_text, "Hi");
  const OpenAiRequest ids = completion(R"({"prompt": [1, 2, 2147483647]})");
  EXPECT_FALSE(ids.prompt_text);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int32_t>{1, 2, 2147483647}));
  EXPECT_EQ(completion(R"({"prompt": [[5, 6]]})").prompt_ids, (std::vector<int32_t>{5, 6}));

  EXPECT_EQ(error_of(R"({})"), "invalid_request: 'prompt' is required for /v1/completions");
  EXPECT_EQ(error_of(R"({"prompt": null})"), "invalid_request: 'prompt' is required for /v1/completions");
  EXPECT_EQ(error_of(R"({"prompt": 5})"), "invalid_request: 'prompt' must be a string or a list of token ids, got 5");
  EXPECT_EQ(error_of(R"({"prompt": []})"), "invalid_request: 'prompt' is an empty list");
  EXPECT_EQ(error_of(R"({"prompt": [[]]})"), "invalid_request: 'prompt' is an empty list of token ids");
  EXPECT_EQ(error_of(R"({"prompt": [1, -1]})"), "invalid_request: 'prompt[1]' must be an integer in [0, 2147483647], got -1");
  EXPECT_EQ(error_of(R"({"prompt": [1, 2.5]})"), "invalid_request: 'prompt[1]' must be an integer in [0, 2147483647], got 2.5");
  EXPECT_EQ(error_of(R"({"prompt": [1, 4294967296]})"),
            "invalid_request: 'prompt[1]' must be an integer in [0, 2147483647], got 4294967296");
  EXPECT_EQ(error_of(R"({"prompt": ["a", "b"]})"),
            "unsupported_parameter: 'prompt' holds 2 prompts; run-batch takes one prompt per request (give each its "
            "own line)");
  EXPECT_EQ(error_of(R"({"prompt": [{"a": 1}]})"),
            "invalid_request: 'prompt' must be a string or a list of token ids, got {\"a\":1}");
}

TEST(OpenAiRequest, SamplingFieldsAndDefaults) {
  RequestDefaults defaults;
  defaults.seed = 99;
  const OpenAiRequest d = completion(R"({"prompt": "x"})", defaults);
  EXPECT_EQ(d.params.max_tokens, 16);
  EXPECT_EQ(d.params.n, 1);
  EXPECT_EQ(d.params.temperature, 1.0f);
  EXPECT_EQ(d.params.seed, 99u);
  EXPECT_TRUE(d.stop.empty());
  EXPECT_FALSE(d.logprobs);
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "x"}]})").params.max_tokens, 256);

  const OpenAiRequest r = completion(
      R"({"prompt": "x", "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 40, "n": 3, "seed": -1,
          "stop": "\n", "ignore_eos": true, "logprobs": 0, "model": "anything", "user": "u", "best_of": 3,
          "presence_penalty": 0, "stream": false, "echo": false, "logit_bias": {}, "suffix": null})");
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_EQ(r.params.temperature, 0.0f);
  EXPECT_EQ(r.params.top_p, 0.5f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_EQ(r.params.n, 3);
  EXPECT_EQ(r.params.seed, ~uint64_t{0});
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(completion(R"({"prompt": "x", "top_k": -1})").params.top_k, 0);
  EXPECT_EQ(completion(R"({"prompt": "x", "seed": 18446744073709551615})").params.seed, ~uint64_t{0});
  EXPECT_EQ(completion(R"({"prompt": "x", "stop": ["a", "bc"]})").stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(completion(R"({"prompt": "x", "max_tokens": 5, "max_completion_tokens": 9})").params.max_tokens, 9);
  EXPECT_EQ(completion(R"({"prompt": "x", "temperature": null})").params.temperature, 1.0f);
}

TEST(OpenAiRequest, RangesAndTypesNameTheField) {
  const auto body = [](const std::string& field) { return R"({"prompt": "x", )" + field + "}"; };
  EXPECT_EQ(error_of(body(R"("max_tokens": 0)")), "invalid_request: 'max_tokens' must be an integer in [1, 1048576], got 0");
  EXPECT_EQ(error_of(body(R"("max_tokens": 16.0)")),
            "invalid_request: 'max_tokens' must be an integer in [1, 1048576], got 16.0");
  EXPECT_EQ(error_of(body(R"("max_tokens": "16")")),
            "invalid_request: 'max_tokens' must be an integer in [1, 1048576], got \"16\"");
  EXPECT_EQ(error_of(body(R"("max_completion_tokens": 2000000)")),
            "invalid_request: 'max_completion_tokens' must be an integer in [1, 1048576], got 2000000");
  EXPECT_EQ(error_of(body(R"("temperature": -0.5)")), "invalid_request: 'temperature' must be in [0, 100], got -0.5");
  EXPECT_EQ(error_of(body(R"("temperature": true)")), "invalid_request: 'temperature' must be a number, got true");
  EXPECT_EQ(error_of(body(R"("top_p": 0)")), "invalid_request: 'top_p' must be in (0, 1], got 0");
  EXPECT_EQ(error_of(body(R"("top_p": 1.5)")), "invalid_request: 'top_p' must be in (0, 1], got 1.5");
  EXPECT_EQ(error_of(body(R"("top_k": -2)")), "invalid_request: 'top_k' must be an integer in [-1, 16777216], got -2");
  EXPECT_EQ(error_of(body(R"("n": 0)")), "invalid_request: 'n' must be an integer in [1, 65536], got 0");
  EXPECT_EQ(error_of(body(R"("n": 65537)")), "invalid_request: 'n' must be an integer in [1, 65536], got 65537");
  EXPECT_EQ(error_of(body(R"("seed": 1.5)")), "invalid_request: 'seed' must be an integer, got 1.5");
  EXPECT_EQ(error_of(body(R"("ignore_eos": 1)")), "invalid_request: 'ignore_eos' must be true or false, got 1");
  EXPECT_EQ(error_of(body(R"("stop": 3)")), "invalid_request: 'stop' must be a string or a list of strings, got 3");
  EXPECT_EQ(error_of(body(R"("stop": ["a", 3])")), "invalid_request: 'stop[1]' must be a string, got 3");
  EXPECT_EQ(error_of(body(R"("stop": "")")), "invalid_request: 'stop' strings must not be empty");
  EXPECT_EQ(error_of(body(R"("stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])")),
            "invalid_request: 'stop' holds 17 strings, at most 16 are allowed");
  EXPECT_EQ(error_of(body("\"stop\": \"" + std::string(4097, 'a') + "\"")),
            "invalid_request: a 'stop' string has 4097 bytes, at most 4096 are allowed");
  EXPECT_EQ(error_of(body(R"("model": 5)")), "invalid_request: 'model' must be a string, got 5");
  EXPECT_EQ(error_of(body(R"("max_token": 5)")), "invalid_request: unknown field 'max_token' for /v1/completions");
  EXPECT_EQ(error_of(body(R"("messages": [])")), "invalid_request: unknown field 'messages' for /v1/completions");
  EXPECT_EQ(error_of("[1]"), "invalid_request: the request body must be a JSON object, got [1]");
  // Long values are shown cut short.
  const std::string long_error = error_of(body("\"temperature\": \"" + std::string(500, 'h') + "\""));
  EXPECT_LT(long_error.size(), 120u);
  EXPECT_NE(long_error.find("..."), std::string::npos);
}

TEST(OpenAiRequest, UnsupportedFieldsAreRefusedUnlessNeutral) {
  const auto body = [](const std::string& field) { return R"({"prompt": "x", )" + field + "}"; };
  EXPECT_EQ(error_of(body(R"("stream": true)")), "unsupported_parameter: 'stream' is not supported: a batch writes whole responses");
  EXPECT_EQ(error_of(body(R"("echo": true)")),
            "unsupported_parameter: 'echo' is not supported: the prompt is not repeated in the output");
  EXPECT_EQ(error_of(body(R"("presence_penalty": 0.5)")),
            "unsupported_parameter: 'presence_penalty' is not supported (only 0 is accepted)");
  EXPECT_EQ(error_of(body(R"("frequency_penalty": "x")")),
            "unsupported_parameter: 'frequency_penalty' is not supported (only 0 is accepted)");
  EXPECT_EQ(error_of(body(R"("logit_bias": {"5": 1})")), "unsupported_parameter: 'logit_bias' is not supported");
  EXPECT_EQ(error_of(body(R"("suffix": "end")")), "unsupported_parameter: 'suffix' (insertion) is not supported");
  EXPECT_EQ(error_of(body(R"("best_of": 2)")), "unsupported_parameter: 'best_of' other than n is not supported");
  EXPECT_EQ(error_of(body(R"("logprobs": 2)")),
            "unsupported_parameter: 'logprobs' > 0 (top alternatives) is not supported; 0 returns the chosen tokens' "
            "log-probabilities");
  EXPECT_EQ(error_of(body(R"("logprobs": true)")), "invalid_request: 'logprobs' must be an integer in [0, 20], got true");
  EXPECT_EQ(error_of(body(R"("repetition_penalty": 1)")), "ok");
}

TEST(OpenAiRequest, ChatMessages) {
  const OpenAiRequest r = chat(R"({"messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}], "name": "ann"},
      {"role": "assistant", "content": null}],
      "logprobs": true, "top_logprobs": 0, "chat_template_kwargs": {"enable_thinking": false},
      "tools": [], "tool_choice": "none", "response_format": {"type": "text"}})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0], Json::parse(R"({"role": "system", "content": "Be brief."})"));
  EXPECT_EQ(r.messages[1], Json::parse(R"({"role": "user", "content": "Hello\nthere", "name": "ann"})"));
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.chat_template_kwargs, Json::parse(R"({"enable_thinking": false})"));
  EXPECT_EQ(r.endpoint, Endpoint::ChatCompletions);

  const auto err = [](const std::string& body_text) { return error_of(body_text, Endpoint::ChatCompletions); };
  EXPECT_EQ(err(R"({})"), "invalid_request: 'messages' is required for /v1/chat/completions");
  EXPECT_EQ(err(R"({"messages": []})"), "invalid_request: 'messages' must be a non-empty list, got []");
  EXPECT_EQ(err(R"({"messages": ["hi"]})"), "invalid_request: 'messages[0]' must be an object, got \"hi\"");
  EXPECT_EQ(err(R"({"messages": [{"content": "hi"}]})"), "invalid_request: 'messages[0].role' must be a non-empty string");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": 5}]})"),
            "invalid_request: 'messages[0].content' must be a string, null or a list of content parts, got 5");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})"),
            "unsupported_parameter: 'messages[0].content[0]': content parts of type \"image_url\" are not supported "
            "(text only)");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})"),
            "invalid_request: 'messages[0].content[0].text' must be a string");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "prompt": "x"})"),
            "invalid_request: unknown field 'prompt' for /v1/chat/completions");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 0})"),
            "invalid_request: 'logprobs' must be true or false, got 0");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})"),
            "unsupported_parameter: 'top_logprobs' > 0 (top alternatives) is not supported; 'logprobs': true returns "
            "the chosen tokens'");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})"),
            "unsupported_parameter: 'tools' (tool calling) is not supported");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})"),
            "unsupported_parameter: 'response_format' other than {\"type\": \"text\"} is not supported");
  EXPECT_EQ(err(R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []})"),
            "invalid_request: 'chat_template_kwargs' must be an object, got []");
}

}  // namespace
}  // namespace canopy::cli
