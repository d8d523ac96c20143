// build_tokenizer: a TokenizerSpec compiled into the immutable Tokenizer::Impl.
#include "tokenizer/tokenizer_impl.h"

#include <algorithm>
#include <atomic>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace canopy {
namespace {

// The model's string for a token: raw bytes for byte-level vocabularies (strings outside the
// byte-level alphabet, such as some added tokens, are taken as they are).
std::string model_string(const std::string& text, bool byte_level) {
  if (!byte_level) return text;
  if (auto raw = byte_level::decode(text)) return std::move(*raw);
  return text;
}

std::optional<uint8_t> byte_token_value(std::string_view text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(text[3]), lo = hex(text[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

std::string apply_replacements(std::string text, const std::vector<std::pair<std::string, std::string>>& pairs) {
  for (const auto& [from, to] : pairs) {
    if (from.empty()) continue;
    std::string out;
    size_t pos = 0;
    while (true) {
      const size_t hit = text.find(from, pos);
      if (hit == std::string::npos) break;
      out.append(text, pos, hit - pos).append(to);
      pos = hit + from.size();
    }
    out.append(text, pos);
    text = std::move(out);
  }
  return text;
}

// Merge rules from pairs of token strings as the file writes them (looked up in `file_vocab`, the
// tokens in the file's alphabet, so byte-level strings need no conversion).
std::vector<MergeRule> rules_from_merges(const TokenizerSpec& spec, const Vocabulary& file_vocab) {
  std::vector<MergeRule> rules;
  rules.reserve(spec.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [a, b] = spec.merges[rank];
    joined.assign(a).append(b);
    const auto l = file_vocab.find(a), r = file_vocab.find(b), m = file_vocab.find(joined);
    // A rule whose parts or result are not tokens can never apply; skip it.
    if (!l || !r || !m) continue;
    rules.push_back({*l, *r, *m, static_cast<int32_t>(rank)});
  }
  return rules;
}

// SentencePiece BPE merges the adjacent pair whose concatenation is the token with the highest
// score. As rules: every split of a token into two tokens, ranked by the token's score.
std::vector<MergeRule> rules_from_scores(const TokenizerSpec& spec, const Vocabulary& vocab) {
  const size_t n = std::min(spec.scores.size(), static_cast<size_t>(vocab.size()));
  std::vector<float> distinct(spec.scores.begin(), spec.scores.begin() + static_cast<std::ptrdiff_t>(n));
  std::sort(distinct.begin(), distinct.end(), std::greater<>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  auto rank_of = [&](float score) {
    return static_cast<int32_t>(std::lower_bound(distinct.begin(), distinct.end(), score, std::greater<>()) -
                                distinct.begin());
  };
  std::vector<MergeRule> rules;
  for (size_t id = 0; id < n; ++id) {
    if (!spec.mergeable.empty() && !spec.mergeable[id]) continue;
    const std::string& text = vocab.string(static_cast<int32_t>(id));
    const int32_t rank = rank_of(spec.scores[id]);
    for (size_t cut = 1; cut < text.size(); ++cut) {
      if ((static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = vocab.find(std::string_view(text).substr(0, cut));
      const auto r = vocab.find(std::string_view(text).substr(cut));
      if (l && r) rules.push_back({*l, *r, static_cast<int32_t>(id), rank});
    }
  }
  return rules;
}

constexpr std::string_view kWordStart = "\xE2\x96\x81";  // "▁", SentencePiece's space

// SentencePiece-style tokenizers often have no pre-tokenizer: BPE runs over the whole text. When
// no token has a "▁" right after another character, no merge can join the end of a word to a
// following "▁", so cutting the text before each run of "▁" gives exactly the same tokens while
// keeping BPE inputs short (and cacheable).
bool can_cut_before_word_starts(const TokenizerSpec& spec, const Vocabulary& vocab) {
  if (spec.byte_level || spec.pre_tokenizer.splitter_count() != 0) return false;
  if (!vocab.find(kWordStart)) return false;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& t = vocab.string(id);
    for (size_t pos = t.find(kWordStart, 1); pos != std::string::npos; pos = t.find(kWordStart, pos + 1))
      if (pos < kWordStart.size() || t.compare(pos - kWordStart.size(), kWordStart.size(), kWordStart) != 0)
        return false;
  }
  return true;
}

}  // namespace

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

Tokenizer build_tokenizer(TokenizerSpec spec) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  static std::atomic<uint64_t> next_serial{1};
  impl->serial = next_serial++;

  // Vocabulary size: the model's tokens and the added tokens, whichever reach further.
  size_t size = spec.tokens.size();
  for (const AddedToken& t : spec.added) {
    CANOPY_CHECK(t.id >= 0 && t.id < kMaxVocabSize, "{}: added token '{}' has an id out of range: {}",
                 spec.source, t.content, t.id);
    size = std::max(size, static_cast<size_t>(t.id) + 1);
  }
  CANOPY_CHECK(size > 0, "{}: the vocabulary is empty", spec.source);
  impl->description = fmt::format("{} ({}, {} tokens)", spec.source, spec.kind, size);

  // The tokens as the file writes them, added tokens included (for token_text and find_token, and
  // for reading merge rules, which the file writes in the same alphabet).
  impl->token_texts = std::move(spec.tokens);
  const size_t model_size = impl->token_texts.size();
  impl->token_texts.resize(size);
  impl->special.assign(size, 0);
  for (const AddedToken& t : spec.added) {
    impl->token_texts[static_cast<size_t>(t.id)] = t.content;
    if (t.special) impl->special[static_cast<size_t>(t.id)] = 1;
  }
  impl->token_index = Vocabulary::view(impl->token_texts);

  std::vector<std::string> model_strings(model_size);
  for (size_t id = 0; id < model_size; ++id) model_strings[id] = model_string(impl->token_texts[id], spec.byte_level);
  impl->model_vocab = Vocabulary(std::move(model_strings));

  const bool from_scores = spec.merges.empty() && !spec.scores.empty();
  const std::vector<MergeRule> rules =
      from_scores ? rules_from_scores(spec, impl->model_vocab) : rules_from_merges(spec, impl->token_index);
  BpeModel::Config config = spec.bpe;
  config.byte_level = spec.byte_level;
  auto check_id = [&](int32_t id, const char* what) {
    CANOPY_CHECK(id >= -1 && id < static_cast<int64_t>(size), "{}: the {} id {} is outside the vocabulary of {}",
                 spec.source, what, id, size);
  };
  check_id(config.unk_id, "unknown-token");
  impl->bpe = BpeModel(config, &impl->model_vocab, rules);

  // Decoded bytes of every token.
  std::vector<bool> is_added(size, false);
  for (const AddedToken& t : spec.added) is_added[static_cast<size_t>(t.id)] = true;
  impl->decoded_offsets.reserve(size + 1);
  impl->decoded_offsets.push_back(0);
  for (size_t id = 0; id < size; ++id) {
    const std::string& text = impl->token_texts[id];
    if (is_added[id]) {
      impl->decoded += text;
    } else if (id >= model_size) {
      // An id between the model's tokens and the added ones that the file leaves out: no text.
    } else if (spec.byte_level) {
      impl->decoded += impl->model_vocab.string(static_cast<int32_t>(id));
    } else if (const auto byte = spec.decode_byte_fallback ? byte_token_value(text) : std::nullopt) {
      impl->decoded.push_back(static_cast<char>(*byte));
    } else {
      impl->decoded += apply_replacements(text, spec.decode_replacements);
    }
    CANOPY_CHECK(impl->decoded.size() < UINT32_MAX, "{}: the vocabulary is too large", spec.source);
    impl->decoded_offsets.push_back(static_cast<uint32_t>(impl->decoded.size()));
  }
  impl->strip_leading_spaces = spec.strip_leading_spaces;

  if (can_cut_before_word_starts(spec, impl->model_vocab)) {
    Splitter words;
    words.regex = std::make_shared<Regex>("\\x{2581}*[^\\x{2581}]+|\\x{2581}+");
    spec.pre_tokenizer.add(std::move(words));
  }
  impl->added = AddedTokenMatcher(spec.added);
  impl->normalizer = std::move(spec.normalizer);
  impl->pre_tokenizer = std::move(spec.pre_tokenizer);
  for (int32_t id : spec.prefix) check_id(id, "post-processor");
  for (int32_t id : spec.suffix) check_id(id, "post-processor");
  if (spec.bos) check_id(*spec.bos, "BOS");
  for (int32_t id : spec.eos) check_id(id, "EOS");
  impl->prefix = std::move(spec.prefix);
  impl->suffix = std::move(spec.suffix);
  impl->bos = spec.bos;
  impl->eos = std::move(spec.eos);
  return Tokenizer(std::move(impl));
}

}  // namespace canopy
