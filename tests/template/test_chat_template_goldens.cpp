// Real chat templates on a set of conversations, compared byte for byte with Hugging Face
// transformers / jinja2 (goldens: tests/data/template/chat_templates.json from
// tools/make_chat_template_goldens.py). Templates come from ../shared/data/tokenizers: .jinja
// files, tokenizer_config.json folders (through ChatTemplate::for_model) and GGUF metadata.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "template/chat_template.h"
#include "template_testing.h"

namespace canopy {
namespace {

class ChatTemplateGoldens : public ::testing::Test {
 protected:
  void SetUp() override {
    golden_ = testing::load_template_golden("chat_templates.json");
    if (!std::filesystem::is_directory(testing::shared_dir() + "/data/tokenizers"))
      GTEST_SKIP() << "shared test data not found at " << testing::shared_dir();
  }

  // The template of one golden entry, with its special tokens.
  ChatTemplate load(const nlohmann::ordered_json& entry) {
    const std::string kind = entry["kind"];
    const std::string shared = testing::shared_dir() + "/";
    std::optional<ChatTemplate> tmpl;
    if (kind == "file") tmpl = ChatTemplate::from_file(shared + entry["file"].get<std::string>());
    if (kind == "source") tmpl = ChatTemplate::from_string(entry["source"].get<std::string>());
    if (kind == "folder") tmpl = ChatTemplate::for_model(shared + entry["folder"].get<std::string>());
    if (kind == "gguf") tmpl = ChatTemplate::for_model(shared + entry["gguf"].get<std::string>());
    if (!tmpl) throw std::runtime_error("no chat template for golden entry " + entry.dump());
    if (kind == "gguf") {
      // The special tokens must come from the file's vocabulary, as the golden read them.
      for (const auto& [name, token] : entry["special_tokens"].items()) {
        auto it = tmpl->special_tokens().find(name);
        EXPECT_TRUE(it != tmpl->special_tokens().end() && it->second == token.get<std::string>())
            << entry["gguf"] << ": " << name;
      }
    } else if (entry.contains("special_tokens")) {
      for (const auto& [name, token] : entry["special_tokens"].items()) tmpl->set_special_token(name, token);
    }
    return *tmpl;
  }

  nlohmann::ordered_json golden_;
};

TEST_F(ChatTemplateGoldens, RenderLikeHuggingFace) {
  std::map<std::string, ChatTemplate> templates;
  for (const auto& [name, entry] : golden_["templates"].items()) templates.emplace(name, load(entry));

  int outputs = 0, raised = 0, errors = 0;
  for (const auto& c : golden_["cases"]) {
    const std::string name = c["template"];
    const std::string conversation = c["conversation"];
    const auto& conv = golden_["conversations"][conversation];
    ChatRenderOptions options;
    options.add_generation_prompt = c["add_generation_prompt"];
    options.continue_final_message = c.value("continue_final_message", false);
    options.now = testing::golden_now();
    if (conv.contains("tools")) options.tools = conv["tools"];
    if (c.contains("variables")) options.variables = c["variables"];
    SCOPED_TRACE(fmt::format("template {} on {} (add_generation_prompt={}, continue_final_message={}{})", name,
                             conversation, options.add_generation_prompt, options.continue_final_message,
                             c.contains("variables") ? ", " + c["variables"].dump() : ""));
    const ChatTemplate& tmpl = templates.at(name);
    if (c.contains("output")) {
      ++outputs;
      try {
        EXPECT_EQ(tmpl.render(conv["messages"], options), c["output"].get<std::string>());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    } else if (c.contains("raised")) {
      ++raised;
      try {
        tmpl.render(conv["messages"], options);
        ADD_FAILURE() << "expected the template to raise: " << c["raised"];
      } catch (const ChatTemplateRaised& e) {
        EXPECT_EQ(std::string(e.what()), c["raised"].get<std::string>());
      } catch (const std::exception& e) {
        ADD_FAILURE() << "expected raise_exception, got: " << e.what();
      }
    } else {
      ++errors;
      try {
        tmpl.render(conv["messages"], options);
        ADD_FAILURE() << "expected an error like jinja2's: " << c["error"];
      } catch (const ChatTemplateRaised& e) {
        ADD_FAILURE() << "expected a template error, got raise_exception: " << e.what();
      } catch (const Error&) {
      }
    }
  }
  EXPECT_GT(outputs, 400);
  EXPECT_GT(raised, 10);
  EXPECT_GT(errors, 10);
}

}  // namespace
}  // namespace canopy
