// Single-core tokenizer throughput (MB/s of input text) on English prose and on code.
//
//   build/bench/tokenizer/bench_tokenizer [--benchmark_filter=...]
//
// Prose: the licence texts under /usr/share/common-licenses (~300 KB of English); code: canopy's
// own sources (src/**.h, src/**.cpp). CANOPY_BENCH_PROSE / CANOPY_BENCH_CODE name other files.
// Tokenizers: those under ../shared/data/tokenizers, and the default model's GGUF when fetched
// (CANOPY_MODEL or ~/.cache/canopy). "cold" encodes the text once with a freshly loaded
// tokenizer (empty pre-token cache); "warm" encodes it again and again.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string shared_dir() {
  if (const char* v = std::getenv("CANOPY_SHARED_DIR")) return v;
  return CANOPY_SHARED_DIR;
}

std::string corpus(const char* env, const std::vector<fs::path>& roots, const std::vector<std::string>& exts) {
  if (const char* v = std::getenv(env)) return read(v);
  std::string text;
  for (const fs::path& root : roots) {
    if (!fs::exists(root)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root))
      if (e.is_regular_file() && (exts.empty() || std::find(exts.begin(), exts.end(), e.path().extension()) != exts.end()))
        files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) text += read(f);
  }
  return text;
}

const std::string& prose() {
  static const std::string text = corpus("CANOPY_BENCH_PROSE", {"/usr/share/common-licenses"}, {});
  return text;
}

const std::string& code() {
  static const std::string text = corpus("CANOPY_BENCH_CODE", {fs::path(CANOPY_SOURCE_DIR) / "src"}, {".h", ".cpp"});
  return text;
}

std::string model_path() {
  if (const char* v = std::getenv("CANOPY_MODEL")) return v;
  if (const char* h = std::getenv("HOME")) return std::string(h) + "/.cache/canopy/SmolLM2-135M-Instruct.Q4_1.gguf";
  return "";
}

std::map<std::string, std::string> tokenizer_paths() {
  const std::string dir = shared_dir() + "/data/tokenizers/";
  std::map<std::string, std::string> paths = {
      {"llama3", dir + "llama3"}, {"qwen3", dir + "qwen3"}, {"mistral", dir + "mistral"}, {"gpt2", dir + "gpt2"}};
  paths["smollm2_gguf"] = model_path();
  std::erase_if(paths, [](const auto& entry) {
    if (fs::exists(entry.second)) return false;
    std::fprintf(stderr, "bench_tokenizer: %s not found, skipped\n", entry.second.c_str());
    return true;
  });
  return paths;
}

void encode_warm(benchmark::State& state, const std::string& path, const std::string* text) {
  const canopy::Tokenizer tok = canopy::Tokenizer::load(path);
  size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tok.encode(*text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
  state.counters["bytes_per_token"] = static_cast<double>(text->size()) / static_cast<double>(tokens);
}

void encode_cold(benchmark::State& state, const std::string& path, const std::string* text) {
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = std::make_unique<canopy::Tokenizer>(canopy::Tokenizer::load(path));
    state.ResumeTiming();
    const auto ids = tok->encode(*text);
    benchmark::DoNotOptimize(ids.data());
    state.PauseTiming();
    tok.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
}

void decode_stream(benchmark::State& state, const std::string& path, const std::string* text) {
  const canopy::Tokenizer tok = canopy::Tokenizer::load(path);
  const auto ids = tok.encode(*text);
  for (auto _ : state) {
    canopy::StreamDecoder dec(tok);
    size_t bytes = 0;
    for (const int32_t id : ids) bytes += dec.push(id).size();
    bytes += dec.finish().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& [name, path] : tokenizer_paths()) {
    for (const auto& [kind, text] : {std::pair{"prose", &prose()}, std::pair{"code", &code()}}) {
      benchmark::RegisterBenchmark(("encode_warm/" + name + "/" + kind).c_str(), encode_warm, path, text)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("encode_cold/" + name + "/" + kind).c_str(), encode_cold, path, text)
          ->Unit(benchmark::kMillisecond)
          ->Iterations(3);
      benchmark::RegisterBenchmark(("decode_stream/" + name + "/" + kind).c_str(), decode_stream, path, text)
          ->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
