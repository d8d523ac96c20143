#include "testing/testing.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace canopy::testing {

std::string shared_dir() {
  if (const char* v = std::getenv("CANOPY_SHARED_DIR")) return v;
  return CANOPY_SHARED_DIR;
}

std::string source_dir() { return CANOPY_SOURCE_DIR; }

std::string default_model_path() {
  std::vector<std::string> candidates;
  if (const char* v = std::getenv("CANOPY_MODEL")) candidates.emplace_back(v);
  if (const char* v = std::getenv("CANOPY_CACHE")) candidates.push_back(std::string(v) + "/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (const char* v = std::getenv("HOME")) candidates.push_back(std::string(v) + "/.cache/canopy/SmolLM2-135M-Instruct.Q4_1.gguf");
  for (const auto& c : candidates)
    if (std::filesystem::is_regular_file(c)) return c;
  return "";
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "canopy-test-XXXXXX").string();
  char* p = ::mkdtemp(tmpl.data());
  if (p == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

uint64_t test_seed() {
  static const uint64_t seed = [] {
    uint64_t s = 20261125;
    if (const char* v = std::getenv("CANOPY_TEST_SEED")) s = std::strtoull(v, nullptr, 10);
    return s;
  }();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace canopy::testing
