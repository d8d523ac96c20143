// Building OpenAI response bodies (openai_response.h).
#include "api/openai_response.h"

namespace canopy::cli {
namespace {

using Json = nlohmann::ordered_json;

Json completion_logprobs(const ChoiceOutput& c) {
  Json tokens = Json::array(), values = Json::array(), offsets = Json::array();
  for (const TokenLogprob& t : c.logprobs) {
    tokens.push_back(t.token);
    values.push_back(t.logprob);
    offsets.push_back(t.text_offset);
  }
  return Json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(values)},
              {"top_logprobs", nullptr},
              {"text_offset", std::move(offsets)}};
}

Json chat_logprobs(const ChoiceOutput& c) {
  Json content = Json::array();
  for (const TokenLogprob& t : c.logprobs) {
    Json bytes = Json::array();
    for (const char b : t.token) bytes.push_back(static_cast<unsigned char>(b));
    content.push_back(Json{{"token", t.token}, {"logprob", t.logprob}, {"bytes", std::move(bytes)}, {"top_logprobs", Json::array()}});
  }
  return Json{{"content", std::move(content)}, {"refusal", nullptr}};
}

}  // namespace

Json response_body(const ResponseOutput& r) {
  const bool chat = r.endpoint == Endpoint::ChatCompletions;
  Json choices = Json::array();
  for (size_t i = 0; i < r.choices.size(); ++i) {
    const ChoiceOutput& c = r.choices[i];
    Json choice = Json::object();
    choice["index"] = i;
    if (chat) {
      choice["message"] = Json{{"role", "assistant"}, {"content", c.text}};
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = !r.logprobs ? Json(nullptr) : chat ? chat_logprobs(c) : completion_logprobs(c);
    choice["finish_reason"] = c.stopped ? "stop" : "length";
    choices.push_back(std::move(choice));
  }
  return Json{{"id", r.id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", r.created},
              {"model", r.model},
              {"choices", std::move(choices)},
              {"usage",
               {{"prompt_tokens", r.prompt_tokens},
                {"completion_tokens", r.completion_tokens},
                {"total_tokens", r.prompt_tokens + r.completion_tokens}}}};
}

}  // namespace canopy::cli
