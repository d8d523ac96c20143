// Hugging Face tokenizer.json (+ tokenizer_config.json) -> TokenizerSpec.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/pre_tokenizer_families.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/tokenizer_json_reader.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

using Json = nlohmann::json;

struct Context {
  std::string source;             // names the file in every message
  bool byte_level_split = false;  // a ByteLevel pre-tokenizer was seen (it must come last)
};

const Json* member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string get_string(const Context& cx, const Json& object, const char* key, const char* where) {
  const Json* v = member(object, key);
  CANOPY_CHECK(v != nullptr && v->is_string(), "{}: {} needs a string \"{}\"", cx.source, where, key);
  return v->get<std::string>();
}

bool get_bool(const Json& object, const char* key, bool fallback) {
  const Json* v = member(object, key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : fallback;
}

std::string type_of(const Context& cx, const Json& object, const char* what) {
  CANOPY_CHECK(object.is_object(), "{}: the {} is not a JSON object", cx.source, what);
  return get_string(cx, object, "type", what);
}

// A Split/Replace "pattern": {"String": s} or {"Regex": r}; returns a regex either way.
std::string pattern_regex(const Context& cx, const Json& object, const char* where) {
  const Json* p = member(object, "pattern");
  CANOPY_CHECK(p != nullptr && p->is_object(), "{}: {} has no pattern", cx.source, where);
  if (const Json* s = member(*p, "String"); s != nullptr && s->is_string()) return regex_escape(s->get<std::string>());
  if (const Json* r = member(*p, "Regex"); r != nullptr && r->is_string()) return r->get<std::string>();
  fail("{}: {} has a pattern that is neither String nor Regex", cx.source, where);
}

SplitBehavior behavior_of(const Context& cx, const std::string& name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown split behavior '{}'", cx.source, name);
}

// ---- normalizer ---------------------------------------------------------------------------------

void parse_normalizer(const Context& cx, const Json& n, TokenizerSpec& spec) {
  const std::string type = type_of(cx, n, "normalizer");
  using Kind = Normalizer::Kind;
  if (type == "Sequence") {
    const Json* list = member(n, "normalizers");
    CANOPY_CHECK(list != nullptr && list->is_array(), "{}: Sequence normalizer without a list", cx.source);
    for (const Json& item : *list) parse_normalizer(cx, item, spec);
  } else if (type == "NFC") {
    spec.normalizer.add({Kind::NFC, {}, {}, {}});
  } else if (type == "NFD") {
    spec.normalizer.add({Kind::NFD, {}, {}, {}});
  } else if (type == "NFKC") {
    spec.normalizer.add({Kind::NFKC, {}, {}, {}});
  } else if (type == "NFKD") {
    spec.normalizer.add({Kind::NFKD, {}, {}, {}});
  } else if (type == "Lowercase") {
    spec.normalizer.add({Kind::Lowercase, {}, {}, {}});
  } else if (type == "Prepend") {
    spec.normalizer.add({Kind::Prepend, get_string(cx, n, "prepend", "Prepend normalizer"), {}, {}});
  } else if (type == "Replace") {
    const std::string content = get_string(cx, n, "content", "Replace normalizer");
    const Json* p = member(n, "pattern");
    if (p != nullptr && member(*p, "String") != nullptr && (*p)["String"].is_string()) {
      spec.normalizer.add({Kind::Replace, (*p)["String"].get<std::string>(), content, {}});
    } else {
      spec.normalizer.add({Kind::ReplaceRegex, {}, content,
                           std::make_shared<Regex>(pattern_regex(cx, n, "Replace normalizer"))});
    }
  } else if (type == "Strip") {
    Normalizer::Step step{Kind::Strip, {}, {}, {}};
    step.strip_left = get_bool(n, "strip_left", true);
    step.strip_right = get_bool(n, "strip_right", true);
    spec.normalizer.add(std::move(step));
  } else if (type == "ByteLevel") {
    spec.byte_level = true;  // canopy runs BPE on raw bytes: nothing to change in the text
  } else {
    fail("{}: unsupported normalizer '{}' (canopy supports Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, "
         "Replace, Strip, ByteLevel)",
         cx.source, type);
  }
}

// ---- pre-tokenizer --------------------------------------------------------------------------------

void parse_pre_tokenizer(Context& cx, const Json& p, TokenizerSpec& spec, bool first) {
  const std::string type = type_of(cx, p, "pre_tokenizer");
  CANOPY_CHECK(!cx.byte_level_split || type == "Sequence",
               "{}: a '{}' pre-tokenizer after ByteLevel is not supported", cx.source, type);
  if (type == "Sequence") {
    const Json* list = member(p, "pretokenizers");
    CANOPY_CHECK(list != nullptr && list->is_array(), "{}: Sequence pre-tokenizer without a list", cx.source);
    bool is_first = first;
    for (const Json& item : *list) {
      parse_pre_tokenizer(cx, item, spec, is_first);
      is_first = false;
    }
  } else if (type == "Split") {
    Splitter s;
    s.kind = Splitter::Kind::Regex;
    s.regex = std::make_shared<Regex>(pattern_regex(cx, p, "Split pre-tokenizer"));
    s.behavior = behavior_of(cx, get_string(cx, p, "behavior", "Split pre-tokenizer"));
    s.invert = get_bool(p, "invert", false);
    spec.pre_tokenizer.add(std::move(s));
  } else if (type == "ByteLevel") {
    // Maps bytes to the byte-level alphabet (canopy works on the bytes directly), optionally after
    // GPT-2's split and a prefix space.
    spec.byte_level = true;
    cx.byte_level_split = true;
    if (get_bool(p, "add_prefix_space", true)) {
      CANOPY_CHECK(first, "{}: ByteLevel with add_prefix_space after another pre-tokenizer is not supported",
                   cx.source);
      PreTokenizer::Transform t;
      t.prepend = " ";
      t.prepend_unless_present = true;
      spec.pre_tokenizer.set_transform(t);
    }
    if (get_bool(p, "use_regex", true)) {
      Splitter s;
      s.regex = std::make_shared<Regex>(kGpt2SplitPattern);
      spec.pre_tokenizer.add(std::move(s));
    }
  } else if (type == "Metaspace") {
    CANOPY_CHECK(first, "{}: a Metaspace pre-tokenizer after another pre-tokenizer is not supported", cx.source);
    PreTokenizer::Transform t;
    t.replace_spaces_with = get_string(cx, p, "replacement", "Metaspace pre-tokenizer");
    std::string scheme = "always";
    if (const Json* s = member(p, "prepend_scheme"); s != nullptr && s->is_string())
      scheme = s->get<std::string>();
    else if (!get_bool(p, "add_prefix_space", true))
      scheme = "never";
    CANOPY_CHECK(scheme == "always" || scheme == "first" || scheme == "never",
                 "{}: unknown Metaspace prepend_scheme '{}'", cx.source, scheme);
    if (scheme != "never") {
      t.prepend = t.replace_spaces_with;
      t.prepend_unless_present = true;
      t.prepend_only_at_start = scheme == "first";
    }
    spec.pre_tokenizer.set_transform(t);
    if (get_bool(p, "split", true)) {
      const std::string& r = t.replace_spaces_with;
      CANOPY_CHECK(utf8::is_valid(r) && !r.empty() && utf8::sequence_length(static_cast<unsigned char>(r[0])) == r.size(),
                   "{}: the Metaspace replacement must be one character", cx.source);
      Splitter s;
      s.kind = Splitter::Kind::Char;
      size_t i = 0;
      s.ch = utf8::next(r, i);
      s.behavior = SplitBehavior::MergedWithNext;
      spec.pre_tokenizer.add(std::move(s));
    }
  } else if (type == "Digits") {
    Splitter s;
    s.kind = Splitter::Kind::Numeric;
    s.behavior = get_bool(p, "individual_digits", false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
    spec.pre_tokenizer.add(std::move(s));
  } else if (type == "Whitespace") {
    Splitter s;
    s.regex = std::make_shared<Regex>(R"(\w+|[^\w\s]+)");
    s.behavior = SplitBehavior::Removed;
    s.invert = true;
    spec.pre_tokenizer.add(std::move(s));
  } else if (type == "WhitespaceSplit") {
    Splitter s;
    s.kind = Splitter::Kind::WhiteSpace;
    s.behavior = SplitBehavior::Removed;
    spec.pre_tokenizer.add(std::move(s));
  } else if (type == "Punctuation") {
    Splitter s;
    s.regex = std::make_shared<Regex>(R"([\p{P}!-/:-@\[-`{-~])");
    const Json* b = member(p, "behavior");
    s.behavior = b != nullptr && b->is_string() ? behavior_of(cx, b->get<std::string>()) : SplitBehavior::Isolated;
    spec.pre_tokenizer.add(std::move(s));
  } else {
    fail("{}: unsupported pre-tokenizer '{}' (canopy supports Sequence, Split, ByteLevel, Metaspace, Digits, "
         "Whitespace, WhitespaceSplit, Punctuation)",
         cx.source, type);
  }
}

// ---- model ----------------------------------------------------------------------------------------

void parse_model(const Context& cx, TokenizerJson& file, TokenizerSpec& spec) {
  const Json* model = member(file.root, "model");
  CANOPY_CHECK(model != nullptr && model->is_object(), "{}: \"model\" is missing or not an object", cx.source);
  const Json& m = *model;
  std::string type = "BPE";
  if (const Json* t = member(m, "type"); t != nullptr && t->is_string()) type = t->get<std::string>();
  CANOPY_CHECK(type == "BPE", "{}: unsupported tokenizer model '{}' (canopy supports BPE)", cx.source, type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const Json* v = member(m, key);
    CANOPY_CHECK(v == nullptr || (v->is_string() && v->get<std::string>().empty()),
                 "{}: BPE with a {} is not supported", cx.source, key);
  }
  CANOPY_CHECK(file.has_vocab, "{}: the BPE model has no vocab object", cx.source);
  for (auto& [text, id] : file.vocab) {
    CANOPY_CHECK(id >= 0 && id < kMaxVocabSize, "{}: vocab entry '{}' has an id out of range: {}", cx.source, text, id);
    if (static_cast<size_t>(id) >= spec.tokens.size()) spec.tokens.resize(static_cast<size_t>(id) + 1);
    spec.tokens[static_cast<size_t>(id)] = std::move(text);
  }
  spec.merges = std::move(file.merges);
  spec.bpe.byte_fallback = get_bool(m, "byte_fallback", false);
  spec.bpe.fuse_unk = get_bool(m, "fuse_unk", false);
  spec.bpe.ignore_merges = get_bool(m, "ignore_merges", false);
  if (const Json* unk = member(m, "unk_token"); unk != nullptr && unk->is_string()) {
    const std::string& name = unk->get_ref<const std::string&>();
    for (size_t id = 0; id < spec.tokens.size(); ++id)
      if (spec.tokens[id] == name) {
        spec.bpe.unk_id = static_cast<int32_t>(id);
        break;
      }
  }
}

// ---- post-processor -------------------------------------------------------------------------------

void parse_post_processor(const Context& cx, const Json& p, TokenizerSpec& spec) {
  const std::string type = type_of(cx, p, "post_processor");
  if (type == "Sequence") {
    const Json* list = member(p, "processors");
    CANOPY_CHECK(list != nullptr && list->is_array(), "{}: Sequence post-processor without a list", cx.source);
    for (const Json& item : *list) parse_post_processor(cx, item, spec);
  } else if (type == "ByteLevel") {
    // Adjusts offsets only.
  } else if (type == "TemplateProcessing") {
    const Json* single = member(p, "single");
    CANOPY_CHECK(single != nullptr && single->is_array(), "{}: TemplateProcessing without a single template",
                 cx.source);
    const Json* specials = member(p, "special_tokens");
    std::vector<int32_t> prefix, suffix;
    bool seen_sequence = false;
    for (const Json& piece : *single) {
      if (member(piece, "Sequence") != nullptr) {
        seen_sequence = true;
        continue;
      }
      const Json* st = member(piece, "SpecialToken");
      CANOPY_CHECK(st != nullptr, "{}: TemplateProcessing has a piece that is neither Sequence nor SpecialToken",
                   cx.source);
      const std::string name = get_string(cx, *st, "id", "TemplateProcessing special token");
      const Json* entry = specials != nullptr ? member(*specials, name.c_str()) : nullptr;
      const Json* ids = entry != nullptr ? member(*entry, "ids") : nullptr;
      CANOPY_CHECK(ids != nullptr && ids->is_array(), "{}: TemplateProcessing names '{}' without its ids", cx.source,
                   name);
      for (const Json& id : *ids) {
        CANOPY_CHECK(id.is_number_integer(), "{}: TemplateProcessing token '{}' has a non-integer id", cx.source, name);
        (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
      }
    }
    spec.prefix.insert(spec.prefix.end(), prefix.begin(), prefix.end());
    spec.suffix.insert(spec.suffix.end(), suffix.begin(), suffix.end());
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const Json* v = member(p, key);
      CANOPY_CHECK(v != nullptr && v->is_array() && v->size() == 2 && (*v)[1].is_number_integer(),
                   "{}: {} needs \"{}\": [token, id]", cx.source, type, key);
      (std::string(key) == "cls" ? spec.prefix : spec.suffix).push_back((*v)[1].get<int32_t>());
    }
  } else {
    fail("{}: unsupported post-processor '{}' (canopy supports Sequence, ByteLevel, TemplateProcessing, "
         "RobertaProcessing, BertProcessing)",
         cx.source, type);
  }
}

// ---- decoder ------------------------------------------------------------------------------------

void parse_decoder(const Context& cx, const Json& d, TokenizerSpec& spec) {
  const std::string type = type_of(cx, d, "decoder");
  if (type == "Sequence") {
    const Json* list = member(d, "decoders");
    CANOPY_CHECK(list != nullptr && list->is_array(), "{}: Sequence decoder without a list", cx.source);
    for (const Json& item : *list) parse_decoder(cx, item, spec);
  } else if (type == "ByteLevel" || type == "Fuse") {
    // Byte-level tokens always decode to their bytes; canopy always fuses.
  } else if (type == "ByteFallback") {
    spec.decode_byte_fallback = true;
  } else if (type == "Replace") {
    const Json* p = member(d, "pattern");
    const Json* s = p != nullptr ? member(*p, "String") : nullptr;
    CANOPY_CHECK(s != nullptr && s->is_string(), "{}: only Replace decoders with a String pattern are supported",
                 cx.source);
    spec.decode_replacements.emplace_back(s->get<std::string>(), get_string(cx, d, "content", "Replace decoder"));
  } else if (type == "Strip") {
    const std::string content = get_string(cx, d, "content", "Strip decoder");
    CANOPY_CHECK(content == " ", "{}: only Strip decoders that strip spaces are supported", cx.source);
    const Json* start = member(d, "start");
    const Json* stop = member(d, "stop");
    CANOPY_CHECK(stop == nullptr || (stop->is_number_integer() && stop->get<int64_t>() == 0),
                 "{}: Strip decoders with stop > 0 are not supported", cx.source);
    CANOPY_CHECK(start != nullptr && start->is_number_integer() && start->get<int64_t>() >= 0 &&
                     start->get<int64_t>() <= 16,
                 "{}: Strip decoder needs a small integer start", cx.source);
    spec.strip_leading_spaces += static_cast<int>(start->get<int64_t>());
  } else if (type == "Metaspace") {
    const std::string replacement = get_string(cx, d, "replacement", "Metaspace decoder");
    spec.decode_replacements.emplace_back(replacement, " ");
    std::string scheme = "always";
    if (const Json* s = member(d, "prepend_scheme"); s != nullptr && s->is_string())
      scheme = s->get<std::string>();
    else if (!get_bool(d, "add_prefix_space", true))
      scheme = "never";
    if (scheme != "never") spec.strip_leading_spaces += 1;
  } else {
    fail("{}: unsupported decoder '{}' (canopy supports Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, "
         "Metaspace)",
         cx.source, type);
  }
}

// ---- tokenizer_config.json ------------------------------------------------------------------------

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> config_token(const Json& config, const char* key) {
  const Json* v = member(config, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (const Json* c = member(*v, "content"); c != nullptr && c->is_string()) return c->get<std::string>();
  return std::nullopt;
}

std::optional<int32_t> id_of(const TokenizerSpec& spec, const std::string& text) {
  for (const AddedToken& t : spec.added)
    if (t.content == text) return t.id;
  for (size_t id = 0; id < spec.tokens.size(); ++id)
    if (spec.tokens[id] == text) return static_cast<int32_t>(id);
  return std::nullopt;
}

void apply_config(const Context& cx, const Json& config, TokenizerSpec& spec) {
  CANOPY_CHECK(config.is_object(), "{}: tokenizer_config.json is not a JSON object", cx.source);
  const auto bos_text = config_token(config, "bos_token");
  const auto eos_text = config_token(config, "eos_token");
  if (bos_text) spec.bos = id_of(spec, *bos_text);
  if (eos_text)
    if (auto id = id_of(spec, *eos_text)) spec.eos = {*id};
  // add_bos_token / add_eos_token, where given, decide whether add_special adds BOS / EOS (as
  // transformers' Llama tokenizers rebuild their post-processor from them).
  auto set_flag = [&](const char* key, std::optional<int32_t> id, std::vector<int32_t>& ids, bool front) {
    const Json* flag = member(config, key);
    if (flag == nullptr || !flag->is_boolean() || !id) return;
    std::erase(ids, *id);
    if (flag->get<bool>()) ids.insert(front ? ids.begin() : ids.end(), *id);
  };
  set_flag("add_bos_token", spec.bos, spec.prefix, true);
  set_flag("add_eos_token", spec.eos.empty() ? std::nullopt : std::optional<int32_t>(spec.eos[0]), spec.suffix, false);
}

}  // namespace

TokenizerSpec parse_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                            const std::string& source) {
  Context cx{source};
  TokenizerJson file = read_tokenizer_json(tokenizer_json, source);
  const Json& root = file.root;
  CANOPY_CHECK(root.is_object(), "{}: not a tokenizer.json (the top level is not an object)", source);
  TokenizerSpec spec;
  parse_model(cx, file, spec);
  if (const Json* added = member(root, "added_tokens")) {
    CANOPY_CHECK(added->is_array(), "{}: added_tokens is not a list", source);
    for (const Json& a : *added) {
      AddedToken t;
      CANOPY_CHECK(a.is_object() && member(a, "id") != nullptr && a["id"].is_number_integer(),
                   "{}: an added token has no integer id", source);
      const auto id = a["id"].get<int64_t>();
      CANOPY_CHECK(id >= 0 && id < kMaxVocabSize, "{}: added token id out of range: {}", source, id);
      t.id = static_cast<int32_t>(id);
      t.content = get_string(cx, a, "content", "an added token");
      t.special = get_bool(a, "special", false);
      t.lstrip = get_bool(a, "lstrip", false);
      t.rstrip = get_bool(a, "rstrip", false);
      t.single_word = get_bool(a, "single_word", false);
      spec.added.push_back(std::move(t));
    }
  }
  if (const Json* n = member(root, "normalizer")) parse_normalizer(cx, *n, spec);
  if (const Json* p = member(root, "pre_tokenizer")) parse_pre_tokenizer(cx, *p, spec, true);
  if (const Json* p = member(root, "post_processor")) parse_post_processor(cx, *p, spec);
  if (const Json* d = member(root, "decoder")) parse_decoder(cx, *d, spec);
  if (!spec.prefix.empty()) spec.bos = spec.prefix.front();
  if (!spec.suffix.empty()) spec.eos = {spec.suffix.back()};
  if (!tokenizer_config.empty()) {
    Json config;
    try {
      config = Json::parse(tokenizer_config);
    } catch (const Json::exception& e) {
      fail("{}: tokenizer_config.json is not valid JSON: {}", source, e.what());
    }
    apply_config(cx, config, spec);
  }
  spec.source = source;
  spec.kind = spec.byte_level ? "tokenizer.json, byte-level BPE" : "tokenizer.json, SentencePiece-style BPE";
  return spec;
}

Tokenizer Tokenizer::from_hf_json_text(std::string_view tokenizer_json, std::string_view tokenizer_config,
                                       const std::string& source) {
  return build_tokenizer(parse_hf_json(tokenizer_json, tokenizer_config, source));
}

Tokenizer Tokenizer::from_hf_json(const std::string& tokenizer_json, const std::string& tokenizer_config) {
  const std::string json = read_text_file(tokenizer_json);
  const std::string config = tokenizer_config.empty() ? std::string() : read_text_file(tokenizer_config);
  return from_hf_json_text(json, config, tokenizer_json);
}

}  // namespace canopy
