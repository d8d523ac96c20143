#include "template/chat_template.h"

#include <fstream>
#include <utility>
#include <vector>
#include <sstream>

#include "core/error.h"
#include "template/interpreter.h"
#include "template/parser.h"
#include "template/py_text.h"
#include "template/value.h"

namespace canopy {

struct ChatTemplate::Compiled {
  std::string source;
  jinja::Body body;
};

ChatTemplate ChatTemplate::from_string(const std::string& source) {
  auto compiled = std::make_shared<Compiled>();
  compiled->source = source;
  compiled->body = jinja::parse_template(source);
  return ChatTemplate(std::move(compiled));
}

ChatTemplate ChatTemplate::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CANOPY_CHECK(in.good(), "cannot open chat template file '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  CANOPY_CHECK(!in.bad(), "cannot read chat template file '{}'", path);
  try {
    return from_string(text.str());
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

const std::string& ChatTemplate::source() const { return compiled_->source; }

namespace {

const char* json_type(const nlohmann::ordered_json& j) { return j.type_name(); }

// JSON input may nest arbitrarily deep, and copying or printing a JSON value recurses: check the
// depth first, without recursion, so that every later step works on bounded input.
template <typename Json>
void check_json_depth(const Json& root, const char* what) {
  std::vector<std::pair<const Json*, int>> stack{{&root, 0}};
  while (!stack.empty()) {
    const auto [j, depth] = stack.back();
    stack.pop_back();
    CANOPY_CHECK(depth <= jinja::kMaxValueDepth, "{} nests more than {} levels deep", what, jinja::kMaxValueDepth);
    if (j->is_structured())
      for (const auto& child : *j) stack.emplace_back(&child, depth + 1);
  }
}

// Hugging Face's preparation of each message: keys whose value is null are dropped (templates
// handle a missing key better than None), and the reasoning, under whichever of its names it
// came, is made visible as both `thinking` and `reasoning_content`.
nlohmann::ordered_json normalize_message(const nlohmann::ordered_json& message, size_t index) {
  CANOPY_CHECK(message.is_object(), "chat message {} must be a JSON object, got {}", index, json_type(message));
  nlohmann::ordered_json kept = nlohmann::ordered_json::object();
  for (const auto& [key, value] : message.items())
    if (!value.is_null()) kept[key] = value;
  const nlohmann::ordered_json* reasoning = nullptr;
  for (const char* field : {"reasoning_content", "thinking", "reasoning"}) {
    if (kept.contains(field)) {
      reasoning = &kept[field];
      break;
    }
  }
  if (reasoning == nullptr) return kept;
  nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
  aliased["thinking"] = *reasoning;
  for (const auto& [key, value] : kept.items()) aliased[key] = value;
  aliased["reasoning_content"] = *reasoning;
  return aliased;
}

// continue_final_message, as Hugging Face does it: the final message's text gets a marker, and the
// rendered prompt is cut at the marker.
constexpr std::string_view kContinueTag = "CONTINUE_FINAL_MESSAGE_TAG ";

// Appends the marker to the final message's content (or its last text part); returns that text.
std::string tag_final_message(nlohmann::ordered_json& messages, const std::string& source) {
  nlohmann::ordered_json& last = messages.back();
  CANOPY_CHECK(last.contains("content"), "continue_final_message: the final message has no \"content\" to continue");
  CANOPY_CHECK(source.find("content") != std::string::npos,
               "continue_final_message: this chat template does not read the \"content\" of messages");
  nlohmann::ordered_json& content = last["content"];
  if (content.is_string()) {
    std::string text = content.get<std::string>();
    content = text + std::string(kContinueTag);
    return text;
  }
  if (content.is_array()) {
    for (auto it = content.rbegin(); it != content.rend(); ++it) {
      if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
        std::string text = (*it)["text"].get<std::string>();
        (*it)["text"] = text + std::string(kContinueTag);
        return text;
      }
    }
    fail("continue_final_message: the final message has no text part to continue");
  }
  fail("continue_final_message: the final message's content must be a string or a list of parts, got {}",
       json_type(content));
}

void cut_at_tag(std::string& prompt, const std::string& final_text) {
  const std::string stripped = jinja::py::strip(final_text, std::nullopt, true, true);
  const std::string_view tag = kContinueTag.substr(0, kContinueTag.size() - 1);
  const size_t at = prompt.rfind(tag);
  CANOPY_CHECK(prompt.find(stripped) != std::string::npos && at != std::string::npos,
               "continue_final_message: the chat template drops part of the final message, so the prompt cannot "
               "end with it");
  if (prompt.compare(at, kContinueTag.size(), kContinueTag) == 0) {
    prompt.resize(at);  // the template kept the message's spacing
  } else {
    prompt = jinja::py::strip(std::string_view(prompt).substr(0, at), std::nullopt, false, true);
  }
}

}  // namespace

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options) const {
  check_json_depth(messages, "the chat messages");
  check_json_depth(options.tools, "the tools");
  check_json_depth(options.documents, "the documents");
  check_json_depth(options.variables, "the chat template variables");
  CANOPY_CHECK(messages.is_array(), "chat messages must be a JSON array of message objects, got {}", json_type(messages));
  CANOPY_CHECK(!messages.empty(), "cannot apply a chat template to an empty conversation");
  CANOPY_CHECK(options.variables.is_object() || options.variables.is_null(),
               "chat template variables must be a JSON object, got {}", json_type(options.variables));

  nlohmann::ordered_json normalized = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) normalized.push_back(normalize_message(messages[i], i));
  std::string final_text;
  if (options.continue_final_message) final_text = tag_final_message(normalized, compiled_->source);

  auto builtins = std::make_shared<jinja::Scope>(nullptr);
  jinja::add_builtins(*builtins);
  auto context = std::make_shared<jinja::Scope>(builtins);
  for (const auto& [name, token] : special_tokens_) context->set(name, jinja::Value::string(token));
  for (const auto& [name, token] : options.special_tokens) context->set(name, jinja::Value::string(token));
  context->set("messages", jinja::from_json(normalized));
  context->set("tools", jinja::from_json(options.tools));
  context->set("documents", jinja::from_json(options.documents));
  context->set("add_generation_prompt",
               jinja::Value::boolean(options.add_generation_prompt && !options.continue_final_message));
  if (options.variables.is_object()) {
    for (const auto& [name, value] : options.variables.items()) {
      CANOPY_CHECK(name != "messages" && name != "tools" && name != "documents" && name != "add_generation_prompt",
                   "chat template variable '{}' cannot be set as an extra variable; it has its own option", name);
      context->set(name, jinja::from_json(value));
    }
  }

  jinja::RenderLimits limits;
  limits.max_steps = options.limits.max_steps;
  limits.max_output_bytes = options.limits.max_output_bytes;
  limits.max_call_depth = options.limits.max_call_depth;
  jinja::Interpreter interpreter(limits, options.now);
  std::string prompt = interpreter.render(compiled_->body, context);
  if (options.continue_final_message) cut_at_tag(prompt, final_text);
  return prompt;
}

std::string ChatTemplate::render(const nlohmann::json& messages, const ChatRenderOptions& options) const {
  check_json_depth(messages, "the chat messages");
  return render(nlohmann::ordered_json::parse(messages.dump()), options);
}

Conversation parse_conversation(const std::string& json_text) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    fail("the conversation is not valid JSON: {}", e.what());
  }
  check_json_depth(j, "the conversation");
  Conversation conversation;
  if (j.is_object()) {
    CANOPY_CHECK(j.contains("messages"), "a conversation object must have a \"messages\" list");
    if (j.contains("tools")) conversation.tools = j["tools"];
    j = j["messages"];
  }
  CANOPY_CHECK(j.is_array(), "a conversation must be a JSON list of messages or an object with a \"messages\" list, got {}",
               json_type(j));
  CANOPY_CHECK(!j.empty(), "the conversation has no messages");
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    CANOPY_CHECK(m.is_object(), "message {} is not a JSON object", i);
    CANOPY_CHECK(m.contains("role") && m["role"].is_string(), "message {} has no \"role\" string", i);
    if (m.contains("content")) {
      const auto& c = m["content"];
      CANOPY_CHECK(c.is_string() || c.is_null() || c.is_array(),
                   "message {} ({}): \"content\" must be a string, a list of content parts or null, got {}", i,
                   m["role"].get<std::string>(), json_type(c));
    }
  }
  CANOPY_CHECK(conversation.tools.is_null() || conversation.tools.is_array(), "\"tools\" must be a list, got {}",
               json_type(conversation.tools));
  conversation.messages = std::move(j);
  return conversation;
}

}  // namespace canopy
