#include "template/model_chat_files.h"

#include "core/error.h"
#include "io/gguf.h"

namespace canopy {

ModelChatFiles read_gguf_chat_files(const std::string& path) {
  const auto gguf = GgufFile::open(path);
  ModelChatFiles files;
  files.origin = path + " (tokenizer.chat_template)";
  files.source = gguf->find_string("tokenizer.chat_template");
  if (!gguf->has("tokenizer.ggml.tokens")) return files;
  const std::vector<std::string> tokens = gguf->get_string_array("tokenizer.ggml.tokens");
  // llama.cpp spells the separator key "seperator".
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
    files.special_tokens[name] = tokens[static_cast<size_t>(*id)];
  }
  return files;
}

}  // namespace canopy
