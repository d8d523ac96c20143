#include "golden.h"

#include <fmt/format.h>

#include <fstream>
#include <stdexcept>

#include "testing/testing.h"

namespace canopy::testing {

namespace {

std::vector<std::string> read_corpus() {
  const std::string path = source_dir() + "/tests/data/tokenizer/corpus.jsonl";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) texts.push_back(nlohmann::json::parse(line).get<std::string>());
  return texts;
}

}  // namespace

Goldens read_goldens(const std::string& name) {
  const std::string path = source_dir() + "/tests/data/tokenizer/" + name + ".jsonl";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::vector<std::string> corpus = read_corpus();
  Goldens g;
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    if (first) {
      g.header = j;
      first = false;
      continue;
    }
    if (j.contains("decode_ids")) {
      g.decode.push_back({j["decode_ids"].get<std::vector<int32_t>>(), j["decoded"].get<std::string>(),
                          j["decoded_skip_special"].get<std::string>()});
      continue;
    }
    EncodeCase c;
    if (g.encode.size() >= corpus.size()) throw std::runtime_error(path + " has more cases than corpus.jsonl");
    c.text = corpus[g.encode.size()];
    c.ids = j["ids"].get<std::vector<int32_t>>();
    if (j.contains("ids_no_special")) c.ids_no_special = j["ids_no_special"].get<std::vector<int32_t>>();
    if (j.contains("ids_add_special")) c.ids_add_special = j["ids_add_special"].get<std::vector<int32_t>>();
    if (j.contains("decoded")) c.decoded = j["decoded"].get<std::string>();
    g.encode.push_back(std::move(c));
  }
  if (g.encode.size() != corpus.size()) throw std::runtime_error(path + " and corpus.jsonl differ in length");
  return g;
}

std::string format_ids(const std::vector<int32_t>& ids) { return fmt::format("[{}]", fmt::join(ids, ", ")); }

std::string escape(const std::string& text) {
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02x}", c);
    else
      out.push_back(ch);
  }
  return out;
}

}  // namespace canopy::testing
