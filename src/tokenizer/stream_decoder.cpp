// StreamDecoder: incremental detokenization that never splits a character.
#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/utf8.h"

namespace canopy {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special, bool at_text_start)
    : tokenizer_(tokenizer),
      skip_special_(skip_special),
      at_text_start_(at_text_start),
      strip_left_(at_text_start ? tokenizer.impl().strip_leading_spaces : 0) {}

std::string StreamDecoder::push(int32_t id) {
  const Tokenizer::Impl& m = tokenizer_.impl();
  CANOPY_CHECK(id >= 0 && id < tokenizer_.vocab_size(), "token id {} is outside the vocabulary of {} tokens", id,
               tokenizer_.vocab_size());
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
  strip_left_ = at_text_start_ ? tokenizer_.impl().strip_leading_spaces : 0;
  return out;
}

}  // namespace canopy
