// `canopy generate`: flags are validated with clear errors, and a run prints the greedy
// continuation (token ids) that transformers produced for the same tiny model.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "api/commands.h"
#include "core/error.h"
#include "testing/testing.h"

namespace canopy {
namespace {

// Runs `canopy generate ARGS`; returns "" on success, else the error message.
std::string run(std::vector<std::string> args) {
  CLI::App app{"canopy"};
  int exit_code = -1;
  cli::add_generate_command(app, exit_code);
  args.insert(args.begin(), "generate");
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return std::string("parse: ") + e.what();
  } catch (const Error& e) {
    return e.what();
  }
  return exit_code == 0 ? "" : "exit code not set";
}

const std::string kTiny = testing::source_dir() + "/tests/data/models/tiny-llama";

TEST(GenerateCli, RejectsBadFlags) {
  EXPECT_NE(run({"-p", "hi"}).find("parse"), std::string::npos);  // -m is required
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 2", "--temperature", "-1"}).find("parse"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 2", "--top-p", "2"}).find("parse"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 2", "-n", "0"}).find("parse"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 2", "--device", "tpu"}).find("parse"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 2", "--top-p", "0"}).find("top_p"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny}).find("exactly one of"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 x"}).find("not a list of token ids"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "--prompt-ids", "1 99999"}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(run({"-m", "/nonexistent", "--prompt-ids", "1"}).find("does not exist"), std::string::npos);
}

TEST(GenerateCli, PrintsTheGreedyContinuation) {
  std::ifstream f(kTiny + "/golden.json");
  const auto golden = nlohmann::json::parse(f).at("cases").at(0);
  std::string prompt, expected;
  for (int id : golden.at("prompt")) prompt += std::to_string(id) + " ";
  const auto greedy = golden.at("greedy").get<std::vector<int>>();
  for (size_t i = 0; i < 16; ++i) expected += (i ? " " : "") + std::to_string(greedy[i]);
  ::testing::internal::CaptureStdout();
  const std::string error = run({"-m", kTiny, "--prompt-ids", prompt, "--temperature", "0", "--max-tokens", "16",
                                 "--ignore-eos", "--kv-cache-mib", "4"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(error, "");
  EXPECT_EQ(out, expected + "\n");
}

}  // namespace
}  // namespace canopy
