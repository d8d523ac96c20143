// Tokenizer: encoding and decoding over a compiled Tokenizer::Impl.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace canopy {

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

}  // namespace canopy
