// `canopy run-batch -m MODEL -i IN.jsonl -o OUT.jsonl`: the offline batch job (OpenAI Batch
// format in and out; see batch_runner.h for the lines, openai_request.h for the fields).
#include "api/cmd_run_batch.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "api/commands.h"
#include "core/error.h"

namespace canopy::cli {
namespace {

// The output file, written beside its final path and renamed into place once complete, so a
// reader never sees half a result file and a failed run leaves any earlier file as it was.
class AtomicOutputFile {
 public:
  explicit AtomicOutputFile(const std::string& path)
      : path_(path), temp_(path + ".tmp." + std::to_string(::getpid())) {
    stream_.open(temp_, std::ios::binary | std::ios::trunc);
    CANOPY_CHECK(stream_.is_open(), "cannot write the output file '{}' (its folder must exist and be writable)", path);
  }
  ~AtomicOutputFile() {
    if (!committed_) {
      stream_.close();
      std::error_code ignored;
      std::filesystem::remove(temp_, ignored);
    }
  }
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  std::ostream& stream() { return stream_; }
  void commit() {
    stream_.close();
    CANOPY_CHECK(!stream_.fail(), "writing the output file '{}' failed", temp_);
    std::error_code error;
    std::filesystem::rename(temp_, path_, error);
    CANOPY_CHECK(!error, "cannot move '{}' to '{}': {}", temp_, path_, error.message());
    committed_ = true;
  }

 private:
  std::string path_, temp_;
  std::ofstream stream_;
  bool committed_ = false;
};

}  // namespace

void add_run_batch_options(CLI::App& cmd, RunBatchArgs& a) {
  RunBatchOptions& o = a.options;
  cmd.add_option("-m,--model", o.model, "Hugging Face model folder or .gguf file")->required();
  cmd.add_option("-i,--input", a.input, "Input JSONL file (OpenAI Batch lines or bare {\"prompt\": ...}); - for stdin")
      ->required();
  cmd.add_option("-o,--output", a.output,
                 "Output JSONL file, one result line per input line; - for stdout (then the summary follows)")
      ->required();
  cmd.add_option("--tokenizer", o.tokenizer, "Tokenizer folder or file (default: the model's)");
  cmd.add_option("--chat-template", o.chat_template,
                 "Chat template .jinja file (default: the tokenizer folder's, else the model's)");
  add_device_options(cmd, o.device, o.gpu_memory_utilization, o.no_cuda_graphs, o.random_weights);
  cmd.add_flag("--no-prefix-sharing", [&o](int64_t) { o.prefix_sharing = false; },
               "Every sequence prefills and reads its own copy of its prompt (the baseline)");
  cmd.add_option("--chat-max-tokens", o.chat_max_tokens, "max_tokens of chat requests that set none")
      ->check(CLI::Range(1, 1 << 20));
  cmd.add_option("--seed", o.seed, "Base seed: a request without one uses seed + its line number");
  cmd.add_option("--threads", o.threads, "CPU threads (0: every core)")->check(CLI::Range(0, 4096));
  cmd.add_option("--kv-cache-mib", o.kv_cache_mib, "KV cache size in MiB (0: the device's default)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd.add_option("--max-step-tokens", o.max_step_tokens, "Token budget of one engine step (0: the default)")
      ->check(CLI::Range(0, 1 << 16));
  cmd.add_option("--max-step-sequences", o.max_step_sequences, "Sequences decoding in one step at most (0: the default)")
      ->check(CLI::Range(0, 1 << 16));
  cmd.add_flag("-q,--quiet", o.quiet, "No progress on stderr");
}

int run_batch_command(const RunBatchArgs& args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::ifstream file_in;
  std::istream* input = &in;
  if (args.input != "-") {
    CANOPY_CHECK(!std::filesystem::is_directory(args.input), "the input '{}' is a folder, not a JSONL file", args.input);
    file_in.open(args.input, std::ios::binary);
    CANOPY_CHECK(file_in.is_open(), "cannot open the input file '{}'", args.input);
    input = &file_in;
  }
  BatchSummary summary;
  if (args.output == "-") {
    summary = run_batch(args.options, *input, out, err);
  } else {
    AtomicOutputFile output(args.output);  // opened first: an unwritable path fails before any work
    summary = run_batch(args.options, *input, output.stream(), err);
    output.commit();
  }
  out << summary.to_json().dump() << '\n';
  out.flush();
  return 0;
}

void add_run_batch_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<RunBatchArgs>();
  auto* cmd = app.add_subcommand(
      "run-batch",
      "Run a batch of requests from a JSONL file (OpenAI Batch format) and write one result line per input line.\n"
      "The summary (requests, tokens, seconds, tokens/s) is printed as the last line of stdout.");
  add_run_batch_options(*cmd, *args);
  cmd->callback([args, &exit_code] { exit_code = run_batch_command(*args, std::cin, std::cout, std::cerr); });
}

}  // namespace canopy::cli
