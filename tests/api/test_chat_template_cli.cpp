// `canopy chat-template`: renders a JSON conversation with a model's template, and rejects bad
// input with messages that name the cause.
#include <gtest/gtest.h>

#include <filesystem>

#include "api/commands.h"
#include "core/error.h"
#include "testing/testing.h"

namespace canopy {
namespace {

struct Result {
  std::string out;    // what the command printed
  std::string error;  // the error message, "" on success
};

Result run(std::vector<std::string> args) {
  CLI::App app{"canopy"};
  int exit_code = -1;
  cli::add_chat_template_command(app, exit_code);
  args.insert(args.begin(), "chat-template");
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  Result r;
  ::testing::internal::CaptureStdout();
  try {
    app.parse(args);
    if (exit_code != 0) r.error = "exit code not set";
  } catch (const CLI::ParseError& e) {
    r.error = std::string("parse: ") + e.what();
  } catch (const Error& e) {
    r.error = e.what();
  }
  r.out = ::testing::internal::GetCapturedStdout();
  return r;
}

class ChatTemplateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    llama3_ = testing::shared_dir() + "/data/tokenizers/llama3";
    if (!std::filesystem::is_directory(llama3_)) GTEST_SKIP() << "shared test data not found";
    conversation_ = dir_.file("conversation.json");
    testing::write_file(conversation_, R"([{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hi 👋"}])");
  }
  testing::TempDir dir_;
  std::string llama3_;
  std::string conversation_;
};

TEST_F(ChatTemplateCli, PrintsTheRenderedPrompt) {
  const Result r = run({"-m", llama3_, "-i", conversation_});
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.out,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi 👋<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_F(ChatTemplateCli, ContinuesTheFinalMessage) {
  const std::string prefix = dir_.file("prefix.json");
  testing::write_file(prefix, R"([{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}])");
  const Result r = run({"-m", llama3_, "-i", prefix, "--continue-final-message"});
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.out,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nCount<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n1, 2,");
}

TEST_F(ChatTemplateCli, TemplateFileVariablesAndGenerationPrompt) {
  const std::string tmpl = dir_.file("t.jinja");
  testing::write_file(tmpl, "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{% endfor %}{{ mode }}{{ n + 1 }}"
                            "{% if add_generation_prompt %}>{% endif %}");
  const Result r = run({"-m", llama3_, "--template", tmpl, "-i", conversation_, "--var", "mode=fast", "--var", "n=41",
                        "--no-generation-prompt"});
  ASSERT_EQ(r.error, "");
  EXPECT_EQ(r.out, "<|begin_of_text|>[system][user]fast42");
  // A template file alone, without a model, and an object with "messages".
  const std::string body = dir_.file("body.json");
  testing::write_file(body, R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(run({"--template", tmpl, "-i", body, "--var", "mode=", "--var", "n=0"}).out, "[user]1>");
}

TEST_F(ChatTemplateCli, ErrorsNameTheCause) {
  EXPECT_NE(run({"-i", conversation_}).error.find("give a model"), std::string::npos);
  EXPECT_NE(run({"-m", dir_.file("missing"), "-i", conversation_}).error.find("does not exist"), std::string::npos);
  EXPECT_NE(run({"-m", testing::shared_dir() + "/data/tokenizers/mistral", "-i", conversation_}).error.find("has no chat template"),
            std::string::npos);
  EXPECT_NE(run({"-m", llama3_, "-i", dir_.file("missing.json")}).error.find("cannot open conversation file"), std::string::npos);
  const std::string bad = dir_.file("bad.json");
  testing::write_file(bad, R"([{"role": "user", "content": 42}])");
  EXPECT_NE(run({"-m", llama3_, "-i", bad}).error.find("message 0 (user): \"content\" must be"), std::string::npos);
  EXPECT_NE(run({"-m", llama3_, "-i", conversation_, "--var", "novalue"}).error.find("expected NAME=VALUE"), std::string::npos);
  // The template's own rejection reaches the user verbatim.
  const std::string strict = dir_.file("strict.jinja");
  testing::write_file(strict, "{{ raise_exception('Only one message, please') if messages|length > 1 }}");
  EXPECT_EQ(run({"--template", strict, "-i", conversation_}).error, "Only one message, please");
}

}  // namespace
}  // namespace canopy
