// Helpers for canopy's tests: where test data lives, seeded random inputs, temporary folders.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace canopy::testing {

// ../shared beside the checkout (real tokenizers, chat templates); CANOPY_SHARED_DIR overrides.
std::string shared_dir();
// The checkout's root (for tests/data/...).
std::string source_dir();
// The default model (SmolLM2-135M-Instruct Q4_1 GGUF) if scripts/fetch_model.sh has fetched it,
// else an empty string: tests that need it skip with a message naming the script.
std::string default_model_path();

// A fresh, empty temporary folder, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The seed for randomized tests: CANOPY_TEST_SEED if set, else a fixed default; recorded in the
// test output so that any failure can be replayed.
uint64_t test_seed();
std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo = -1.0f, float hi = 1.0f);

void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace canopy::testing
