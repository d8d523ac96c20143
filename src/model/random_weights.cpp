// LlamaModel::load_random: models of real size with random weights, made on the backend's device.
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/llama.h"
#include "sampling/random.h"

namespace canopy {

namespace {

class RandomMaker {
 public:
  RandomMaker(Backend& backend, uint64_t seed) : backend_(backend), seed_(seed) {}

  // [rows, cols] in the backend's weight dtype, uniform with variance 1 / cols (fan-in).
  DeviceTensor matrix(int64_t rows, int64_t cols) {
    const float scale = static_cast<float>(std::sqrt(3.0 / static_cast<double>(cols)));
    return backend_.random_tensor(backend_.weight_dtype(), Shape{rows, cols}, scale, next_seed());
  }
  // The embedding table: uniform in [-1, 1) (the first norm rescales it).
  DeviceTensor table(int64_t rows, int64_t cols) {
    return backend_.random_tensor(backend_.weight_dtype(), Shape{rows, cols}, 1.0f, next_seed());
  }
  DeviceTensor ones(int64_t n) {
    const std::vector<float> host(static_cast<size_t>(n), 1.0f);
    return backend_.upload(host.data(), Shape{n}, DType::F32);
  }
  DeviceTensor bias(int64_t n) { return backend_.random_tensor(DType::F32, Shape{n}, 0.1f, next_seed()); }

 private:
  uint64_t next_seed() { return sample_seed(seed_, counter_++); }

  Backend& backend_;
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace

std::unique_ptr<LlamaModel> LlamaModel::load_random(const std::string& config_json, Backend& backend,
                                                    StepCapacity capacity, uint64_t seed) {
  std::ifstream file(config_json, std::ios::binary);
  CANOPY_CHECK(file.good(), "random weights: cannot open the model config '{}'", config_json);
  std::stringstream text;
  text << file.rdbuf();
  ModelConfig c = parse_hf_config(text.str(), "", config_json);

  RandomMaker make(backend, seed);
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t QD = c.q_dim(), KVD = c.kv_dim();
  LlamaWeights w;
  w.embed = make.table(V, H);
  w.final_norm = make.ones(H);
  if (!c.tie_word_embeddings) w.lm_head = make.matrix(V, H);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (LayerWeights& l : w.layers) {
    l.attn_norm = make.ones(H);
    l.w_qkv = make.matrix(QD + 2 * KVD, H);
    if (c.qkv_bias) l.b_qkv = make.bias(QD + 2 * KVD);
    l.wo = make.matrix(H, QD);
    if (c.o_bias) l.bo = make.bias(H);
    l.mlp_norm = make.ones(H);
    l.w_gate_up = make.matrix(2 * I, H);
    l.w_down = make.matrix(H, I);
  }
  return std::make_unique<LlamaModel>(backend, std::move(c), std::move(w), capacity);
}

}  // namespace canopy
