// `canopy tokenize` output (DESIGN.md section 4: --ids prints the ids, no BOS/EOS, separated by
// single spaces, on one line).
#include <gtest/gtest.h>

#include "api/cmd_tokenize.h"
#include "testing/testing.h"

namespace canopy::cli {
namespace {

const Tokenizer& qwen3() {
  static const Tokenizer t = Tokenizer::load(canopy::testing::shared_dir() + "/data/tokenizers/qwen3");
  return t;
}

TEST(CmdTokenize, IdsOnOneLine) {
  TokenizeOptions o;
  o.ids = true;
  EXPECT_EQ(format_tokenize_output(qwen3(), "Hello world", o), "9707 1879\n");
  EXPECT_EQ(format_tokenize_output(qwen3(), "", o), "\n");
  EXPECT_EQ(format_tokenize_output(qwen3(), "<|im_start|>hi\n", o), "151644 6023 198\n");
  o.no_special = true;
  EXPECT_EQ(format_tokenize_output(qwen3(), "<|im_start|>", o), "27 91 318 4906 91 29\n");
}

TEST(CmdTokenize, OneTokenPerLineWithEscapedText) {
  TokenizeOptions o;
  EXPECT_EQ(format_tokenize_output(qwen3(), "Hello world\n\t\\", o), "9707\tHello\n1879\t world\n198\t\\n\n197\t\\t\n59\t\\\\\n");
  // "𣗢" (F0 A3 97 A2) is split across two byte-level tokens: partial characters are written as \xNN.
  EXPECT_EQ(format_tokenize_output(qwen3(), "𣗢", o), "123318\t\\xf0\\xa3\\x97\n95\t\\xa2\n");
}

TEST(CmdTokenize, AddSpecialFollowsTheTokenizer) {
  const Tokenizer mistral = Tokenizer::load(canopy::testing::shared_dir() + "/data/tokenizers/mistral");
  TokenizeOptions o;
  o.ids = true;
  EXPECT_EQ(format_tokenize_output(mistral, "Hello", o), "22557\n");
  o.add_special = true;
  EXPECT_EQ(format_tokenize_output(mistral, "Hello", o), "1 22557\n");
}

}  // namespace
}  // namespace canopy::cli
