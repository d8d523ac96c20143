// `canopy generate`: flags are validated with clear errors, and a run prints the greedy
// continuation (token ids) that transformers produced for the same tiny model.
#include <gtest/gtest.h>

#include <algorithm>
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

// The device flags every model-running subcommand takes (api/device_options.cpp).
TEST(GenerateCli, DeviceFlags) {
  const std::vector<std::string> base = {"-m", kTiny, "--prompt-ids", "1 2", "--max-tokens", "2"};
  const auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run(a);
  };
  EXPECT_NE(with({"--gpu-memory-utilization", "1.5"}).find("parse"), std::string::npos);
  EXPECT_NE(with({"--gpu-memory-utilization", "0"}).find("out of range"), std::string::npos);
  EXPECT_EQ(with({"--gpu-memory-utilization", "0.5", "--no-cuda-graphs", "--kv-cache-mib", "4"}), "");  // the CPU ignores them
  EXPECT_NE(with({"--random-weights", "-p", "hi"}).find("exactly one of"), std::string::npos);
  EXPECT_NE(run({"-m", kTiny, "-p", "hi", "--random-weights"}).find("--prompt-ids"), std::string::npos);
  // A config.json with random weights runs (on the CPU here).
  testing::TempDir dir;
  testing::write_file(dir.file("config.json"), R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 100, "max_position_embeddings": 64})");
  ::testing::internal::CaptureStdout();
  const std::string error = run({"-m", dir.file("config.json"), "--random-weights", "--prompt-ids", "1 2 3",
                                 "--max-tokens", "4", "--temperature", "0", "--ignore-eos", "--kv-cache-mib", "1"});
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(error, "");
  EXPECT_EQ(std::count(out.begin(), out.end(), ' '), 3) << out;  // four ids
  // --device cuda: a clear error where this build or machine has no GPU; it runs where one is.
  const std::string cuda = with({"--device", "cuda", "--kv-cache-mib", "4"});
  EXPECT_TRUE(cuda.empty() || cuda.find("device 'cuda'") != std::string::npos) << cuda;
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
