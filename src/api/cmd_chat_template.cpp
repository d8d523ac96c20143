// `canopy chat-template`: print the prompt a model's chat template makes of a conversation.
//
//   canopy chat-template -m MODEL [-i CONVERSATION.json] [--no-generation-prompt]
//                        [--continue-final-message] [--template FILE] [--var NAME=VALUE ...]
//
// The conversation (from -i, or stdin) is a JSON list of {"role", "content"} messages, or an object
// with "messages" (and optionally "tools"), such as an OpenAI chat request body. The prompt is
// written to stdout exactly as rendered, with no newline added, so it can be piped on (e.g. into
// `canopy tokenize`). --template replaces the model's template (the model's special tokens are
// still used); --var passes extra template variables (VALUE is read as JSON when it parses,
// e.g. enable_thinking=false, and as a string otherwise).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "api/commands.h"
#include "core/error.h"
#include "template/chat_template.h"

namespace canopy::cli {
namespace {

struct ChatTemplateArgs {
  std::string model;
  std::string input;
  std::string template_file;
  bool no_generation_prompt = false;
  bool continue_final_message = false;
  std::vector<std::string> vars;
};

std::string read_input(const std::string& path) {
  if (path.empty() || path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  CANOPY_CHECK(in.good(), "cannot open conversation file '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

nlohmann::ordered_json parse_vars(const std::vector<std::string>& vars) {
  auto out = nlohmann::ordered_json::object();
  for (const std::string& var : vars) {
    const size_t eq = var.find('=');
    CANOPY_CHECK(eq != std::string::npos && eq > 0, "--var '{}': expected NAME=VALUE", var);
    const std::string name = var.substr(0, eq);
    const std::string text = var.substr(eq + 1);
    nlohmann::ordered_json value = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
    out[name] = value.is_discarded() ? nlohmann::ordered_json(text) : value;
  }
  return out;
}

void run_chat_template(const ChatTemplateArgs& a) {
  CANOPY_CHECK(!a.model.empty() || !a.template_file.empty(), "give a model (-m MODEL) or a template file (--template FILE)");
  std::optional<ChatTemplate> tmpl;
  if (!a.template_file.empty()) {
    tmpl = ChatTemplate::from_file(a.template_file);
    if (!a.model.empty())
      for (const auto& [name, token] : model_special_tokens(a.model)) tmpl->set_special_token(name, token);
  } else {
    tmpl = ChatTemplate::for_model(a.model);
    CANOPY_CHECK(tmpl.has_value(), "model '{}' has no chat template; give one with --template FILE", a.model);
  }
  const Conversation conversation = parse_conversation(read_input(a.input));
  ChatRenderOptions options;
  options.add_generation_prompt = !a.no_generation_prompt;
  options.continue_final_message = a.continue_final_message;
  options.tools = conversation.tools;
  options.variables = parse_vars(a.vars);
  const std::string prompt = tmpl->render(conversation.messages, options);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

void add_chat_template_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ChatTemplateArgs>();
  auto* cmd = app.add_subcommand("chat-template", "Print the prompt a model's chat template makes of a conversation");
  cmd->add_option("-m,--model", args->model, "Hugging Face model folder or .gguf file");
  cmd->add_option("-i,--input", args->input, "Conversation JSON file (default: stdin)");
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt,
                "Do not append the header that opens the assistant's reply");
  cmd->add_flag("--continue-final-message", args->continue_final_message,
                "End the prompt with the final message's text, for the model to continue it");
  cmd->add_option("--template", args->template_file, "Use this Jinja template file instead of the model's");
  cmd->add_option("--var", args->vars, "Extra template variable NAME=VALUE (VALUE as JSON when it parses)");
  cmd->callback([args, &exit_code] {
    run_chat_template(*args);
    exit_code = 0;
  });
}

}  // namespace canopy::cli
