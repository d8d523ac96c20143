// `canopy generate`: continue one prompt (n samples) with a model, on the command line.
//
// The prompt is text (-p, tokenized with the model's own tokenizer) or token ids (--prompt-ids,
// then the output is ids too). With n = 1 the text streams to stdout as it is generated; with
// n > 1 each sample is printed after a "--- sample i ---" line. --verbose prints timing to stderr.
#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "api/commands.h"
#include "canopy/engine.h"
#include "core/error.h"

#if __has_include("tokenizer/tokenizer.h")
#include "tokenizer/tokenizer.h"
#define CANOPY_GENERATE_HAS_TOKENIZER 1
#endif

namespace canopy::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string prompt;
  std::string prompt_ids;
  int32_t n = 1;
  int32_t max_tokens = 128;
  float temperature = 0.8f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool chat = false;
  bool no_prefix_sharing = false;
  bool ignore_eos = false;
  bool verbose = false;
  int threads = 0;
  int64_t kv_cache_mib = 0;
  DeviceArgs device_args;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')) ++p;
    if (p == end) break;
    int64_t v = 0;
    const auto [next, ec] = std::from_chars(p, end, v);
    CANOPY_CHECK(ec == std::errc() && next != p, "--prompt-ids: '{}' is not a list of token ids (e.g. \"1 2 3\")",
                 text);
    CANOPY_CHECK(v >= 0 && v <= INT32_MAX, "--prompt-ids: token id {} is out of range", v);
    ids.push_back(static_cast<int32_t>(v));
    p = next;
  }
  CANOPY_CHECK(!ids.empty(), "--prompt-ids: no token ids given");
  return ids;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

void run_generate(const GenerateArgs& a) {
  CANOPY_CHECK(a.prompt.empty() != a.prompt_ids.empty(), "give exactly one of -p TEXT and --prompt-ids IDS");
  CANOPY_CHECK(a.kv_cache_mib >= 0 && a.kv_cache_mib <= (int64_t{1} << 30), "--kv-cache-mib {} is out of range",
               a.kv_cache_mib);
  SamplingParams params;
  params.n = a.n;
  params.max_tokens = a.max_tokens;
  params.temperature = a.temperature;
  params.top_p = a.top_p;
  params.top_k = a.top_k;
  params.seed = a.seed;
  params.ignore_eos = a.ignore_eos;
  validate_sampling_params(params);  // before the model loads: flag errors come first

  const bool text_mode = !a.prompt.empty();
  CANOPY_CHECK(!a.device_args.random_weights || !text_mode,
               "--random-weights: the model has no tokenizer; give the prompt as --prompt-ids");
  CANOPY_CHECK(!a.chat, "--chat: chat templates are not available in this build yet (give the formatted prompt)");
  std::vector<int32_t> prompt;
#ifdef CANOPY_GENERATE_HAS_TOKENIZER
  std::optional<Tokenizer> tokenizer;
  if (text_mode) {
    tokenizer = Tokenizer::load(a.model);
    prompt = tokenizer->encode(a.prompt, /*add_special=*/true);
    CANOPY_CHECK(!prompt.empty(), "the prompt is empty after tokenization");
  }
#else
  CANOPY_CHECK(!text_mode, "-p TEXT needs the tokenizer, which this build does not have yet: use --prompt-ids");
#endif
  if (!text_mode) prompt = parse_ids(a.prompt_ids);

  EngineOptions options;
  options.model_path = a.model;
  apply_device_args(a.device_args, options);
  options.prefix_sharing = !a.no_prefix_sharing;
  options.threads = a.threads;
  options.kv_cache_bytes = a.kv_cache_mib << 20;
  const auto engine = Engine::create(options);

  TokenCallback on_token;
#ifdef CANOPY_GENERATE_HAS_TOKENIZER
  std::optional<StreamDecoder> stream;
  if (text_mode && a.n == 1) {
    stream.emplace(*tokenizer);
    on_token = [&stream](size_t, int32_t, int32_t token) {
      const std::string piece = stream->push(token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
#endif
  const auto results = engine->generate({GenerateRequest{prompt, params}}, on_token);
  const auto& samples = results.at(0).samples;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (a.n > 1) fmt::print("--- sample {} ---\n", i);
#ifdef CANOPY_GENERATE_HAS_TOKENIZER
    if (text_mode) {
      if (stream) {
        fmt::print("{}\n", stream->finish());
      } else {
        fmt::print("{}\n", tokenizer->decode(samples[i].tokens));
      }
      continue;
    }
#endif
    fmt::print("{}\n", join_ids(samples[i].tokens));
  }
  std::fflush(stdout);
  if (a.verbose) {
    const EngineStats s = engine->stats();
    const double decode_rate = s.decode_seconds > 0 ? static_cast<double>(s.decode_step_tokens) / s.decode_seconds : 0;
    const double prefill_rate =
        s.prefill_seconds > 0 ? static_cast<double>(s.prefill_tokens_computed) / s.prefill_seconds : 0;
    fmt::print(stderr,
               "canopy: {} | device {} | prompt {} tokens | generated {} tokens in {} steps | prefill {:.1f} tok/s "
               "({} tokens computed, {:.3f} s) | decode {:.1f} tok/s ({:.3f} s)\n",
               engine->model_info().summary, a.device_args.device, prompt.size(), s.generated_tokens, s.steps, prefill_rate,
               s.prefill_tokens_computed, s.prefill_seconds, decode_rate, s.decode_seconds);
  }
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate continuations of one prompt");
  cmd->add_option("-m,--model", args->model, "Hugging Face model folder or .gguf file")->required();
  cmd->add_option("-p,--prompt", args->prompt, "Prompt text");
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as token ids, e.g. \"1 2 3\" (prints ids)");
  cmd->add_option("-n", args->n, "Samples of the prompt")->check(CLI::Range(1, 65536));
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate per sample at most")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temperature", args->temperature, "Sampling temperature (0: greedy)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass, in (0, 1]")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--top-k", args->top_k, "Keep the k most likely tokens (0: off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--seed", args->seed, "Random seed");
  cmd->add_flag("--chat", args->chat, "Format the prompt with the model's chat template");
  add_device_options(*cmd, args->device_args);
  cmd->add_flag("--no-prefix-sharing", args->no_prefix_sharing,
                "Every sequence prefills and reads its own copy of its prompt (the baseline)");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("-v,--verbose", args->verbose, "Print timing (prefill and decode tokens/s) to stderr");
  cmd->add_option("--threads", args->threads, "CPU threads (0: every core)")->check(CLI::Range(0, 4096));
  cmd->add_option("--kv-cache-mib", args->kv_cache_mib, "KV cache size in MiB (0: the device's default)");
  cmd->callback([args, &exit_code] {
    run_generate(*args);
    exit_code = 0;
  });
}

}  // namespace canopy::cli
