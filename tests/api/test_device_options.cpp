// The device flags every model-running subcommand takes (api/device_options.cpp), on run-batch:
// --device, --gpu-memory-utilization, --no-cuda-graphs, --random-weights.
#include <gtest/gtest.h>

#include <sstream>

#include "api/cmd_run_batch.h"
#include "core/error.h"
#include "testing/testing.h"

namespace canopy::cli {
namespace {

const std::string kModel = testing::source_dir() + "/tests/data/models/tiny-llama";
const std::string kTokenizer = testing::source_dir() + "/tests/data/api/tiny-tokenizer";
const std::string kLine = R"({"prompt": "hello", "max_tokens": 3, "temperature": 0, "ignore_eos": true})"
                          "\n";

// Runs run-batch on one line; returns "" on success (and the summary in *summary), else the error.
std::string run(std::vector<std::string> argv, std::string* summary = nullptr) {
  try {
    CLI::App app{"run-batch"};
    RunBatchArgs args;
    add_run_batch_options(app, args);
    std::reverse(argv.begin(), argv.end());
    app.parse(argv);
    std::istringstream in(kLine);
    std::ostringstream out, err;
    run_batch_command(args, in, out, err);
    if (summary != nullptr) *summary = out.str();
  } catch (const CLI::ParseError& e) {
    return std::string("parse: ") + e.what();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> args(const std::string& model, std::vector<std::string> extra) {
  std::vector<std::string> a = {"-m", model, "--tokenizer", kTokenizer, "-i", "-", "-o", "-", "--threads", "1",
                                "--kv-cache-mib", "8", "-q"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(DeviceOptions, RunBatchTakesTheDeviceFlags) {
  EXPECT_EQ(run(args(kModel, {"--gpu-memory-utilization", "2"})).rfind("parse: ", 0), 0u);
  EXPECT_NE(run(args(kModel, {"--gpu-memory-utilization", "0"})).find("out of range"), std::string::npos);
  EXPECT_EQ(run(args(kModel, {"--gpu-memory-utilization", "0.5", "--no-cuda-graphs"})), "");
  const std::string cuda = run(args(kModel, {"--device", "cuda"}));
  EXPECT_TRUE(cuda.empty() || cuda.find("device 'cuda'") != std::string::npos) << cuda;
}

TEST(DeviceOptions, RunBatchWithRandomWeights) {
  testing::TempDir dir;
  testing::write_file(dir.file("config.json"), R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 512, "max_position_embeddings": 64})");
  std::vector<std::string> no_tokenizer = {"-m", dir.file("config.json"), "-i", "-", "-o", "-", "--random-weights"};
  EXPECT_NE(run(no_tokenizer).find("--tokenizer"), std::string::npos);
  std::string summary;
  EXPECT_EQ(run(args(dir.file("config.json"), {"--random-weights"}), &summary), "");
  EXPECT_NE(summary.find("\"generated_tokens\":3"), std::string::npos) << summary;
}

}  // namespace
}  // namespace canopy::cli
