#include "tokenizer/tokenizer_json_reader.h"

#include "core/error.h"

namespace canopy {
namespace {

using Json = nlohmann::json;

class Reader : public nlohmann::json_sax<Json> {
 public:
  explicit Reader(TokenizerJson& out) : out_(out) {}

  std::string error;

  bool null() override { return value(Json(nullptr)); }
  bool boolean(bool v) override { return value(Json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == Mode::Vocab) {
      out_.vocab.emplace_back(std::move(key_), v);
      return true;
    }
    return value(Json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == Mode::Vocab) {
      if (v > static_cast<number_unsigned_t>(INT64_MAX)) return reject("model.vocab has an id out of range");
      out_.vocab.emplace_back(std::move(key_), static_cast<int64_t>(v));
      return true;
    }
    return value(Json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(Json(v)); }
  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {
      const size_t space = v.find(' ', 1);
      if (space == std::string::npos) return reject("model.merges has an entry that is not two tokens: '" + v + "'");
      out_.merges.emplace_back(v.substr(0, space), v.substr(space + 1));
      return true;
    }
    if (mode_ == Mode::MergePair) {
      pair_.push_back(std::move(v));
      return pair_.size() <= 2 || reject("model.merges has a pair with more than two tokens");
    }
    return value(Json(std::move(v)));
  }
  bool binary(binary_t&) override { return reject("unexpected binary value"); }

  bool start_object(std::size_t) override {
    if (mode_ != Mode::Tree) return reject(mode_name() + " holds an object");
    if (path_is("model", "vocab")) {
      mode_ = Mode::Vocab;
      out_.has_vocab = true;
      return true;
    }
    return open(Json::object());
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Tree;
      return true;
    }
    return close();
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::Merges) {
      mode_ = Mode::MergePair;
      pair_.clear();
      return true;
    }
    if (mode_ != Mode::Tree) return reject(mode_name() + " holds a nested list");
    if (path_is("model", "merges")) {
      mode_ = Mode::Merges;
      out_.has_merges = true;
      return true;
    }
    return open(Json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::MergePair) {
      if (pair_.size() != 2) return reject("model.merges has a pair that is not two tokens");
      out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Tree;
      return true;
    }
    return close();
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    error = fmt::format("not valid JSON at byte {}: {}", position, e.what());
    return false;
  }

 private:
  enum class Mode { Tree, Vocab, Merges, MergePair };

  std::string mode_name() const { return mode_ == Mode::Vocab ? "model.vocab" : "model.merges"; }

  bool reject(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }

  // True when the container about to open is root[a][b].
  bool path_is(const char* a, const char* b) const {
    return stack_.size() == 2 && keys_.size() == 2 && keys_[1] == a && key_ == b && stack_[1]->is_object();
  }

  // Inserts a scalar or a new container into the tree; returns a pointer to it.
  Json* insert(Json v) {
    if (stack_.empty()) {
      out_.root = std::move(v);
      return &out_.root;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    Json& slot = parent[key_];
    slot = std::move(v);
    return &slot;
  }
  bool value(Json v) {
    if (mode_ == Mode::Vocab) return reject("model.vocab has an entry '" + key_ + "' that is not an integer id");
    if (mode_ != Mode::Tree) return reject(mode_name() + " holds something that is not a token");
    insert(std::move(v));
    return true;
  }
  bool open(Json container) {
    const std::string k = stack_.empty() || stack_.back()->is_array() ? std::string() : key_;
    stack_.push_back(insert(std::move(container)));
    keys_.push_back(k);
    return true;
  }
  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  TokenizerJson& out_;
  Mode mode_ = Mode::Tree;
  std::vector<Json*> stack_;         // open containers of the tree
  std::vector<std::string> keys_;    // the key each open container has in its parent ("" in arrays)
  std::string key_;                  // the last key seen
  std::vector<std::string> pair_;    // a ["a", "b"] merge being read
};

}  // namespace

TokenizerJson read_tokenizer_json(std::string_view text, const std::string& source) {
  TokenizerJson out;
  Reader reader(out);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &reader);
  } catch (const Json::exception& e) {
    fail("{}: not valid JSON: {}", source, e.what());
  }
  if (!ok) fail("{}: {}", source, reader.error.empty() ? "not valid JSON" : reader.error);
  return out;
}

}  // namespace canopy
