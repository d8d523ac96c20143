// Where a model keeps its chat template: Hugging Face folders and GGUF files.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace canopy {

// What a model ships for chat formatting, before the template is parsed.
struct ModelChatFiles {
  std::optional<std::string> source;  // the template text, when the model has one
  std::string origin;                 // where it came from, for error messages
  std::map<std::string, std::string> special_tokens;  // bos_token, eos_token, ...
};

// A Hugging Face folder: chat_template.jinja, else tokenizer_config.json's "chat_template", else
// chat_template.json; special tokens from special_tokens_map.json overridden by
// tokenizer_config.json.
ModelChatFiles read_folder_chat_files(const std::string& dir);
// A GGUF file: tokenizer.chat_template; special tokens named by the vocabulary's ids
// (tokenizer.ggml.bos_token_id -> tokenizer.ggml.tokens[id]), each id range-checked.
ModelChatFiles read_gguf_chat_files(const std::string& path);
// Either, by the kind of path; throws canopy::Error for a path that is neither.
ModelChatFiles read_model_chat_files(const std::string& model_path);

}  // namespace canopy
