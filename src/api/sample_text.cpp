// Incremental sample text with stop strings (sample_text.h).
#include "api/sample_text.h"

namespace canopy::cli {

SampleText::SampleText(const Tokenizer& tokenizer, const std::vector<std::string>& stops, bool continues_prompt)
    : vocab_size_(tokenizer.vocab_size()),
      decoder_(tokenizer, /*skip_special=*/true, /*at_text_start=*/!continues_prompt),
      matcher_(stops) {}

bool SampleText::push(int32_t token) {
  offsets_.push_back(matcher_.text().size());
  if (matcher_.stopped()) return false;
  if (token < 0 || token >= vocab_size_) return true;
  return !matcher_.append(decoder_.push(token));
}

void SampleText::finish() {
  if (!matcher_.stopped()) matcher_.append(decoder_.finish());
}

}  // namespace canopy::cli
