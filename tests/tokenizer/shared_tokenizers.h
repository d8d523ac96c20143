// The real tokenizers of ../shared/data/tokenizers, loaded once per test binary.
#pragma once

#include <string>

#include "tokenizer/tokenizer.h"

namespace canopy::testing {

const Tokenizer& llama3_tokenizer();   // byte-level, ignore_merges, no normalizer
const Tokenizer& qwen3_tokenizer();    // byte-level, NFC
const Tokenizer& mistral_tokenizer();  // SentencePiece-style, byte fallback
const Tokenizer& gpt2_tokenizer();     // encoder.json + vocab.bpe

}  // namespace canopy::testing
