// The real Qwen 3, Llama 3 and Gemma 3 chat templates rendered by our Jinja
// interpreter, byte for byte against python3-jinja2 set up as transformers
// does (scripts/npm_oracles.sh -> test/text/render_chat_oracle.py), and
// small templates exercising the rest of the supported subset.
#include "runtime/chat/ChatTemplate.h"

#include "TextTestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace tessera::chat;
using json = nlohmann::ordered_json;
using tessera::test::readJson;

namespace {

std::string npm(const std::string &rel) { return std::string(TESSERA_NPM_DIR) + "/" + rel; }

class ChatTemplateOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateOracle, RendersByteIdenticalToJinja2) {
  const std::string model = GetParam();
  json config = readJson(npm("tokenizers/" + model + "/tokenizer_config.json"));
  json oracle = readJson(npm("oracle/chat-" + model + ".json"));
  json conversations = readJson(std::string(TESSERA_TEXT_TEST_DIR) + "/conversations.json");
  ASSERT_FALSE(config.is_null() || oracle.is_null()) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  ChatTemplate t(config.at("chat_template").get<std::string>());
  size_t k = 0, rendered = 0, raised = 0;
  for (const json &c : conversations)
    for (bool agp : {false, true}) {
      const json &want = oracle.at("renderings").at(k++);
      ASSERT_EQ(want.at("conversation"), c.at("name"));
      RenderOptions o;
      o.addGenerationPrompt = agp;
      o.variables = oracle.at("special_tokens");
      if (c.contains("variables")) o.variables.update(c.at("variables"));
      std::string where = model + " / " + c.at("name").get<std::string>() + (agp ? " / generation prompt" : "");
      if (want.contains("error")) {
        try {
          t.render(c.at("messages"), o);
          ADD_FAILURE() << where << ": rendered, but jinja2 raised " << want.at("error");
        } catch (const TemplateError &e) {
          EXPECT_NE(std::string(e.what()).find(want.at("error").get<std::string>()), std::string::npos) << e.what();
          EXPECT_GT(e.line, 0);
          ++raised;
        }
        continue;
      }
      RenderedChat r = t.render(c.at("messages"), o);
      EXPECT_EQ(r.text, want.at("text").get<std::string>()) << where;
      ++rendered;
    }
  EXPECT_GE(rendered, 26u);
  if (model == "gemma3") EXPECT_EQ(raised, 2u);
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatTemplateOracle, ::testing::Values("qwen3", "llama3", "gemma3"));

TEST(JinjaSubset, SmallTemplatesEqualJinja2) {
  json oracle = readJson(npm("oracle/jinja.json"));
  ASSERT_FALSE(oracle.is_null()) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  size_t n = 0;
  for (const json &c : oracle.at("cases")) {
    std::string where = "template: " + c.at("template").dump();
    RenderOptions o;
    o.variables = c.at("context");
    json messages = o.variables.value("messages", json::array());
    o.variables.erase("messages");
    try {
      ChatTemplate t(c.at("template").get<std::string>());
      RenderedChat r = t.render(messages, o);
      if (c.contains("error")) ADD_FAILURE() << where << ": rendered '" << r.text << "', jinja2 raised " << c.at("error");
      else EXPECT_EQ(r.text, c.at("text").get<std::string>()) << where;
    } catch (const TemplateError &e) {
      if (!c.contains("error")) ADD_FAILURE() << where << ": " << describe(e);
    }
    ++n;
  }
  EXPECT_GT(n, 30u);
}

} // namespace

namespace {

std::string errorOf(const std::string &source, const json &messages = json::array()) {
  try {
    ChatTemplate(source).render(messages, RenderOptions());
  } catch (const TemplateError &e) {
    return describe(e);
  }
  return "";
}

// Found by fuzz_chat_template: a macro calling itself overflowed the stack.
TEST(JinjaSubset, EndlessMacroRecursionIsAnError) {
  EXPECT_EQ(errorOf("{% macro f(n) %}{{ f(n) }}{% endmacro %}\n{{ f(1) }}"),
            "chat template line 1: macro 'f': calls nested deeper than 64 (does it call itself without end?)");
  // Bounded recursion still renders.
  EXPECT_EQ(ChatTemplate("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}")
                .render(json::array(), RenderOptions())
                .text,
            "54321");
}

// Found by fuzz_chat_template: a namespace set to hold itself leaked (a shared_ptr cycle).
TEST(JinjaSubset, NamespaceCannotHoldItself) {
  EXPECT_EQ(errorOf("{% set ns = namespace(n=0) %}\n{% set ns.n = ns %}"),
            "chat template line 2: cannot set ns.n to a value that holds 'ns' itself");
  EXPECT_EQ(errorOf("{% set ns = namespace(n=0) %}{% set ns.n = [1, ns] %}"),
            "chat template line 1: cannot set ns.n to a value that holds 'ns' itself");
  EXPECT_EQ(ChatTemplate("{% set a = namespace(n=1) %}{% set b = namespace(x=a) %}{% set b.x = a.n + 1 %}{{ b.x }}")
                .render(json::array(), RenderOptions())
                .text,
            "2");
}

TEST(JinjaSubset, UnsupportedConstructsNameThemselvesAndTheLine) {
  EXPECT_EQ(errorOf("a\nb\n{% include 'other.jinja' %}"), "chat template line 3: unsupported Jinja construct '{% include %}'");
  EXPECT_EQ(errorOf("{{ x | frobnicate }}"), "chat template line 1: unsupported Jinja filter 'frobnicate'");
  EXPECT_EQ(errorOf("\n{% if x is prime %}{% endif %}"), "chat template line 2: unsupported Jinja test 'prime'");
  EXPECT_EQ(errorOf("{% for x in y %}"), "chat template line 1: missing {% else %} or {% endfor %} before the end of the template");
  EXPECT_EQ(errorOf("{{ 'a' % 3 }}"), "chat template line 1: string formatting with % is not supported");
  EXPECT_NE(errorOf("{% for m in messages %}\n{{ m.content.zfill(3) }}{% endfor %}", json::array({{{"role", "user"}, {"content", "x"}}}))
                .find("line 2: cannot call"),
            std::string::npos);
}

TEST(ChatTemplateTags, AssistantContentBytesAreTaggedThroughStringOperations) {
  ChatTemplate t("{% for m in messages %}<{{ m.role }}>{{ (m.content | trim).split('|')[-1].upper() }}</s>{% endfor %}");
  json ms = json::array({{{"role", "user"}, {"content", "q|x"}}, {{"role", "assistant"}, {"content", "  a|bc "}}});
  RenderedChat r = t.render(ms, RenderOptions());
  ASSERT_EQ(r.text, "<user>X</s><assistant>BC</s>");
  std::string tagged;
  for (size_t i = 0; i < r.text.size(); ++i)
    if (r.assistantContent[i] == 1) tagged += r.text[i];
  EXPECT_EQ(tagged, "BC");
}

} // namespace
