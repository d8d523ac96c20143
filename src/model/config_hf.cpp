// ModelConfig from a Hugging Face folder: config.json (+ generation_config.json).
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/config.h"

namespace canopy {
namespace {

using nlohmann::json;

// A value for an error message: scalars as written, anything else by its kind. Dumping an
// arbitrary value could recurse as deep as its nesting, which the file controls (a value nested a
// million arrays deep overflowed the stack), and could put megabytes into one message.
std::string describe(const json& v) {
  if (v.is_number() || v.is_boolean() || v.is_null()) return v.dump();
  if (v.is_string() && v.get_ref<const std::string&>().size() <= 64) return v.dump();
  return fmt::format("a JSON {}", v.type_name());
}

// Typed access to one JSON object with errors that name the file and the key.
class JsonFields {
 public:
  JsonFields(const json& object, std::string origin) : j_(object), origin_(std::move(origin)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t get_int(const char* key) const {
    CANOPY_CHECK(has(key), "{}: missing required key '{}'", origin_, key);
    return as_int(j_.at(key), key);
  }
  int64_t get_int(const char* key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

  double get_number(const char* key) const {
    CANOPY_CHECK(has(key), "{}: missing required key '{}'", origin_, key);
    const json& v = j_.at(key);
    CANOPY_CHECK(v.is_number(), "{}: key '{}' must be a number, got {}", origin_, key, describe(v));
    return v.get<double>();
  }
  double get_number(const char* key, double fallback) const { return has(key) ? get_number(key) : fallback; }

  bool get_bool(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    CANOPY_CHECK(v.is_boolean(), "{}: key '{}' must be true or false, got {}", origin_, key, describe(v));
    return v.get<bool>();
  }

  std::string get_string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_.at(key);
    CANOPY_CHECK(v.is_string(), "{}: key '{}' must be a string, got {}", origin_, key, describe(v));
    return v.get<std::string>();
  }

  // An int or a list of ints (eos_token_id); empty when absent.
  std::vector<int64_t> get_int_list(const char* key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    const json& v = j_.at(key);
    if (v.is_array()) {
      CANOPY_CHECK(v.size() <= 1024, "{}: key '{}' has {} entries (at most 1024)", origin_, key, v.size());
      for (const json& e : v) out.push_back(as_int(e, key));
    } else {
      out.push_back(as_int(v, key));
    }
    return out;
  }

  const json& raw() const { return j_; }
  const std::string& origin() const { return origin_; }

 private:
  int64_t as_int(const json& v, const char* key) const {
    if (v.is_number_unsigned()) {
      CANOPY_CHECK(v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), "{}: key '{}' is too large", origin_, key);
      return static_cast<int64_t>(v.get<uint64_t>());
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    // Some writers store integers as 4096.0.
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::abs(d) < 9.0e15 && d == std::floor(d)) return static_cast<int64_t>(d);
    }
    fail("{}: key '{}' must be an integer, got {}", origin_, key, describe(v));
  }

  const json& j_;
  std::string origin_;
};

json parse_json(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers like 1e400
    fail("{}: invalid JSON: {}", origin, e.what());
  }
  CANOPY_CHECK(j.is_object(), "{}: expected a JSON object at the top level", origin);
  return j;
}

// The architecture: "architectures"[0], or else derived from "model_type".
std::string read_architecture(const JsonFields& f) {
  if (f.has("architectures")) {
    const json& a = f.raw().at("architectures");
    CANOPY_CHECK(a.is_array() && !a.empty() && a.at(0).is_string(),
                 "{}: 'architectures' must be a non-empty list of strings", f.origin());
    return a.at(0).get<std::string>();
  }
  const std::string type = f.get_string("model_type", "");
  if (type == "llama") return "LlamaForCausalLM";
  if (type == "mistral") return "MistralForCausalLM";
  if (type == "qwen2") return "Qwen2ForCausalLM";
  CANOPY_CHECK(!type.empty(), "{}: missing required key 'architectures' (or 'model_type')", f.origin());
  fail("{}: unsupported model_type '{}' (supported architectures: {})", f.origin(), type,
       fmt::join(supported_hf_architectures(), ", "));
}

// Rope parameters: transformers >= 5 writes "rope_parameters" (with rope_theta inside); older
// versions write "rope_theta" and "rope_scaling" at the top level.
void read_rope(const JsonFields& f, ModelConfig& c) {
  c.rope_theta = f.get_number("rope_theta", 10000.0);
  const char* key = f.has("rope_parameters") ? "rope_parameters" : f.has("rope_scaling") ? "rope_scaling" : nullptr;
  if (key == nullptr) return;
  const json& r = f.raw().at(key);
  CANOPY_CHECK(r.is_object(), "{}: '{}' must be an object", f.origin(), key);
  const JsonFields rf(r, f.origin() + " (" + key + ")");
  if (rf.has("rope_theta")) c.rope_theta = rf.get_number("rope_theta");
  std::string type = rf.get_string("rope_type", rf.get_string("type", "default"));
  if (type == "default") return;
  if (type == "linear") {
    c.rope_scaling.type = RopeScalingType::Linear;
    c.rope_scaling.factor = rf.get_number("factor");
    return;
  }
  if (type == "llama3") {
    c.rope_scaling.type = RopeScalingType::Llama3;
    c.rope_scaling.factor = rf.get_number("factor");
    c.rope_scaling.low_freq_factor = rf.get_number("low_freq_factor");
    c.rope_scaling.high_freq_factor = rf.get_number("high_freq_factor");
    c.rope_scaling.original_max_position_embeddings = rf.get_int("original_max_position_embeddings");
    return;
  }
  fail("{}: unsupported rope scaling type '{}' (supported: default, linear, llama3)", f.origin(), type);
}

}  // namespace

ModelConfig parse_hf_config(const std::string& config_json, const std::string& generation_json,
                            const std::string& origin) {
  const json j = parse_json(config_json, origin);
  const JsonFields f(j, origin);
  ModelConfig c;
  c.architecture = read_architecture(f);
  {  // early, so that an unsupported model is named before any missing key
    const auto& archs = supported_hf_architectures();
    CANOPY_CHECK(std::find(archs.begin(), archs.end(), c.architecture) != archs.end(),
                 "{}: unsupported architecture '{}' (supported: {})", origin, c.architecture,
                 fmt::join(archs, ", "));
  }
  const std::string act = f.get_string("hidden_act", "silu");
  CANOPY_CHECK(act == "silu", "{}: unsupported hidden_act '{}' (supported: silu)", origin, act);
  CANOPY_CHECK(!f.get_bool("mlp_bias", false), "{}: mlp_bias = true is not supported", origin);

  c.vocab_size = f.get_int("vocab_size");
  c.hidden_size = f.get_int("hidden_size");
  c.intermediate_size = f.get_int("intermediate_size");
  c.num_layers = f.get_int("num_hidden_layers");
  c.num_heads = f.get_int("num_attention_heads");
  c.num_kv_heads = f.get_int("num_key_value_heads", c.num_heads);
  CANOPY_CHECK(c.num_heads > 0, "{}: num_attention_heads must be positive, got {}", origin, c.num_heads);
  if (f.has("head_dim")) {
    c.head_dim = f.get_int("head_dim");
  } else {
    CANOPY_CHECK(c.hidden_size % c.num_heads == 0,
                 "{}: hidden_size ({}) is not a multiple of num_attention_heads ({}) and head_dim is not given",
                 origin, c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  c.rms_norm_eps = f.get_number("rms_norm_eps", 1e-6);
  read_rope(f, c);
  c.max_position_embeddings = f.get_int("max_position_embeddings", 2048);
  c.tie_word_embeddings = f.get_bool("tie_word_embeddings", false);
  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;  // Qwen2's q/k/v projections always carry a bias
    if (f.get_bool("use_sliding_window", false)) c.sliding_window = f.get_int("sliding_window", 0);
  } else {
    c.qkv_bias = c.o_bias = f.get_bool("attention_bias", false);
    c.sliding_window = f.get_int("sliding_window", 0);
  }
  c.bos_token_id = f.get_int("bos_token_id", -1);
  c.eos_token_ids = f.get_int_list("eos_token_id");
  const std::string dtype = f.get_string("torch_dtype", f.get_string("dtype", "bfloat16"));
  c.checkpoint_dtype = parse_dtype(dtype);

  if (!generation_json.empty()) {
    const std::string gorigin = origin + " (generation_config.json)";
    const json g = parse_json(generation_json, gorigin);
    const JsonFields gf(g, gorigin);
    if (gf.has("eos_token_id")) c.eos_token_ids = gf.get_int_list("eos_token_id");
    if (gf.has("bos_token_id")) c.bos_token_id = gf.get_int("bos_token_id");
  }
  validate_config(c, origin);
  return c;
}

ModelConfig load_hf_config(const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path dir(folder);
  CANOPY_CHECK(fs::is_directory(dir), "model folder '{}' does not exist", folder);
  const fs::path config = dir / "config.json";
  CANOPY_CHECK(fs::is_regular_file(config), "model folder '{}' has no config.json", folder);
  const fs::path generation = dir / "generation_config.json";
  std::string generation_text;
  if (fs::is_regular_file(generation)) generation_text = read_text_file(generation.string());
  return parse_hf_config(read_text_file(config.string()), generation_text, config.string());
}

}  // namespace canopy
