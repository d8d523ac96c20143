// Tokenizer::load: which files of a model path it reads.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "testing/testing.h"
#include "tokenizer/tokenizer.h"

namespace canopy {
namespace {

namespace fs = std::filesystem;

std::string tokenizers_dir() { return canopy::testing::shared_dir() + "/data/tokenizers"; }

TEST(TokenizerLoad, ModelFolderWithGenerationConfig) {
  canopy::testing::TempDir dir;
  fs::create_symlink(tokenizers_dir() + "/llama3/tokenizer.json", dir.file("tokenizer.json"));
  fs::create_symlink(tokenizers_dir() + "/llama3/tokenizer_config.json", dir.file("tokenizer_config.json"));
  canopy::testing::write_file(dir.file("generation_config.json"), R"({"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
  const Tokenizer tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok.bos_id(), 128000);
  EXPECT_EQ(tok.eos_ids(), (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_NE(tok.description().find("byte-level"), std::string::npos) << tok.description();
  canopy::testing::write_file(dir.file("generation_config.json"), R"({"eos_token_id": 999999999})");
  EXPECT_THROW(Tokenizer::load(dir.path()), Error);
}

TEST(TokenizerLoad, FolderWithOnlyASentencePieceModel) {
  canopy::testing::TempDir dir;
  fs::create_symlink(tokenizers_dir() + "/llama2-spm/tokenizer.model", dir.file("tokenizer.model"));
  const Tokenizer tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok.encode("Hello world", /*add_special=*/true), (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok.decode(tok.encode("Hello world", true), /*skip_special=*/true), "Hello world");
}

TEST(TokenizerLoad, PathsWithoutATokenizerAreNamed) {
  canopy::testing::TempDir dir;
  try {
    Tokenizer::load(dir.path());
    ADD_FAILURE() << "an empty folder has no tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path()), std::string::npos) << e.what();
  }
  canopy::testing::write_file(dir.file("weights.bin"), "not a tokenizer");
  EXPECT_THROW(Tokenizer::load(dir.file("weights.bin")), Error);
  EXPECT_THROW(Tokenizer::load(dir.file("missing.gguf")), Error);
  canopy::testing::write_file(dir.file("broken.gguf"), "GGUF\x03");
  EXPECT_THROW(Tokenizer::load(dir.file("broken.gguf")), Error);
  canopy::testing::write_file(dir.file("tokenizer.model"), "\x0a\xff\xff\xff\xff\x0f");
  EXPECT_THROW(Tokenizer::load(dir.file("tokenizer.model")), Error);
}

}  // namespace
}  // namespace canopy
