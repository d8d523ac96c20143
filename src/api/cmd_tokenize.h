// `canopy tokenize`: what it prints, separated from stdin/stdout so that tests can call it.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace canopy::cli {

struct TokenizeOptions {
  bool ids = false;          // only the ids, space-separated, on one line
  bool no_special = false;   // special-token text is plain text
  bool add_special = false;  // add the BOS/EOS the tokenizer adds to a prompt
};

// The command's output for `text`: with ids, "ID ID ID\n"; else one "ID<TAB>TEXT\n" per token,
// TEXT being the token's bytes with \n, \r, \t, \\ escaped and other control bytes and bytes of
// partial characters written \xNN.
std::string format_tokenize_output(const Tokenizer& tokenizer, std::string_view text, const TokenizeOptions& options);

}  // namespace canopy::cli
