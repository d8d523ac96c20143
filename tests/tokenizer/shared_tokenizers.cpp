#include "shared_tokenizers.h"

#include "testing/testing.h"

namespace canopy::testing {
namespace {

std::string dir(const std::string& name) { return shared_dir() + "/data/tokenizers/" + name + "/"; }

}  // namespace

const Tokenizer& llama3_tokenizer() {
  static const Tokenizer t = Tokenizer::from_hf_json(dir("llama3") + "tokenizer.json", dir("llama3") + "tokenizer_config.json");
  return t;
}

const Tokenizer& qwen3_tokenizer() {
  static const Tokenizer t = Tokenizer::from_hf_json(dir("qwen3") + "tokenizer.json", dir("qwen3") + "tokenizer_config.json");
  return t;
}

const Tokenizer& mistral_tokenizer() {
  static const Tokenizer t =
      Tokenizer::from_hf_json(dir("mistral") + "tokenizer.json", dir("mistral") + "tokenizer_config.json");
  return t;
}

const Tokenizer& gpt2_tokenizer() {
  static const Tokenizer t = Tokenizer::from_gpt2_files(dir("gpt2") + "encoder.json", dir("gpt2") + "vocab.bpe");
  return t;
}

}  // namespace canopy::testing
