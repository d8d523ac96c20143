// Finding a model's chat template and special tokens in a Hugging Face folder, and
// ChatTemplate::for_model on top of it (GGUF files: model_chat_files_gguf.cpp).
#include "template/model_chat_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "template/chat_template.h"

namespace canopy {

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  CANOPY_CHECK(in.good(), "cannot open '{}'", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::ordered_json read_json(const fs::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    fail("'{}' is not valid JSON: {}", path.string(), e.what());
  }
}

// "chat_template" in tokenizer_config.json or chat_template.json: a string, or a list of
// {"name", "template"} (the template named "default" is the one Hugging Face uses without tools).
std::optional<std::string> template_from_config(const nlohmann::ordered_json& config, const fs::path& path) {
  if (!config.is_object() || !config.contains("chat_template")) return std::nullopt;
  const auto& t = config["chat_template"];
  if (t.is_null()) return std::nullopt;
  if (t.is_string()) return t.get<std::string>();
  CANOPY_CHECK(t.is_array(), "'{}': \"chat_template\" must be a string or a list of named templates", path.string());
  const nlohmann::ordered_json* chosen = nullptr;
  for (const auto& entry : t) {
    CANOPY_CHECK(entry.is_object() && entry.contains("name") && entry["name"].is_string() && entry.contains("template") &&
                     entry["template"].is_string(),
                 "'{}': every named chat template needs a \"name\" and a \"template\" string", path.string());
    if (entry["name"] == "default") chosen = &entry;
  }
  if (chosen == nullptr && t.size() == 1) chosen = &t[0];
  CANOPY_CHECK(chosen != nullptr, "'{}' has several chat templates and none is named \"default\"", path.string());
  return (*chosen)["template"].get<std::string>();
}

// A special token in tokenizer_config.json: a string, or an AddedToken object {"content": ...}.
std::optional<std::string> token_string(const nlohmann::ordered_json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

// The special tokens Hugging Face passes to templates (its special_tokens_map).
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

void read_special_tokens(const nlohmann::ordered_json& config, std::map<std::string, std::string>& tokens) {
  if (!config.is_object()) return;
  for (const char* name : kSpecialTokenNames)
    if (config.contains(name))
      if (auto token = token_string(config[name])) tokens[name] = *token;
}

}  // namespace

ModelChatFiles read_folder_chat_files(const std::string& dir_path) {
  const fs::path dir(dir_path);
  const fs::path config_path = dir / "tokenizer_config.json";
  nlohmann::ordered_json config;
  if (fs::is_regular_file(config_path)) config = read_json(config_path);

  ModelChatFiles files;
  if (const fs::path jinja_path = dir / "chat_template.jinja"; fs::is_regular_file(jinja_path)) {
    files.source = read_text(jinja_path);
    files.origin = jinja_path.string();
  } else if ((files.source = template_from_config(config, config_path))) {
    files.origin = config_path.string();
  } else if (const fs::path json_path = dir / "chat_template.json"; fs::is_regular_file(json_path)) {
    files.source = template_from_config(read_json(json_path), json_path);
    files.origin = json_path.string();
  }
  // Older exports keep the special tokens in special_tokens_map.json; tokenizer_config.json wins.
  if (const fs::path map_path = dir / "special_tokens_map.json"; fs::is_regular_file(map_path))
    read_special_tokens(read_json(map_path), files.special_tokens);
  read_special_tokens(config, files.special_tokens);
  return files;
}

ModelChatFiles read_model_chat_files(const std::string& model_path) {
  const fs::path path(model_path);
  if (fs::is_directory(path)) return read_folder_chat_files(model_path);
  CANOPY_CHECK(fs::exists(path), "model path '{}' does not exist", model_path);
  if (path.extension() == ".gguf") return read_gguf_chat_files(model_path);
  fail("model path '{}' is neither a Hugging Face model folder nor a .gguf file", model_path);
}

std::optional<ChatTemplate> ChatTemplate::for_model(const std::string& model_path) {
  ModelChatFiles files = read_model_chat_files(model_path);
  if (!files.source) return std::nullopt;
  std::optional<ChatTemplate> tmpl;
  try {
    tmpl = from_string(*files.source);
  } catch (const Error& e) {
    fail("{}: {}", files.origin, e.what());
  }
  tmpl->special_tokens_ = std::move(files.special_tokens);
  return tmpl;
}

std::map<std::string, std::string> model_special_tokens(const std::string& model_path) {
  return read_model_chat_files(model_path).special_tokens;
}

}  // namespace canopy
