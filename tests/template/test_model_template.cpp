// ChatTemplate::for_model: where a model keeps its chat template and special tokens.
#include <gtest/gtest.h>

#include <filesystem>

#include "template/chat_template.h"
#include "template_testing.h"

namespace canopy {
namespace {

const nlohmann::ordered_json kHello = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");

std::string error_of(const std::string& model_path) {
  try {
    ChatTemplate::for_model(model_path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelTemplate, HuggingFaceFolders) {
  const std::string tokenizers = testing::shared_dir() + "/data/tokenizers";
  if (!std::filesystem::is_directory(tokenizers)) GTEST_SKIP() << "shared test data not found";
  const auto llama3 = ChatTemplate::for_model(tokenizers + "/llama3");
  ASSERT_TRUE(llama3.has_value());
  EXPECT_EQ(llama3->special_tokens().at("bos_token"), "<|begin_of_text|>");
  EXPECT_EQ(llama3->special_tokens().at("eos_token"), "<|end_of_text|>");
  EXPECT_EQ(llama3->render(kHello),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  const auto qwen3 = ChatTemplate::for_model(tokenizers + "/qwen3");
  ASSERT_TRUE(qwen3.has_value());
  EXPECT_EQ(qwen3->special_tokens().count("bos_token"), 0u);  // null in its tokenizer_config.json
  EXPECT_EQ(qwen3->special_tokens().at("eos_token"), "<|im_end|>");
  // Mistral's tokenizer_config.json has no chat template.
  EXPECT_FALSE(ChatTemplate::for_model(tokenizers + "/mistral").has_value());
}

TEST(ModelTemplate, FolderVariants) {
  testing::TempDir dir;
  // A list of named templates: "default" is taken; special tokens may be AddedToken objects.
  testing::write_file(dir.file("tokenizer_config.json"), R"({
    "bos_token": {"__type": "AddedToken", "content": "<B>", "lstrip": false},
    "eos_token": "<E>", "pad_token": null,
    "chat_template": [{"name": "tool_use", "template": "tools"},
                      {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}{{ pad_token }}"}]})");
  auto tmpl = ChatTemplate::for_model(dir.path());
  ASSERT_TRUE(tmpl.has_value());
  EXPECT_EQ(tmpl->render(kHello), "<B>hi<E>");
  // special_tokens_map.json fills in what tokenizer_config.json lacks.
  testing::write_file(dir.file("special_tokens_map.json"), R"({"pad_token": "<P>", "eos_token": "<ignored>"})");
  EXPECT_EQ(ChatTemplate::for_model(dir.path())->render(kHello), "<B>hi<E><P>");
  // chat_template.jinja takes precedence over tokenizer_config.json.
  testing::write_file(dir.file("chat_template.jinja"), "jinja file: {{ messages|length }}\n");
  EXPECT_EQ(ChatTemplate::for_model(dir.path())->render(kHello), "jinja file: 1");
}

TEST(ModelTemplate, ChatTemplateJson) {
  testing::TempDir dir;
  testing::write_file(dir.file("tokenizer_config.json"), R"({"eos_token": "</s>"})");
  EXPECT_FALSE(ChatTemplate::for_model(dir.path()).has_value());
  testing::write_file(dir.file("chat_template.json"), R"({"chat_template": "{{ messages[0].role }}{{ eos_token }}"})");
  EXPECT_EQ(ChatTemplate::for_model(dir.path())->render(kHello), "user</s>");
}

TEST(ModelTemplate, MalformedInputsNameTheirCause) {
  testing::TempDir dir;
  EXPECT_NE(error_of(dir.file("nope")).find("does not exist"), std::string::npos);
  testing::write_file(dir.file("model.bin"), "x");
  EXPECT_NE(error_of(dir.file("model.bin")).find("neither a Hugging Face model folder nor a .gguf file"), std::string::npos);
  testing::write_file(dir.file("tokenizer_config.json"), "{not json");
  EXPECT_NE(error_of(dir.path()).find("is not valid JSON"), std::string::npos);
  testing::write_file(dir.file("tokenizer_config.json"), R"({"chat_template": 5})");
  EXPECT_NE(error_of(dir.path()).find("must be a string or a list"), std::string::npos);
  testing::write_file(dir.file("tokenizer_config.json"), R"({"chat_template": [{"name": "a", "template": "x"}, {"name": "b", "template": "y"}]})");
  EXPECT_NE(error_of(dir.path()).find("none is named \"default\""), std::string::npos);
  testing::write_file(dir.file("tokenizer_config.json"), R"({"chat_template": "{% for %}"})");
  const std::string message = error_of(dir.path());
  EXPECT_NE(message.find("tokenizer_config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("syntax error: line 1"), std::string::npos) << message;
  testing::write_file(dir.file("broken.gguf"), "GGUF but not really");
  EXPECT_FALSE(error_of(dir.file("broken.gguf")).empty());
}

TEST(ModelTemplate, GgufVocabFiles) {
  const std::string vocab = testing::shared_dir() + "/data/tokenizers/ggml-vocab";
  if (!std::filesystem::is_directory(vocab)) GTEST_SKIP() << "shared test data not found";
  const auto qwen2 = ChatTemplate::for_model(vocab + "/ggml-vocab-qwen2.gguf");
  ASSERT_TRUE(qwen2.has_value());
  EXPECT_EQ(qwen2->render(kHello),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // A vocabulary without a template.
  EXPECT_FALSE(ChatTemplate::for_model(vocab + "/ggml-vocab-gpt-2.gguf").has_value());
}

TEST(ModelTemplate, DefaultModelGguf) {
  const std::string model = testing::default_model_path();
  if (model.empty()) GTEST_SKIP() << "default model absent: run scripts/fetch_model.sh";
  const auto tmpl = ChatTemplate::for_model(model);
  ASSERT_TRUE(tmpl.has_value());
  // The same text as the golden copy in chat_templates.json ("smollm2-gguf").
  const auto golden = testing::load_template_golden("chat_templates.json");
  EXPECT_EQ(tmpl->source(), golden["templates"]["smollm2-gguf"]["source"].get<std::string>());
  EXPECT_EQ(tmpl->special_tokens().at("bos_token"), "<|im_start|>");
  EXPECT_EQ(tmpl->special_tokens().at("eos_token"), "<|im_end|>");
  EXPECT_EQ(tmpl->render(kHello),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ModelTemplate, ParseConversation) {
  const Conversation list = parse_conversation(R"([{"role": "user", "content": "a"}])");
  EXPECT_EQ(list.messages.size(), 1u);
  EXPECT_TRUE(list.tools.is_null());
  const Conversation body = parse_conversation(
      R"({"model": "x", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "tools": []})");
  EXPECT_EQ(body.messages.size(), 1u);
  EXPECT_TRUE(body.tools.is_array());
  auto error = [](const std::string& text) {
    try {
      parse_conversation(text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("[").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error("[]").find("has no messages"), std::string::npos);
  EXPECT_NE(error("{}").find("\"messages\""), std::string::npos);
  EXPECT_NE(error("5").find("JSON list of messages"), std::string::npos);
  EXPECT_NE(error(R"([{"role": "user"}, 3])").find("message 1 is not a JSON object"), std::string::npos);
  EXPECT_NE(error(R"([{"content": "x"}])").find("message 0 has no \"role\""), std::string::npos);
  EXPECT_NE(error(R"([{"role": "user", "content": 5}])").find("\"content\" must be"), std::string::npos);
  EXPECT_NE(error(R"({"messages": [{"role": "user"}], "tools": {}})").find("\"tools\" must be a list"), std::string::npos);
}

}  // namespace
}  // namespace canopy
