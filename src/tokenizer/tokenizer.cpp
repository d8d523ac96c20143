#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <map>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_impl.h"
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

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

namespace {

struct EncodeScratch {
  std::vector<AddedTokenMatcher::Segment> segments;
  std::vector<Piece> pieces, pieces_scratch;
  BpeModel::Scratch bpe;
};

void encode_text(const Tokenizer::Impl& m, std::string_view text, bool at_input_start, WordCache* cache,
                 EncodeScratch& scratch, std::vector<int32_t>& ids) {
  std::string normalized;
  std::string_view view = text;
  if (!m.normalizer.empty()) {
    normalized = m.normalizer.apply(text);
    view = normalized;
  }
  if (m.pre_tokenizer.has_transform()) {
    normalized = m.pre_tokenizer.transform(view, at_input_start);
    view = normalized;
  }
  scratch.pieces.clear();
  m.pre_tokenizer.split(view, scratch.pieces, scratch.pieces_scratch);
  for (const auto& [begin, end] : scratch.pieces) {
    const std::string_view piece = view.substr(begin, end - begin);
    if (cache != nullptr && cache->lookup(piece, ids)) continue;
    const size_t before = ids.size();
    m.bpe.encode(piece, ids, scratch.bpe);
    if (cache != nullptr) cache->insert(piece, ids.data() + before, ids.size() - before);
  }
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Impl& m = *impl_;
  CANOPY_CHECK(text.size() < UINT32_MAX, "a text of {} bytes is too long to tokenize at once", text.size());
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::sanitize(text);
    text = repaired;
  }
  thread_local EncodeScratch scratch;
  // One pre-token cache per thread, for the tokenizer it last served (serials are never reused,
  // so a cache cannot outlive its tokenizer's meaning).
  thread_local WordCache cache;
  thread_local uint64_t cache_owner = 0;
  if (cache_owner != m.serial) {
    cache.clear();
    cache_owner = m.serial;
  }

  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  scratch.segments.clear();
  if (m.added.empty())
    scratch.segments.push_back({0, static_cast<uint32_t>(text.size()), -1});
  else
    m.added.split(text, parse_special, scratch.segments);
  for (const auto& seg : scratch.segments) {
    if (seg.id >= 0)
      ids.push_back(seg.id);
    else
      encode_text(m, text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, &cache, scratch, ids);
  }
  if (add_special) {
    const bool has_prefix = !m.prefix.empty() && ids.size() >= m.prefix.size() &&
                            std::equal(m.prefix.begin(), m.prefix.end(), ids.begin());
    const bool has_suffix = !m.suffix.empty() && ids.size() >= m.suffix.size() &&
                            std::equal(m.suffix.rbegin(), m.suffix.rend(), ids.rbegin());
    if (!has_prefix) ids.insert(ids.begin(), m.prefix.begin(), m.prefix.end());
    if (!has_suffix) ids.insert(ids.end(), m.suffix.begin(), m.suffix.end());
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string bytes;
  for (const int32_t id : ids) {
    CANOPY_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
    if (skip_special && m.special[static_cast<size_t>(id)]) continue;
    bytes += m.token_bytes(id);
  }
  size_t strip = 0;
  while (strip < static_cast<size_t>(m.strip_leading_spaces) && strip < bytes.size() && bytes[strip] == ' ') ++strip;
  bytes.erase(0, strip);
  if (!utf8::is_valid(bytes)) return utf8::sanitize(bytes);
  return bytes;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  CANOPY_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return impl_->token_texts[static_cast<size_t>(id)];
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  CANOPY_CHECK(id >= 0 && id < vocab_size(), "token id {} is outside the vocabulary of {} tokens", id, vocab_size());
  return impl_->token_bytes(id);
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const { return impl_->token_index.find(text); }

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->token_texts.size()); }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[static_cast<size_t>(id)] != 0;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
const std::vector<int32_t>& Tokenizer::eos_ids() const { return impl_->eos; }
const std::string& Tokenizer::description() const { return impl_->description; }

// ---- streaming ------------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special, bool at_text_start)
    : tokenizer_(&tokenizer),
      skip_special_(skip_special),
      at_text_start_(at_text_start),
      strip_left_(at_text_start ? tokenizer.impl().strip_leading_spaces : 0) {}

std::string StreamDecoder::push(int32_t id) {
  const Tokenizer::Impl& m = tokenizer_->impl();
  CANOPY_CHECK(id >= 0 && id < tokenizer_->vocab_size(), "token id {} is outside the vocabulary of {} tokens", id,
               tokenizer_->vocab_size());
  if (skip_special_ && m.special[static_cast<size_t>(id)]) return {};
  std::string_view bytes = m.token_bytes(id);
  while (strip_left_ > 0 && !bytes.empty()) {
    if (bytes.front() != ' ') {
      strip_left_ = 0;
      break;
    }
    bytes.remove_prefix(1);
    --strip_left_;
  }
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const utf8::Scan sc = utf8::scan(pending_, i);
    if (sc.kind == utf8::Scan::Incomplete) break;
    if (sc.kind == utf8::Scan::Valid)
      out.append(pending_, i, sc.length);
    else
      out.append(utf8::kReplacementUtf8);
    i += sc.length;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = pending_.empty() ? std::string() : utf8::sanitize(pending_);
  pending_.clear();
  strip_left_ = at_text_start_ ? tokenizer_->impl().strip_leading_spaces : 0;
  return out;
}

}  // namespace canopy
