// GGUF tokenizer.ggml.* metadata -> TokenizerSpec.
//
// Keys read: tokenizer.ggml.model ("llama": SentencePiece-style BPE with scores and byte
// fallback; "gpt2": byte-level BPE with merges), .pre (the pre-tokenizer family of "gpt2"
// vocabularies, see pre_tokenizer_families.h), .tokens, .scores, .token_type, .merges,
// .bos/.eos/.eot/.eom/.unknown_token_id, .add_bos_token, .add_eos_token, .add_space_prefix.
#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/pre_tokenizer_families.h"
#include "tokenizer/tokenizer_impl.h"

namespace canopy {
namespace {

// GGUF token types (llama.cpp's llama_token_type).
enum TokenType : int64_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

class Meta {
 public:
  Meta(const GgufMetadata& m, const std::string& source) : m_(m), source_(source) {}

  const GgufValue* find(std::string_view key) const {
    const auto it = m_.find(key);
    return it == m_.end() ? nullptr : &it->second;
  }
  std::optional<std::string> string(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    const auto* s = std::get_if<std::string>(&v->v);
    CANOPY_CHECK(s != nullptr, "{}: {} is not a string", source_, key);
    return *s;
  }
  std::optional<int64_t> integer(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    if (const auto* u = std::get_if<uint64_t>(&v->v)) {
      CANOPY_CHECK(*u <= static_cast<uint64_t>(INT64_MAX), "{}: {} is out of range", source_, key);
      return static_cast<int64_t>(*u);
    }
    if (const auto* i = std::get_if<int64_t>(&v->v)) return *i;
    fail("{}: {} is not an integer", source_, key);
  }
  std::optional<bool> boolean(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    const auto* b = std::get_if<bool>(&v->v);
    CANOPY_CHECK(b != nullptr, "{}: {} is not a boolean", source_, key);
    return *b;
  }
  const GgufArray* array(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return nullptr;
    const auto* a = std::get_if<GgufArray>(&v->v);
    CANOPY_CHECK(a != nullptr, "{}: {} is not an array", source_, key);
    return a;
  }
  std::vector<std::string> strings(std::string_view key) const {
    std::vector<std::string> out;
    if (const GgufArray* a = array(key)) {
      out.reserve(a->size());
      for (const GgufValue& v : *a) {
        const auto* s = std::get_if<std::string>(&v.v);
        CANOPY_CHECK(s != nullptr, "{}: {} holds a value that is not a string", source_, key);
        out.push_back(*s);
      }
    }
    return out;
  }
  std::vector<float> floats(std::string_view key) const {
    std::vector<float> out;
    if (const GgufArray* a = array(key)) {
      out.reserve(a->size());
      for (const GgufValue& v : *a) {
        if (const auto* d = std::get_if<double>(&v.v))
          out.push_back(static_cast<float>(*d));
        else if (const auto* i = std::get_if<int64_t>(&v.v))
          out.push_back(static_cast<float>(*i));
        else if (const auto* u = std::get_if<uint64_t>(&v.v))
          out.push_back(static_cast<float>(*u));
        else
          fail("{}: {} holds a value that is not a number", source_, key);
      }
    }
    return out;
  }
  std::vector<int64_t> integers(std::string_view key) const {
    std::vector<int64_t> out;
    if (const GgufArray* a = array(key)) {
      out.reserve(a->size());
      for (const GgufValue& v : *a) {
        if (const auto* i = std::get_if<int64_t>(&v.v))
          out.push_back(*i);
        else if (const auto* u = std::get_if<uint64_t>(&v.v); u != nullptr && *u <= static_cast<uint64_t>(INT64_MAX))
          out.push_back(static_cast<int64_t>(*u));
        else
          fail("{}: {} holds a value that is not an integer", source_, key);
      }
    }
    return out;
  }

 private:
  const GgufMetadata& m_;
  const std::string& source_;
};

}  // namespace

Tokenizer Tokenizer::from_gguf_metadata(const GgufMetadata& metadata, const std::string& source) {
  const Meta meta(metadata, source);
  const auto model = meta.string("tokenizer.ggml.model");
  CANOPY_CHECK(model.has_value(), "{}: no tokenizer in this GGUF file (tokenizer.ggml.model is missing)", source);
  CANOPY_CHECK(*model == "llama" || *model == "gpt2",
               "{}: unsupported tokenizer model '{}' (tokenizer.ggml.model); canopy supports 'llama' "
               "(SentencePiece-style BPE) and 'gpt2' (byte-level BPE)",
               source, *model);
  const bool spm = *model == "llama";

  TokenizerSpec spec;
  spec.source = source;
  spec.tokens = meta.strings("tokenizer.ggml.tokens");
  const auto n = static_cast<int64_t>(spec.tokens.size());
  CANOPY_CHECK(n > 0, "{}: tokenizer.ggml.tokens is missing or empty", source);
  CANOPY_CHECK(n < kMaxVocabSize, "{}: tokenizer.ggml.tokens has {} entries, more than canopy accepts", source, n);

  std::vector<int64_t> types = meta.integers("tokenizer.ggml.token_type");
  CANOPY_CHECK(types.empty() || static_cast<int64_t>(types.size()) == n,
               "{}: tokenizer.ggml.token_type has {} entries for {} tokens", source, types.size(), n);
  if (types.empty()) types.assign(static_cast<size_t>(n), kNormal);

  auto token_id = [&](const char* key) -> std::optional<int32_t> {
    const auto id = meta.integer(key);
    if (!id) return std::nullopt;
    // Some converters write -1 (as an unsigned 0xFFFFFFFF) for "none".
    if (*id == -1 || *id == 0xFFFFFFFFll) return std::nullopt;
    CANOPY_CHECK(*id >= 0 && *id < n, "{}: {} = {} is outside the vocabulary of {} tokens", source, key, *id, n);
    return static_cast<int32_t>(*id);
  };

  // Control and unknown tokens are special (found in text only when special tokens are parsed);
  // user-defined tokens are always found.
  for (int64_t id = 0; id < n; ++id) {
    const int64_t type = types[static_cast<size_t>(id)];
    if (type != kControl && type != kUserDefined && type != kUnknown) continue;
    AddedToken t;
    t.id = static_cast<int32_t>(id);
    t.content = spec.tokens[static_cast<size_t>(id)];
    t.special = type != kUserDefined;
    spec.added.push_back(std::move(t));
  }

  spec.bos = token_id("tokenizer.ggml.bos_token_id");
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = token_id(key); id && std::find(spec.eos.begin(), spec.eos.end(), *id) == spec.eos.end())
      spec.eos.push_back(*id);

  bool add_bos_default = false;
  if (spm) {
    spec.kind = "GGUF, SentencePiece-style BPE";
    spec.scores = meta.floats("tokenizer.ggml.scores");
    CANOPY_CHECK(static_cast<int64_t>(spec.scores.size()) == n, "{}: tokenizer.ggml.scores has {} entries for {} tokens",
                 source, spec.scores.size(), n);
    // Byte tokens are reached through byte fallback, never by merging their text.
    spec.mergeable.resize(static_cast<size_t>(n));
    for (int64_t id = 0; id < n; ++id) spec.mergeable[static_cast<size_t>(id)] = types[static_cast<size_t>(id)] != kByte;
    spec.bpe.byte_fallback = true;
    spec.bpe.unk_id = token_id("tokenizer.ggml.unknown_token_id").value_or(-1);
    if (spec.bpe.unk_id < 0)
      for (int64_t id = 0; id < n; ++id)
        if (types[static_cast<size_t>(id)] == kUnknown) {
          spec.bpe.unk_id = static_cast<int32_t>(id);
          break;
        }
    // SentencePiece writes spaces as "▁" and starts every text (after a special token, too)
    // with one unless the model says not to.
    const bool add_space_prefix = meta.boolean("tokenizer.ggml.add_space_prefix").value_or(true);
    if (add_space_prefix) spec.normalizer.add({Normalizer::Kind::Prepend, "\xE2\x96\x81", {}, {}});
    spec.normalizer.add({Normalizer::Kind::Replace, " ", "\xE2\x96\x81", {}});
    spec.decode_byte_fallback = true;
    spec.decode_replacements.emplace_back("\xE2\x96\x81", " ");
    spec.strip_leading_spaces = add_space_prefix ? 1 : 0;
    add_bos_default = true;
  } else {
    spec.kind = "GGUF, byte-level BPE";
    spec.byte_level = true;
    const std::vector<std::string> merges = meta.strings("tokenizer.ggml.merges");
    CANOPY_CHECK(!merges.empty(), "{}: tokenizer.ggml.merges is missing or empty", source);
    spec.merges.reserve(merges.size());
    for (const std::string& m : merges) {
      const size_t space = m.find(' ', 1);
      CANOPY_CHECK(space != std::string::npos, "{}: merge '{}' is not two tokens separated by a space", source, m);
      spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    const std::string pre = meta.string("tokenizer.ggml.pre").value_or("default");
    auto family = find_pre_tokenizer_family(pre);
    CANOPY_CHECK(family.has_value(), "{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre); canopy knows: {}", source,
                 pre, known_pre_tokenizer_families());
    for (Splitter& s : family->splitters) spec.pre_tokenizer.add(std::move(s));
    spec.bpe.ignore_merges = family->ignore_merges;
    spec.kind += ", pre-tokenizer " + pre;
    add_bos_default = family->ignore_merges;  // the Llama 3 family starts every text with BOS
  }

  if (meta.boolean("tokenizer.ggml.add_bos_token").value_or(add_bos_default) && spec.bos) spec.prefix = {*spec.bos};
  if (meta.boolean("tokenizer.ggml.add_eos_token").value_or(false) && !spec.eos.empty()) spec.suffix = {spec.eos[0]};
  return build_tokenizer(std::move(spec));
}

}  // namespace canopy
