// `canopy tokenize -m MODEL [--ids] [--no-special] [--add-special]`: token ids of stdin's text.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "api/cmd_tokenize.h"
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

std::string format_tokenize_output(const Tokenizer& tokenizer, std::string_view text, const TokenizeOptions& options) {
  const auto ids = tokenizer.encode(text, options.add_special, !options.no_special);
  if (options.ids) return fmt::format("{}\n", fmt::join(ids, " "));
  std::string out;
  for (const int32_t id : ids) out += fmt::format("{}\t{}\n", id, escape_token(tokenizer.token_bytes(id)));
  return out;
}

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize",
                                 "Print the token ids of the text on stdin (all of it, final newline included).\n"
                                 "Default output: one token per line, 'ID<TAB>TEXT', where TEXT is the token's bytes\n"
                                 "with \\n, \\r, \\t, \\\\ escaped and bytes of partial characters as \\xNN.");
  auto model = std::make_shared<std::string>();
  auto opts = std::make_shared<TokenizeOptions>();
  cmd->add_option("-m,--model", *model, "model folder, tokenizer.json, tokenizer.model or .gguf file")->required();
  cmd->add_flag("--ids", opts->ids, "print only the ids (no BOS/EOS), separated by single spaces, on one line");
  cmd->add_flag("--no-special", opts->no_special,
                "do not parse special-token text (e.g. <|im_start|>) as special tokens");
  cmd->add_flag("--add-special", opts->add_special, "add the BOS/EOS tokens the model's tokenizer adds to a prompt");
  cmd->callback([model, opts, &exit_code] {
    const Tokenizer tok = Tokenizer::load(*model);
    const std::string out = format_tokenize_output(tok, read_stdin(), *opts);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    exit_code = 0;
  });
}

}  // namespace canopy::cli
