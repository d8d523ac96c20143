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

// The others through Tokenizer::load, which finds the files in the folder.
const Tokenizer& qwen3_tokenizer() {
  static const Tokenizer t = Tokenizer::load(dir("qwen3"));
  return t;
}

const Tokenizer& mistral_tokenizer() {
  static const Tokenizer t = Tokenizer::load(dir("mistral"));
  return t;
}

const Tokenizer& gpt2_tokenizer() {
  static const Tokenizer t = Tokenizer::load(dir("gpt2"));
  return t;
}

}  // namespace canopy::testing
