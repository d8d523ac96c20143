// Chat templates: turning a conversation into the prompt text a model was trained on.
//
// A chat template is a Jinja program shipped with the model (tokenizer_config.json's
// "chat_template", a chat_template.jinja file, or GGUF metadata tokenizer.chat_template). canopy
// runs it with its own sandboxed interpreter of the Jinja subset that templates use, and renders
// exactly what Hugging Face transformers renders (jinja2 with trim_blocks, lstrip_blocks and the
// loopcontrols extension, HF's tojson, raise_exception and strftime_now), checked byte for byte
// against jinja2 in the tests.
//
// The template sees: messages, add_generation_prompt, tools and documents (None when absent), the
// model's special tokens (bos_token, eos_token, ...) and any extra variables the caller passes
// (enable_thinking, date_string, ...). Nothing else is reachable, and every render runs under a
// step, size and recursion budget, so a hostile template cannot hang or exhaust the process.
//
//   auto tmpl = ChatTemplate::for_model(model_path);         // std::nullopt when the model has none
//   std::string prompt = tmpl->render(messages, {});         // messages: [{"role":..., "content":...}]
//
// The rendered prompt already holds the model's special tokens (BOS included, where the template
// writes it): tokenize it without adding special tokens, as Hugging Face does.
//
// Where canopy knowingly differs from jinja2 (none of it used by the templates in the tests):
// integers are 64-bit (overflow is an error); upper()/lower() use one-to-one Unicode case mappings
// ('ß'.upper() stays 'ß'); str.format and % formatting support the common specs; generators
// (x|map(...), range(...)) are lists and print as lists; a macro defined in a loop keeps seeing that
// iteration's variables after the loop; there are no Markup strings (|e returns escaped text); an
// unknown filter fails when it is evaluated, not when the template is parsed; a namespace cannot
// hold a namespace. Not supported: call blocks, recursive loops, include/import/extends, the
// groupby/slice/truncate/wordwrap/urlize/xmlattr/striptags/pprint/random filters, cycler, lipsum.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "template/template_error.h"

namespace canopy {

struct ChatTemplateLimits {
  uint64_t max_steps = 10'000'000;      // evaluation steps; a template that loops without end stops here
  size_t max_output_bytes = 16u << 20;  // the prompt, and any string the template builds
  int max_call_depth = 100;             // macros calling macros (recursion)
};

struct ChatRenderOptions {
  // Append the text that opens the assistant's reply (Hugging Face's add_generation_prompt).
  bool add_generation_prompt = true;
  // Hugging Face's continue_final_message: the prompt ends right after the text of the final
  // message (e.g. an assistant reply to be continued), without what the template writes after it.
  // Implies add_generation_prompt = false.
  bool continue_final_message = false;
  // Tool schemas and documents, passed as `tools` and `documents`; null passes None, as Hugging Face
  // does when there are none.
  nlohmann::ordered_json tools;
  nlohmann::ordered_json documents;
  // Extra variables (a JSON object): enable_thinking, date_string, custom keyword arguments. They
  // take precedence over everything else, as keyword arguments of apply_chat_template do.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  // Special token strings (bos_token, eos_token, ...); these override the model's.
  std::map<std::string, std::string> special_tokens;
  // The clock strftime_now reads (local time when absent); fix it for reproducible output.
  std::optional<std::tm> now;
  ChatTemplateLimits limits;
};

class ChatTemplate {
 public:
  // Parses the template; throws canopy::Error "chat template syntax error: line N: ..." when it is
  // malformed.
  static ChatTemplate from_string(const std::string& source);
  // Reads and parses a template file (.jinja).
  static ChatTemplate from_file(const std::string& path);
  // The template that comes with a model, with the model's special tokens:
  //   - a Hugging Face folder: chat_template.jinja, else tokenizer_config.json's "chat_template"
  //     (a string, or a list of {"name", "template"} from which "default" is taken), else
  //     chat_template.json; special tokens from tokenizer_config.json / special_tokens_map.json;
  //   - a .gguf file: tokenizer.chat_template, special tokens from the vocabulary's ids.
  // std::nullopt when the model has no chat template; throws canopy::Error for unreadable or
  // malformed files.
  static std::optional<ChatTemplate> for_model(const std::string& model_path);

  // Renders a conversation: a JSON array of message objects ({"role": ..., "content": ...}, plus
  // whatever else the template reads: tool_calls, reasoning_content, ...). As in Hugging Face,
  // keys whose value is null are dropped from each message, and the reasoning of a message
  // (reasoning_content, thinking or reasoning) is made visible under both reasoning_content and
  // thinking. Object key order is kept (it shows in tojson output).
  //
  // Throws canopy::ChatTemplateRaised (a canopy::Error) with the template's own message when the
  // template calls raise_exception (e.g. roles not alternating), and canopy::Error
  // "chat template error: line N: ..." for any other failure, budgets included.
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& options = {}) const;
  // Same, for callers holding nlohmann::json (whose objects are sorted by key).
  std::string render(const nlohmann::json& messages, const ChatRenderOptions& options = {}) const;

  const std::string& source() const;
  // Special tokens that came with the model (bos_token, eos_token, unk_token, pad_token, ...).
  const std::map<std::string, std::string>& special_tokens() const { return special_tokens_; }
  void set_special_token(const std::string& name, const std::string& value) { special_tokens_[name] = value; }

 private:
  struct Compiled;
  explicit ChatTemplate(std::shared_ptr<const Compiled> compiled) : compiled_(std::move(compiled)) {}

  std::shared_ptr<const Compiled> compiled_;  // immutable: a ChatTemplate can render from many threads
  std::map<std::string, std::string> special_tokens_;
};

// The special tokens of a model (as for_model finds them), whether or not it has a template: for
// callers that bring their own template. Throws canopy::Error for unreadable or malformed files.
std::map<std::string, std::string> model_special_tokens(const std::string& model_path);

// A conversation read from JSON: the messages, and the tools offered to the model if any.
struct Conversation {
  nlohmann::ordered_json messages;  // a non-empty array of message objects
  nlohmann::ordered_json tools;     // null when absent
};

// Reads a conversation from JSON text: a list of messages, or an object {"messages": [...],
// "tools": [...]} (an OpenAI chat request body works; its other keys are ignored). Each message
// must be an object with a string "role"; "content", when present, must be a string, null or a
// list of content parts. Throws canopy::Error naming the offending message.
Conversation parse_conversation(const std::string& json_text);

}  // namespace canopy
