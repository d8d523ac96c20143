// `canopy run-batch` as a function of streams (batch_runner.h): read and check every line, turn
// the valid ones into token prompts, run them all in one generate() call so that the engine plans
// the whole batch around its prefix forest, then write the results in input order.
#include "api/batch_runner.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "api/batch_line.h"
#include "api/batch_progress.h"
#include "api/openai_response.h"
#include "api/sample_text.h"
#include "canopy/engine.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

#if __has_include("template/chat_template.h")
#include "template/chat_template.h"
#define CANOPY_RUN_BATCH_HAS_TEMPLATES 1
#endif

namespace canopy::cli {

nlohmann::ordered_json BatchSummary::to_json() const {
  return nlohmann::ordered_json{{"requests", requests},
                                {"succeeded", succeeded},
                                {"failed", failed},
                                {"samples", samples},
                                {"prompt_tokens", prompt_tokens},
                                {"unique_prompt_tokens", unique_prompt_tokens},
                                {"prefill_tokens_computed", prefill_tokens_computed},
                                {"generated_tokens", generated_tokens},
                                {"seconds", seconds},
                                {"tokens_per_second", tokens_per_second()},
                                {"total_seconds", total_seconds},
                                {"prefix_sharing", prefix_sharing},
                                {"device", device},
                                {"model", model}};
}

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// One non-blank input line on its way through the batch.
struct Line {
  ParsedLine parsed;
  GenerateRequest generate;   // when the line runs
  size_t engine_index = 0;    // its index in the generate() call
  std::vector<std::optional<SampleText>> texts;  // one per sample, made at its first token
  int32_t samples_left = 0;
  std::optional<std::string> callback_error;     // a failure while decoding its tokens

  bool runs() const { return !parsed.error.has_value(); }
  void fail(std::string code, std::string message) {
    parsed.error = LineError{std::move(code), std::move(message)};
  }
};

// The name a response gives the model: the file or folder name, without ".gguf".
std::string model_name(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && !p.has_filename()) p = p.parent_path();  // "models/x/" names x
  std::string name = p.filename().string();
  if (p.extension() == ".gguf") name = p.stem().string();
  return name.empty() ? path : name;
}

std::vector<Line> read_lines(std::istream& input, const RunBatchOptions& options) {
  std::vector<Line> lines;
  std::string text;
  int64_t number = 0;
  std::unordered_map<std::string, int64_t> first_use;  // custom_id -> line number
  while (std::getline(input, text)) {
    ++number;
    if (is_blank_line(text)) continue;
    RequestDefaults defaults;
    defaults.chat_max_tokens = options.chat_max_tokens;
    defaults.seed = options.seed + static_cast<uint64_t>(number);
    Line line;
    line.parsed = parse_batch_line(text, number, defaults);
    if (line.parsed.custom_id_given) {
      const auto [it, fresh] = first_use.emplace(line.parsed.custom_id.get<std::string>(), number);
      if (!fresh)
        line.fail("duplicate_custom_id",
                  fmt::format("custom_id '{}' is already used by line {}", it->first, it->second));
    }
    lines.push_back(std::move(line));
  }
  CANOPY_CHECK(!input.bad(), "reading the input failed");
  return lines;
}

// Turns each line's prompt into token ids and checks it against the model; a line that cannot
// run gets its error.
class Preparer {
 public:
  Preparer(const RunBatchOptions& options, const Tokenizer& tokenizer, const Engine& engine)
      : options_(options), tokenizer_(tokenizer), engine_(engine) {}

  void prepare(Line& line) {
    try {
      const OpenAiRequest& r = *line.parsed.request;
      line.generate.params = r.params;
      if (r.endpoint == Endpoint::ChatCompletions) {
        line.generate.prompt = tokenizer_.encode(render_chat(r), /*add_special=*/false);
      } else if (r.prompt_text) {
        line.generate.prompt = tokenizer_.encode(*r.prompt_text, /*add_special=*/true);
      } else {
        line.generate.prompt = r.prompt_ids;
      }
      check(line.generate);
    } catch (const RequestError& e) {
      line.fail(e.code(), e.what());
    } catch (const Error& e) {
      line.fail("invalid_request", e.what());
    }
  }

 private:
  void check(const GenerateRequest& g) const {
    const ModelInfo& info = engine_.model_info();
    if (g.prompt.empty()) throw RequestError("invalid_request", "the prompt is empty after tokenization");
    const auto length = static_cast<int64_t>(g.prompt.size());
    if (length >= info.max_context)
      throw RequestError("context_length_exceeded",
                         fmt::format("the prompt has {} tokens; the model's context is {} tokens, which must also "
                                     "hold at least one generated token",
                                     length, info.max_context));
    try {
      engine_.check_request(g);
    } catch (const CapacityError& e) {
      throw RequestError("kv_cache_exceeded", e.what());
    } catch (const Error& e) {
      throw RequestError("invalid_request", e.what());
    }
  }

#ifdef CANOPY_RUN_BATCH_HAS_TEMPLATES
  std::string render_chat(const OpenAiRequest& r) {
    const ChatTemplate& tmpl = chat_template();
    ChatRenderOptions render;
    render.add_generation_prompt = true;
    render.variables = r.chat_template_kwargs;
    try {
      return tmpl.render(r.messages, render);
    } catch (const Error& e) {
      throw RequestError("template_error", fmt::format("the chat template refused the messages: {}", e.what()));
    }
  }

  // The template, loaded at the first chat line: from --chat-template, else the tokenizer's
  // folder or GGUF file when one is given, else the model. A model without one fails every chat
  // line, not the batch.
  const ChatTemplate& chat_template() {
    if (!template_ && !template_error_) {
      try {
        if (!options_.chat_template.empty()) {
          template_ = ChatTemplate::from_file(options_.chat_template);
          for (const auto& [name, value] : model_special_tokens(template_source_model()))
            template_->set_special_token(name, value);
        } else {
          template_ = ChatTemplate::for_model(template_source_model());
          if (!template_)
            template_error_ = fmt::format("'{}' has no chat template (give one with --chat-template FILE)",
                                          template_source_model());
        }
      } catch (const Error& e) {
        template_error_ = fmt::format("cannot load the chat template: {}", e.what());
      }
    }
    if (template_error_) throw RequestError("template_error", *template_error_);
    return *template_;
  }

  std::string template_source_model() const {
    namespace fs = std::filesystem;
    const std::string& t = options_.tokenizer;
    if (!t.empty() && (fs::is_directory(t) || fs::path(t).extension() == ".gguf")) return t;
    return options_.model;
  }

  std::optional<ChatTemplate> template_;
  std::optional<std::string> template_error_;
#else
  std::string render_chat(const OpenAiRequest&) {
    throw RequestError("unsupported_parameter", "/v1/chat/completions needs chat templates, which this build lacks");
  }
#endif

  const RunBatchOptions& options_;
  const Tokenizer& tokenizer_;
  const Engine& engine_;
};

// Runs every line that can run in one generate() call and collects each sample's text.
void generate_all(std::vector<Line>& lines, Engine& engine, const Tokenizer& tokenizer, BatchProgress& progress,
                  std::vector<GenerateResult>& results, std::vector<Line*>& running) {
  std::vector<GenerateRequest> requests;
  for (Line& line : lines) {
    if (!line.runs()) continue;
    line.engine_index = requests.size();
    line.texts.resize(static_cast<size_t>(line.generate.params.n));
    line.samples_left = line.generate.params.n;
    running.push_back(&line);
    requests.push_back(std::move(line.generate));
  }
  if (requests.empty()) return;
  const TokenCallback on_token = [&](size_t r, int32_t s, int32_t token) {
    progress.token();
    Line& line = *running[r];
    if (line.callback_error) return false;
    try {
      std::optional<SampleText>& text = line.texts[static_cast<size_t>(s)];
      if (!text) {
        const OpenAiRequest& q = *line.parsed.request;
        text.emplace(tokenizer, q.stop, q.endpoint == Endpoint::Completions);
      }
      return text->push(token);
    } catch (const Error& e) {  // never let one request's decoding fail the batch
      line.callback_error = e.what();
      return false;
    }
  };
  const FinishCallback on_finish = [&](size_t r, int32_t, FinishReason) {
    if (--running[r]->samples_left == 0) progress.request_done();
  };
  try {
    results = engine.generate(requests, on_token, on_finish);
  } catch (const Error& e) {
    for (Line* line : running) line->fail("engine_error", fmt::format("the batch's generation failed: {}", e.what()));
    results.clear();
  }
  // The requests moved into the call; give each line its prompt back for the usage counts.
  for (Line* line : running) line->generate = std::move(requests[line->engine_index]);
}

Json error_line(const Line& line) {
  return Json{{"id", fmt::format("batch_req_{}", line.parsed.line_number)},
              {"custom_id", line.parsed.custom_id},
              {"response", nullptr},
              {"error", {{"code", line.parsed.error->code}, {"message", line.parsed.error->message}}}};
}

Json result_line(Line& line, const GenerateResult& result, const Tokenizer& tokenizer, const std::string& model,
                 int64_t created) {
  const OpenAiRequest& q = *line.parsed.request;
  const bool chat = q.endpoint == Endpoint::ChatCompletions;
  ResponseOutput response;
  response.endpoint = q.endpoint;
  response.id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", line.parsed.line_number);
  response.created = created;
  response.model = model;
  response.logprobs = q.logprobs;
  response.prompt_tokens = static_cast<int64_t>(line.generate.prompt.size());
  for (size_t s = 0; s < result.samples.size(); ++s) {
    const Sample& sample = result.samples[s];
    std::optional<SampleText>& text = line.texts[s];
    if (!text) text.emplace(tokenizer, q.stop, !chat);  // a sample that ended before its first token
    text->finish();
    ChoiceOutput choice;
    choice.text = text->text();
    choice.stopped = sample.finish == FinishReason::Stop || text->stopped();
    if (q.logprobs) {
      const auto& offsets = text->token_offsets();
      for (size_t t = 0; t < sample.tokens.size() && t < offsets.size(); ++t) {
        if (text->stopped() && offsets[t] >= choice.text.size()) break;  // past the stop string
        const int32_t id = sample.tokens[t];
        const bool known = id >= 0 && id < tokenizer.vocab_size();
        choice.logprobs.push_back(
            TokenLogprob{known ? std::string(tokenizer.token_bytes(id)) : std::string(), sample.logprobs[t], offsets[t]});
      }
    }
    response.completion_tokens += static_cast<int64_t>(sample.tokens.size());
    response.choices.push_back(std::move(choice));
  }
  return Json{{"id", fmt::format("batch_req_{}", line.parsed.line_number)},
              {"custom_id", line.parsed.custom_id},
              {"response",
               {{"status_code", 200},
                {"request_id", fmt::format("req_{}", line.parsed.line_number)},
                {"body", response_body(response)}}},
              {"error", nullptr}};
}

}  // namespace

BatchSummary run_batch(const RunBatchOptions& options, std::istream& input, std::ostream& output,
                       std::ostream& progress_out) {
  const auto start = Clock::now();
  BatchSummary summary;
  summary.prefix_sharing = options.prefix_sharing;
  summary.device = options.device;
  summary.model = model_name(options.model);
  CANOPY_CHECK(options.kv_cache_mib >= 0 && options.kv_cache_mib <= (int64_t{1} << 30),
               "--kv-cache-mib {} is out of range", options.kv_cache_mib);

  std::vector<Line> lines = read_lines(input, options);
  summary.requests = static_cast<int64_t>(lines.size());

  CANOPY_CHECK(!options.random_weights || !options.tokenizer.empty(),
               "--random-weights: the model config has no tokenizer; give one with --tokenizer");
  const Tokenizer tokenizer = Tokenizer::load(options.tokenizer.empty() ? options.model : options.tokenizer);
  EngineOptions engine_options;
  engine_options.model_path = options.model;
  engine_options.device = options.device;
  engine_options.gpu_memory_utilization = options.gpu_memory_utilization;
  engine_options.cuda_graphs = !options.no_cuda_graphs;
  engine_options.random_weights = options.random_weights;
  engine_options.prefix_sharing = options.prefix_sharing;
  engine_options.threads = options.threads;
  engine_options.kv_cache_bytes = options.kv_cache_mib << 20;
  if (options.max_step_tokens > 0) engine_options.max_step_tokens = options.max_step_tokens;
  if (options.max_step_sequences > 0) engine_options.max_step_sequences = options.max_step_sequences;
  const auto engine = Engine::create(engine_options);

  Preparer preparer(options, tokenizer, *engine);
  for (Line& line : lines)
    if (line.runs()) preparer.prepare(line);

  int64_t runnable = 0;
  for (const Line& line : lines) runnable += line.runs() ? 1 : 0;
  if (!options.quiet)
    progress_out << fmt::format("run-batch: {} requests ({} invalid) on {} ({}), prefix sharing {}\n", lines.size(),
                                static_cast<int64_t>(lines.size()) - runnable, engine->model_info().summary,
                                options.device, options.prefix_sharing ? "on" : "off");
  BatchProgress progress(options.quiet ? nullptr : &progress_out, runnable, options.progress_interval_seconds);
  std::vector<GenerateResult> results;
  std::vector<Line*> running;
  const auto generate_start = Clock::now();
  generate_all(lines, *engine, tokenizer, progress, results, running);
  summary.seconds = std::chrono::duration<double>(Clock::now() - generate_start).count();
  progress.finish();

  const auto created = static_cast<int64_t>(std::time(nullptr));
  for (Line& line : lines) {
    if (line.runs() && line.callback_error)
      line.fail("internal_error", fmt::format("decoding the generated tokens failed: {}", *line.callback_error));
    if (!line.runs()) {
      output << error_line(line).dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
      ++summary.failed;
      continue;
    }
    const GenerateResult& result = results.at(line.engine_index);
    output << result_line(line, result, tokenizer, summary.model, created).dump(-1, ' ', false,
                                                                               Json::error_handler_t::replace)
           << '\n';
    ++summary.succeeded;
    summary.samples += static_cast<int64_t>(result.samples.size());
  }
  output.flush();
  CANOPY_CHECK(!output.fail(), "writing the output failed");

  const EngineStats stats = engine->stats();
  summary.prompt_tokens = stats.prompt_tokens;
  summary.unique_prompt_tokens = stats.unique_prompt_tokens;
  summary.prefill_tokens_computed = stats.prefill_tokens_computed;
  summary.generated_tokens = stats.generated_tokens;
  summary.total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace canopy::cli
