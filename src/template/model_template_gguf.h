// The chat template stored in a GGUF file's metadata (tokenizer.chat_template), with the special
// tokens named by the vocabulary's ids (tokenizer.ggml.bos_token_id -> tokenizer.ggml.tokens[id]).
#pragma once

#include <optional>
#include <string>

#include "template/chat_template.h"

namespace canopy {

// std::nullopt when the file has no chat template; throws canopy::Error for a malformed file.
std::optional<ChatTemplate> gguf_chat_template(const std::string& path);

}  // namespace canopy
