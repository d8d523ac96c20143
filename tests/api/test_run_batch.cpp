// `canopy run-batch` end to end, in-process, on the tiny random-weight Llama (with the tiny
// byte-level tokenizer of tests/data/api) and, when fetched, on SmolLM2: one result line per input
// line in input order with the right error codes, the summary's counts, results that match the
// engine run directly, identical greedy text with and without prefix sharing (fewer prefill
// tokens with it), stop strings, chat lines, output files written whole.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "api/cmd_run_batch.h"
#include "canopy/engine.h"
#include "core/error.h"
#include "testing/testing.h"
#include "tokenizer/tokenizer.h"

namespace canopy::cli {
namespace {

using Json = nlohmann::ordered_json;

const std::string kModel = testing::source_dir() + "/tests/data/models/tiny-llama";
const std::string kTokenizer = testing::source_dir() + "/tests/data/api/tiny-tokenizer";

struct BatchRun {
  std::vector<Json> results;  // result lines, when they went to stdout
  Json summary;               // the last line of stdout
  std::string progress;       // stderr
};

RunBatchArgs parse_args(std::vector<std::string> argv) {
  CLI::App app{"run-batch"};
  RunBatchArgs args;
  add_run_batch_options(app, args);
  std::reverse(argv.begin(), argv.end());  // CLI11 takes a reversed vector
  app.parse(argv);
  return args;
}

std::vector<std::string> tiny_args(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"-m", kModel, "--tokenizer", kTokenizer, "-i", "-", "-o", "-",
                                   "--threads", "1", "--kv-cache-mib", "8"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

BatchRun run(const std::string& input, const std::vector<std::string>& argv) {
  const RunBatchArgs args = parse_args(argv);
  std::istringstream in(input);
  std::ostringstream out, err;
  EXPECT_EQ(run_batch_command(args, in, out, err), 0);
  BatchRun r;
  r.progress = err.str();
  std::istringstream lines(out.str());
  std::string line;
  while (std::getline(lines, line)) r.results.push_back(Json::parse(line));
  EXPECT_FALSE(r.results.empty()) << "no summary line";
  if (!r.results.empty()) {
    r.summary = r.results.back();
    r.results.pop_back();
  }
  return r;
}

std::string text_of(const Json& result, size_t choice = 0) {
  const Json& c = result.at("response").at("body").at("choices").at(choice);
  return c.contains("text") ? c.at("text").get<std::string>() : c.at("message").at("content").get<std::string>();
}
std::string finish_of(const Json& result, size_t choice = 0) {
  return result.at("response").at("body").at("choices").at(choice).at("finish_reason").get<std::string>();
}
std::string code_of(const Json& result) {
  return result.at("error").is_null() ? "ok" : result.at("error").at("code").get<std::string>();
}

// What the engine and tokenizer give for the same greedy request, without run-batch.
std::string direct_greedy_text(const std::vector<int32_t>& prompt, int32_t max_tokens) {
  EngineOptions o;
  o.model_path = kModel;
  o.threads = 1;
  o.kv_cache_bytes = 8 << 20;
  const auto engine = Engine::create(o);
  GenerateRequest r{prompt, {}};
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  const auto tokens = engine->generate({r}).at(0).samples.at(0).tokens;
  return Tokenizer::load(kTokenizer).decode(tokens, /*skip_special=*/true);
}

#if __has_include("template/chat_template.h")
constexpr bool kHaveTemplates = true;
#else
constexpr bool kHaveTemplates = false;
#endif

TEST(RunBatch, MixedFileGivesOneResultPerLineInOrder) {
  std::string too_long = "[1";
  for (int i = 0; i < 600; ++i) too_long += ", 5";
  too_long += "]";
  const std::string input =
      R"({"custom_id": "first", "method": "POST", "url": "/v1/completions", "body": {"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0, "ignore_eos": true}})"
      "\n"
      R"({"prompt": "Water boils at", "n": 2, "max_tokens": 4, "temperature": 0.8, "seed": 5, "ignore_eos": true})"
      "\n"
      "{not json\n"
      "\n"
      R"({"custom_id": "emb", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}})"
      "\n"
      R"({"prompt": "x", "temperature": "hot"})"
      "\n"
      R"({"custom_id": "range", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x", "top_p": 2}})"
      "\n"
      R"({"custom_id": "first", "method": "POST", "url": "/v1/completions", "body": {"prompt": "again"}})"
      "\n"
      R"({"prompt": )" + too_long + "}\n" +
      R"({"prompt": [1, 600]})"
      "\n"
      R"({"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 3, "temperature": 0, "ignore_eos": true}})"
      "\n"
      R"({"prompt": "Rome", "n": 300, "max_tokens": 100})"
      "\n"
      R"({"prompt": [1, 17, 290], "max_tokens": 5, "temperature": 0, "ignore_eos": true, "logprobs": 0})"
      "\n";
  const BatchRun r = run(input, tiny_args());
  ASSERT_EQ(r.results.size(), 12u);  // 13 lines, one blank

  const std::vector<int> line_numbers = {1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  const std::vector<std::string> codes = {"ok",
                                          "ok",
                                          "invalid_json",
                                          "invalid_url",
                                          "invalid_request",
                                          "invalid_request",
                                          "duplicate_custom_id",
                                          "context_length_exceeded",
                                          "invalid_request",
                                          kHaveTemplates ? "ok" : "unsupported_parameter",
                                          "kv_cache_exceeded",
                                          "ok"};
  const std::vector<Json> custom_ids = {"first", "line-2", nullptr, "emb",     "line-6", "range",
                                        "first", "line-9", "line-10", "chat",  "line-12", "line-13"};
  for (size_t i = 0; i < r.results.size(); ++i) {
    const Json& res = r.results[i];
    EXPECT_EQ(res.at("id"), "batch_req_" + std::to_string(line_numbers[i])) << i;
    EXPECT_EQ(res.at("custom_id"), custom_ids[i]) << i;
    EXPECT_EQ(code_of(res), codes[i]) << res.dump();
    EXPECT_NE(res.at("response").is_null(), res.at("error").is_null()) << i;
    if (!res.at("error").is_null()) {
      EXPECT_FALSE(res["error"]["message"].get<std::string>().empty());
    }
  }
  EXPECT_EQ(r.results[6]["error"]["message"], "custom_id 'first' is already used by line 1");
  EXPECT_EQ(r.results[7]["error"]["message"],
            "the prompt has 601 tokens; the model's context is 512 tokens, which must also hold at least one "
            "generated token");
  EXPECT_EQ(r.results[8]["error"]["message"], "token id 600 is outside the vocabulary [0, 512)");

  // A successful completion: OpenAI's shape, and the text the engine gives directly.
  const Json& first = r.results[0]["response"];
  EXPECT_EQ(first["status_code"], 200);
  EXPECT_EQ(first["request_id"], "req_1");
  const Json& body = first["body"];
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"], "cmpl-1");
  EXPECT_EQ(body["model"], "tiny-llama");
  EXPECT_TRUE(body["created"].is_number_integer());
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_TRUE(body["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(finish_of(r.results[0]), "length");
  const auto prompt = Tokenizer::load(kTokenizer).encode("The capital of France is", /*add_special=*/true);
  EXPECT_EQ(prompt.front(), 1);  // the tokenizer's BOS
  EXPECT_EQ(body["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(body["usage"]["completion_tokens"], 6);
  EXPECT_EQ(body["usage"]["total_tokens"], prompt.size() + 6);
  EXPECT_EQ(text_of(r.results[0]), direct_greedy_text(prompt, 6));

  // n = 2 samples, and token ids as the prompt with logprobs of the chosen tokens.
  EXPECT_EQ(r.results[1]["response"]["body"]["choices"].size(), 2u);
  EXPECT_EQ(r.results[1]["response"]["body"]["usage"]["completion_tokens"], 8);
  const Json& ids_body = r.results[11]["response"]["body"];
  EXPECT_EQ(ids_body["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(text_of(r.results[11]), direct_greedy_text({1, 17, 290}, 5));
  const Json& lp = ids_body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 5u);
  ASSERT_EQ(lp["token_logprobs"].size(), 5u);
  ASSERT_EQ(lp["text_offset"].size(), 5u);
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (const auto& v : lp["token_logprobs"]) EXPECT_LE(v.get<double>(), 0.0);

  if (kHaveTemplates) {
    const Json& chat = r.results[9]["response"]["body"];
    EXPECT_EQ(chat["object"], "chat.completion");
    EXPECT_EQ(chat["id"], "chatcmpl-11");
    EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
    EXPECT_TRUE(chat["choices"][0]["message"]["content"].is_string());
    // "<s>user\nWhat is the capital of France?</s>\n<s>assistant\n": 19 tokens (tools/make_batch_fixtures.py).
    EXPECT_EQ(chat["usage"]["prompt_tokens"], 19);
  }

  // The summary counts every line and the engine's work.
  const Json& s = r.summary;
  const int64_t ok = kHaveTemplates ? 4 : 3;
  EXPECT_EQ(s["requests"], 12);
  EXPECT_EQ(s["succeeded"], ok);
  EXPECT_EQ(s["failed"], 12 - ok);
  EXPECT_EQ(s["samples"], ok + 1);
  int64_t generated = 0, logical_prompt = 0;
  for (const Json& res : r.results)
    if (code_of(res) == "ok") {
      const Json& usage = res["response"]["body"]["usage"];
      generated += usage["completion_tokens"].get<int64_t>();
      logical_prompt += usage["prompt_tokens"].get<int64_t>() * static_cast<int64_t>(res["response"]["body"]["choices"].size());
    }
  EXPECT_EQ(s["generated_tokens"], generated);
  EXPECT_EQ(s["prompt_tokens"], logical_prompt);
  EXPECT_GT(s["prefill_tokens_computed"].get<int64_t>(), 0);
  EXPECT_GT(s["seconds"].get<double>(), 0.0);
  EXPECT_NEAR(s["tokens_per_second"].get<double>(), static_cast<double>(generated) / s["seconds"].get<double>(), 1e-6);
  EXPECT_EQ(s["prefix_sharing"], true);
  EXPECT_EQ(s["device"], "cpu");
  EXPECT_EQ(s["model"], "tiny-llama");
  EXPECT_NE(r.progress.find("requests done"), std::string::npos) << r.progress;
}

// Questions over one shared document: the same greedy text with and without prefix sharing, and
// sharing prefills fewer tokens.
TEST(RunBatch, PrefixSharingGivesIdenticalGreedyTextWithLessPrefill) {
  const std::string document =
      "Many requests share a prefix: a long system prompt, a few-shot preamble, a document that every question is "
      "about. An engine that reads the same prefix once per sequence spends its time moving the same bytes again "
      "and again. Reading each shared prefix once per step turns the work into matrix products. ";
  const std::vector<std::string> questions = {"Question: what is shared?", "Question: what moves?",
                                              "Question: what is read once?", "Please summarize the text.",
                                              "Translate the sentence into French.", "Write a short poem."};
  std::string input;
  for (size_t i = 0; i < questions.size(); ++i) {
    Json line = {{"prompt", document + questions[i]}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true}};
    if (i == 2) line["n"] = 3;
    input += line.dump() + "\n";
  }
  const BatchRun shared = run(input, tiny_args({"-q"}));
  const BatchRun separate = run(input, tiny_args({"-q", "--no-prefix-sharing"}));
  ASSERT_EQ(shared.results.size(), questions.size());
  ASSERT_EQ(separate.results.size(), questions.size());
  for (size_t i = 0; i < questions.size(); ++i) {
    ASSERT_EQ(code_of(shared.results[i]), "ok");
    const size_t choices = i == 2 ? 3 : 1;
    for (size_t c = 0; c < choices; ++c) EXPECT_EQ(text_of(shared.results[i], c), text_of(separate.results[i], c)) << i;
  }
  EXPECT_EQ(shared.summary["prompt_tokens"], separate.summary["prompt_tokens"]);
  EXPECT_EQ(separate.summary["prefill_tokens_computed"], separate.summary["prompt_tokens"]);
  EXPECT_LT(shared.summary["prefill_tokens_computed"].get<int64_t>(),
            separate.summary["prefill_tokens_computed"].get<int64_t>() / 2);
  EXPECT_GT(shared.summary["unique_prompt_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(separate.summary["unique_prompt_tokens"], 0);
  EXPECT_EQ(separate.summary["prefix_sharing"], false);
  EXPECT_EQ(shared.progress, "");  // -q
}

TEST(RunBatch, StopStringsCutTheTextAndStopGenerating) {
  const Json base = {{"prompt", "The quick brown fox"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  const BatchRun free_run = run(base.dump() + "\n", tiny_args({"-q"}));
  const std::string full = text_of(free_run.results.at(0));
  // A stop string from the middle of the free text: two printable ASCII characters.
  size_t at = std::string::npos;
  for (size_t p = 1; p + 2 < full.size() / 2 + 2 && at == std::string::npos; ++p)
    if (std::isalpha(static_cast<unsigned char>(full[p])) && std::isalpha(static_cast<unsigned char>(full[p + 1])))
      at = p;
  ASSERT_NE(at, std::string::npos) << "no ASCII pair in '" << full << "'";
  const std::string stop = full.substr(at, 2);
  const size_t cut = full.find(stop);

  Json with_stop = base;
  with_stop["stop"] = {"never appears \x01", stop};
  Json absent = base;
  absent["stop"] = "\x01\x02\x03";
  const BatchRun r = run(with_stop.dump() + "\n" + absent.dump() + "\n", tiny_args({"-q"}));
  EXPECT_EQ(text_of(r.results.at(0)), full.substr(0, cut));
  EXPECT_EQ(finish_of(r.results.at(0)), "stop");
  const int64_t used = r.results[0]["response"]["body"]["usage"]["completion_tokens"].get<int64_t>();
  EXPECT_LT(used, 24);
  EXPECT_EQ(text_of(r.results.at(1)), full);
  EXPECT_EQ(finish_of(r.results.at(1)), "length");
  EXPECT_EQ(r.summary["generated_tokens"], used + 24);  // generation stopped at the stop string
}

TEST(RunBatch, OutputFileIsWrittenWholeAndTheSummaryGoesToStdout) {
  testing::TempDir dir;
  testing::write_file(dir.file("in.jsonl"), "{\"prompt\": \"Hello\", \"max_tokens\": 2}\n\n{\"prompt\": 5}\n");
  std::vector<std::string> argv = tiny_args({"-q"});
  argv[5] = dir.file("in.jsonl");
  argv[7] = dir.file("out.jsonl");
  const RunBatchArgs args = parse_args(argv);
  std::istringstream no_stdin;
  std::ostringstream out, err;
  EXPECT_EQ(run_batch_command(args, no_stdin, out, err), 0);
  const Json summary = Json::parse(out.str());  // one line: the summary only
  EXPECT_EQ(summary["requests"], 2);
  EXPECT_EQ(summary["failed"], 1);
  std::istringstream written(testing::read_file(dir.file("out.jsonl")));
  std::string line;
  std::vector<Json> lines;
  while (std::getline(written, line)) lines.push_back(Json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["id"], "batch_req_1");
  EXPECT_EQ(lines[1]["id"], "batch_req_3");
  size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 2u) << "a temporary file was left behind";
}

TEST(RunBatch, WholeRunFailuresAreErrors) {
  const auto message = [](std::vector<std::string> argv) -> std::string {
    try {
      const RunBatchArgs args = parse_args(std::move(argv));
      std::istringstream in("{\"prompt\": \"x\"}\n");
      std::ostringstream out, err;
      run_batch_command(args, in, out, err);
    } catch (const CLI::ParseError& e) {
      return std::string("parse: ") + e.what();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::vector<std::string> argv = tiny_args();
  argv[5] = "/nonexistent/in.jsonl";
  EXPECT_EQ(message(argv), "cannot open the input file '/nonexistent/in.jsonl'");
  argv = tiny_args();
  argv[7] = "/nonexistent/dir/out.jsonl";
  EXPECT_NE(message(argv).find("cannot write the output file '/nonexistent/dir/out.jsonl'"), std::string::npos);
  argv = tiny_args();
  argv[1] = "/nonexistent/model";
  EXPECT_NE(message(argv).find("does not exist"), std::string::npos);
  EXPECT_EQ(message(tiny_args({"--device", "tpu"})).rfind("parse: ", 0), 0u);
  EXPECT_EQ(message({"-m", kModel, "-o", "-"}).rfind("parse: ", 0), 0u);  // -i is required
}

#if __has_include("template/chat_template.h")
TEST(RunBatch, ChatTemplatesComeFromTheTokenizerFolderOrAFile) {
  const std::string chat_line =
      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0, "ignore_eos": true})"
      "\n";
  // The tokenizer given as a file: the template is looked for in the model folder, which has none.
  std::vector<std::string> argv = tiny_args({"-q"});
  argv[3] = kTokenizer + "/tokenizer.json";
  BatchRun r = run(chat_line, argv);
  EXPECT_EQ(code_of(r.results.at(0)), "template_error");
  EXPECT_NE(r.results[0]["error"]["message"].get<std::string>().find("has no chat template"), std::string::npos);

  testing::TempDir dir;
  testing::write_file(dir.file("plain.jinja"),
                      "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:");
  argv.push_back("--chat-template");
  argv.push_back(dir.file("plain.jinja"));
  r = run(chat_line, argv);
  ASSERT_EQ(code_of(r.results.at(0)), "ok") << r.results[0].dump();
  const auto expected = Tokenizer::load(kTokenizer).encode("user: Hi\nassistant:");
  EXPECT_EQ(r.results[0]["response"]["body"]["usage"]["prompt_tokens"], expected.size());

  testing::write_file(dir.file("strict.jinja"), "{{ raise_exception('only one message, please') }}");
  argv.back() = dir.file("strict.jinja");
  r = run(chat_line, argv);
  EXPECT_EQ(code_of(r.results.at(0)), "template_error");
  EXPECT_NE(r.results[0]["error"]["message"].get<std::string>().find("only one message, please"), std::string::npos);
}
#endif

// The real model: a completion with a stop string and (with chat templates) a chat question, greedy.
TEST(RunBatch, SmolLM2AnswersGreedily) {
  const std::string model = testing::default_model_path();
  if (model.empty()) GTEST_SKIP() << "SmolLM2 not fetched: run scripts/fetch_model.sh";
  std::string input = R"({"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0, "stop": "."})"
                      "\n";
  if (kHaveTemplates)
    input +=
        R"({"custom_id": "q", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "system", "content": "Answer in one short sentence."}, {"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16, "temperature": 0}})"
        "\n";
  const BatchRun r = run(input, {"-m", model, "-i", "-", "-o", "-", "-q"});
  ASSERT_EQ(r.results.size(), kHaveTemplates ? 2u : 1u);
  ASSERT_EQ(code_of(r.results[0]), "ok") << r.results[0].dump();
  EXPECT_EQ(text_of(r.results[0]), " Paris");
  EXPECT_EQ(finish_of(r.results[0]), "stop");
  EXPECT_EQ(r.results[0]["response"]["body"]["model"], "SmolLM2-135M-Instruct.Q4_1");
  if (kHaveTemplates) {
    ASSERT_EQ(code_of(r.results[1]), "ok") << r.results[1].dump();
    EXPECT_NE(text_of(r.results[1]).find("Paris"), std::string::npos) << text_of(r.results[1]);
    EXPECT_EQ(finish_of(r.results[1]), "stop");  // the model ends its turn
  }
}

}  // namespace
}  // namespace canopy::cli
