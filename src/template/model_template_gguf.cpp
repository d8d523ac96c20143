#include "template/model_template_gguf.h"

#include "core/error.h"
#include "io/gguf.h"

namespace canopy {

std::optional<ChatTemplate> gguf_chat_template(const std::string& path) {
  const auto gguf = GgufFile::open(path);
  const std::optional<std::string> source = gguf->find_string("tokenizer.chat_template");
  if (!source) return std::nullopt;
  std::optional<ChatTemplate> tmpl;
  try {
    tmpl = ChatTemplate::from_string(*source);
  } catch (const Error& e) {
    fail("{} (tokenizer.chat_template): {}", path, e.what());
  }
  if (!gguf->has("tokenizer.ggml.tokens")) return tmpl;
  const std::vector<std::string> tokens = gguf->get_string_array("tokenizer.ggml.tokens");
  const std::pair<const char*, const char*> ids[] = {{"tokenizer.ggml.bos_token_id", "bos_token"},
                                                     {"tokenizer.ggml.eos_token_id", "eos_token"},
                                                     {"tokenizer.ggml.unknown_token_id", "unk_token"},
                                                     {"tokenizer.ggml.padding_token_id", "pad_token"},
                                                     {"tokenizer.ggml.seperator_token_id", "sep_token"}};
  for (const auto& [key, name] : ids) {
    const std::optional<int64_t> id = gguf->find_int(key);
    if (!id) continue;
    CANOPY_CHECK(*id >= 0 && static_cast<uint64_t>(*id) < tokens.size(),
                 "{}: {} = {} is outside the vocabulary of {} tokens", path, key, *id, tokens.size());
    tmpl->set_special_token(name, tokens[static_cast<size_t>(*id)]);
  }
  return tmpl;
}

}  // namespace canopy
