// Tokenizer::load: finds the tokenizer of a model path (folder, tokenizer.json or .gguf).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;

bool is_gguf(const fs::path& path) {
  if (path.extension() == ".gguf") return true;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::string_view(magic, 4) == "GGUF";
  std::fclose(f);
  return ok;
}

// generation_config.json may name more end-of-sequence tokens (e.g. Llama 3's <|eot_id|>).
void add_generation_eos(const fs::path& folder, TokenizerSpec& spec) {
  const fs::path path = folder / "generation_config.json";
  if (!fs::is_regular_file(path)) return;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text_file(path.string()));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  if (!config.is_object() || !config.contains("eos_token_id")) return;
  auto take = [&](const nlohmann::json& x) {
    CANOPY_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < kMaxVocabSize,
                 "{}: eos_token_id {} is not a token id", path.string(), x.dump());
    const auto id = x.get<int32_t>();
    if (std::find(spec.eos.begin(), spec.eos.end(), id) == spec.eos.end()) spec.eos.push_back(id);
  };
  const auto& v = config["eos_token_id"];
  if (v.is_array())
    for (const auto& x : v) take(x);
  else if (!v.is_null())
    take(v);
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& file) { return from_gguf_metadata(file.metadata(), file.description()); }

Tokenizer Tokenizer::load(const std::string& path_text) {
  const fs::path path(path_text);
  std::error_code ec;
  CANOPY_CHECK(fs::exists(path, ec), "model path {} does not exist", path_text);
  if (fs::is_directory(path, ec)) {
    if (fs::is_regular_file(path / "tokenizer.json")) {
      const fs::path json = path / "tokenizer.json", config = path / "tokenizer_config.json";
      TokenizerSpec spec = parse_hf_json(read_text_file(json.string()),
                                         fs::is_regular_file(config) ? read_text_file(config.string()) : "",
                                         json.string());
      add_generation_eos(path, spec);
      return build_tokenizer(std::move(spec));
    }
    if (fs::is_regular_file(path / "tokenizer.model")) {
      TokenizerSpec spec = parse_sentencepiece_model(read_text_file((path / "tokenizer.model").string()),
                                                     (path / "tokenizer.model").string());
      add_generation_eos(path, spec);
      return build_tokenizer(std::move(spec));
    }
    if (fs::is_regular_file(path / "encoder.json") && fs::is_regular_file(path / "vocab.bpe"))
      return from_gpt2_files((path / "encoder.json").string(), (path / "vocab.bpe").string());
    fail("{}: no tokenizer found (canopy reads tokenizer.json, tokenizer.model, or encoder.json + vocab.bpe)",
         path_text);
  }
  if (is_gguf(path)) {
    const auto file = GgufFile::open(path_text);
    return from_gguf(*file);
  }
  if (path.extension() == ".model") return from_sentencepiece_model(path_text);
  if (path.extension() == ".json") {
    const fs::path config = path.parent_path() / "tokenizer_config.json";
    return from_hf_json(path_text, fs::is_regular_file(config) ? config.string() : "");
  }
  fail("{}: not a model folder, tokenizer.json, tokenizer.model or GGUF file", path_text);
}

}  // namespace canopy
