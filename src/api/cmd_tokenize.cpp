// `canopy tokenize -m MODEL [--ids] [--no-special] [--add-special]`: token ids of stdin's text.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "api/commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace canopy::cli {
namespace {

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  std::cin >> std::noskipws;
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// A token's bytes on one line: whole UTF-8 characters as they are, \n \r \t \\ escaped, other
// control bytes and bytes of partial characters as \xNN.
std::string escape_token(std::string_view bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c >= 0x80) {
      const utf8::Scan sc = utf8::scan(bytes, i);
      if (sc.kind == utf8::Scan::Valid) {
        out.append(bytes.substr(i, sc.length));
        i += sc.length;
        continue;
      }
      out += fmt::format("\\x{:02x}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  return out;
}

}  // namespace

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize",
                                 "Print the token ids of the text on stdin (all of it, final newline included).\n"
                                 "Default output: one token per line, 'ID<TAB>TEXT', where TEXT is the token's bytes\n"
                                 "with \\n, \\r, \\t, \\\\ escaped and bytes of partial characters as \\xNN.");
  struct Options {
    std::string model;
    bool ids = false, no_special = false, add_special = false;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("-m,--model", opts->model, "model folder (tokenizer.json), tokenizer.json or .gguf file")->required();
  cmd->add_flag("--ids", opts->ids, "print only the ids, separated by single spaces, on one line");
  cmd->add_flag("--no-special", opts->no_special,
                "do not parse special-token text (e.g. <|im_start|>) as special tokens");
  cmd->add_flag("--add-special", opts->add_special, "add the BOS/EOS tokens the model's tokenizer adds to a prompt");
  cmd->callback([opts, &exit_code] {
    const Tokenizer tok = Tokenizer::load(opts->model);
    const std::string text = read_stdin();
    const auto ids = tok.encode(text, opts->add_special, !opts->no_special);
    std::string out;
    if (opts->ids) {
      out = fmt::format("{}\n", fmt::join(ids, " "));
    } else {
      for (const int32_t id : ids) out += fmt::format("{}\t{}\n", id, escape_token(tok.token_bytes(id)));
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    exit_code = 0;
  });
}

}  // namespace canopy::cli
