// `canopy generate`: continue prompts (n samples each) with a model, on the command line.
//
// Prompts are text (-p, repeatable, tokenized with the model's own tokenizer; --chat renders each as
// a user message with the model's chat template, after the --system message) or token ids
// (--prompt-ids, then the output is ids too). All prompts run as one batch, so common prefixes are
// prefilled and attended once. One prompt with n = 1 streams to stdout as it is generated;
// otherwise each sample is printed after a "--- sample i ---" (or "--- prompt p, sample i ---")
// line. --verbose prints token counts and timing to stderr.
#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "api/commands.h"
#include "canopy/engine.h"
#include "core/error.h"

#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace canopy::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  std::string system;
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

// The token ids of every prompt: -p texts (tokenized, or rendered with the chat template first
// under --chat) or one --prompt-ids list.
std::vector<std::vector<int32_t>> prompt_ids_of(const GenerateArgs& a, const std::optional<Tokenizer>& tokenizer) {
  std::vector<std::vector<int32_t>> prompts;
  if (!tokenizer) {
    prompts.push_back(parse_ids(a.prompt_ids));
    return prompts;
  }
  std::optional<ChatTemplate> chat_template;
  if (a.chat) {
    chat_template = ChatTemplate::for_model(a.model);
    CANOPY_CHECK(chat_template.has_value(), "--chat: the model '{}' has no chat template", a.model);
  }
  for (size_t i = 0; i < a.prompts.size(); ++i) {
    std::vector<int32_t> ids;
    if (chat_template) {
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
      messages.push_back({{"role", "user"}, {"content", a.prompts[i]}});
      // The rendered prompt holds the template's special tokens already (BOS included).
      ids = tokenizer->encode(chat_template->render(messages), /*add_special=*/false);
    } else {
      ids = tokenizer->encode(a.system + a.prompts[i], /*add_special=*/true);
    }
    CANOPY_CHECK(!ids.empty(), "prompt {} is empty after tokenization", i);
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

void run_generate(const GenerateArgs& a) {
  CANOPY_CHECK(a.prompts.empty() != a.prompt_ids.empty(), "give exactly one of -p TEXT (repeatable) and --prompt-ids IDS");
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

  const bool text_mode = !a.prompts.empty();
  CANOPY_CHECK(!a.device_args.random_weights || !text_mode,
               "--random-weights: the model has no tokenizer; give the prompt as --prompt-ids");
  CANOPY_CHECK(text_mode || (!a.chat && a.system.empty()), "--chat and --system need text prompts (-p)");
  std::optional<Tokenizer> tokenizer;
  if (text_mode) tokenizer = Tokenizer::load(a.model);
  const std::vector<std::vector<int32_t>> prompts = prompt_ids_of(a, tokenizer);

  EngineOptions options;
  options.model_path = a.model;
  apply_device_args(a.device_args, options);
  options.prefix_sharing = !a.no_prefix_sharing;
  options.threads = a.threads;
  options.kv_cache_bytes = a.kv_cache_mib << 20;
  const auto engine = Engine::create(options);

  // One prompt, one sample, text: stream it as it is generated.
  TokenCallback on_token;
  std::optional<StreamDecoder> stream;
  if (text_mode && a.n == 1 && prompts.size() == 1) {
    stream.emplace(*tokenizer, /*skip_special=*/false, /*at_text_start=*/false);
    on_token = [&stream](size_t, int32_t, int32_t token) {
      const std::string piece = stream->push(token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
  }
  std::vector<GenerateRequest> requests;
  for (const auto& ids : prompts) requests.push_back(GenerateRequest{ids, params});
  const auto results = engine->generate(requests, on_token);
  for (size_t p = 0; p < results.size(); ++p) {
    const auto& samples = results[p].samples;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (results.size() > 1) {
        fmt::print("--- prompt {}, sample {} ---\n", p, i);
      } else if (a.n > 1) {
        fmt::print("--- sample {} ---\n", i);
      }
      if (stream) {
        fmt::print("{}\n", stream->finish());
      } else if (text_mode) {
        StreamDecoder decoder(*tokenizer, /*skip_special=*/false, /*at_text_start=*/false);
        std::string text;
        for (int32_t t : samples[i].tokens) text += decoder.push(t);
        fmt::print("{}{}\n", text, decoder.finish());
      } else {
        fmt::print("{}\n", join_ids(samples[i].tokens));
      }
    }
  }
  std::fflush(stdout);
  if (a.verbose) {
    const EngineStats s = engine->stats();
    const double decode_rate = s.decode_seconds > 0 ? static_cast<double>(s.decode_step_tokens) / s.decode_seconds : 0;
    const double prefill_rate =
        s.prefill_seconds > 0 ? static_cast<double>(s.prefill_tokens_computed) / s.prefill_seconds : 0;
    fmt::print(stderr,
               "canopy: {} | device {} | {} prompt(s) x {} sample(s): {} prompt tokens, {} prefilled | generated {} "
               "tokens in {} steps | prefill {:.1f} tok/s ({:.3f} s) | decode {:.1f} tok/s ({:.3f} s)\n",
               engine->model_info().summary, a.device_args.device, prompts.size(), a.n, s.prompt_tokens,
               s.prefill_tokens_computed, s.generated_tokens, s.steps, prefill_rate, s.prefill_seconds, decode_rate,
               s.decode_seconds);
  }
}

}  // namespace

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate continuations of prompts (n samples each)");
  cmd->add_option("-m,--model", args->model, "Hugging Face model folder or .gguf file")->required();
  cmd->add_option("-p,--prompt", args->prompts,
                  "Prompt text; repeat for several prompts (they run as one batch, sharing common prefixes)");
  cmd->add_option("--system", args->system,
                  "A system prompt shared by every prompt (a system message with --chat, else prepended text)");
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
