// Data preparation (runtime/data/Prepare.h): assistant-only masks on the
// real tokenizers and templates (the counted tokens of each turn decode to
// the assistant's content and its end-of-turn token, hand-checked in
// test/text/assistant_masks.json), and the formats, truncation, packing,
// windows and bad-input errors on the bundled tiny tokenizer, whose ids are
// UTF-8 bytes (so the expected ids are written by hand).
#include "runtime/data/Prepare.h"

#include "TextTestUtil.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>

using namespace tessera;
using json = nlohmann::ordered_json;
using tessera::test::readJson;

namespace {

std::vector<std::string> countedRuns(const text::Tokenizer &tok, const data::Sample &s) {
  std::vector<std::string> runs;
  std::vector<int32_t> cur;
  for (size_t k = 0; k <= s.ids.size(); ++k) {
    if (k < s.ids.size() && s.labels[k] != -100) {
      EXPECT_EQ(s.labels[k], s.ids[k]);
      cur.push_back(s.ids[k]);
    } else if (!cur.empty()) {
      runs.push_back(tok.decode(cur));
      cur.clear();
    }
  }
  return runs;
}

class AssistantMask : public ::testing::TestWithParam<std::string> {};

TEST_P(AssistantMask, CountsTheAssistantContentAndItsEndOfTurnToken) {
  const std::string model = GetParam();
  json want = readJson(std::string(TESSERA_TEXT_TEST_DIR) + "/assistant_masks.json");
  json conversations = readJson(std::string(TESSERA_TEXT_TEST_DIR) + "/conversations.json");
  std::string dir = std::string(TESSERA_NPM_DIR) + "/tokenizers/" + model;
  ASSERT_TRUE(std::filesystem::exists(dir)) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  text::Tokenizer tok = text::Tokenizer::fromDirectory(dir);
  data::PrepareOptions o;
  o.seq = 4096;
  o.assistantOnlyLoss = true;
  data::Preparer prep(tok, o);
  data::PrepareOptions all = o;
  all.assistantOnlyLoss = false;
  data::Preparer prepAll(tok, all);
  const json &names = want.at("conversations");
  for (size_t i = 0; i < names.size(); ++i) {
    json messages;
    for (const json &c : conversations)
      if (c.at("name") == names[i]) messages = c.at("messages");
    ASSERT_FALSE(messages.is_null()) << names[i];
    data::Sample s = prep.fromJson(json{{"messages", messages}}, "");
    EXPECT_EQ(json(countedRuns(tok, s)), want.at("counted").at(model).at(i)) << model << " / " << names[i];
    // The same ids as the unmasked rendering, where every token counts.
    data::Sample u = prepAll.fromJson(json{{"messages", messages}}, "");
    EXPECT_EQ(u.ids, s.ids);
    EXPECT_EQ(u.labels, u.ids);
  }
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, AssistantMask, ::testing::Values("qwen3", "llama3", "gemma3"));

// ---- the bundled tiny tokenizer: ids are bytes; <|im_start|> 1, <|im_end|> 2 ----

std::string tinyDir() { return std::string(TESSERA_SOURCE_DIR) + "/scripts/tiny-tokenizer"; }

std::vector<int32_t> bytes(const std::string &s) { return std::vector<int32_t>(s.begin(), s.end()); }
std::vector<int32_t> cat(std::vector<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (auto &p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
std::vector<int32_t> ignored(size_t n) { return std::vector<int32_t>(n, -100); }

struct Tiny : ::testing::Test {
  static data::PrepareOptions opts(int64_t seq = 64, bool assistantOnly = false) {
    data::PrepareOptions o;
    o.seq = seq;
    o.assistantOnlyLoss = assistantOnly;
    return o;
  }
  text::Tokenizer tok = text::Tokenizer::fromDirectory(tinyDir());
  std::string tmp = (std::filesystem::temp_directory_path() / ("tessera-prepare-" + std::to_string(::getpid()))).string();
  void SetUp() override { std::filesystem::create_directories(tmp); }
  void TearDown() override { std::filesystem::remove_all(tmp); }
  std::string write(const std::string &name, const std::string &content) {
    std::string p = tmp + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  std::vector<data::Sample> prepare(const std::string &path, data::PrepareOptions o, data::PrepareStats &stats) {
    return data::Preparer(tok, o).prepareFile(path, stats);
  }
  std::string errorOf(const std::string &content, data::PrepareOptions o = opts()) {
    data::PrepareStats st;
    try {
      prepare(write("bad.jsonl", content), o, st);
    } catch (const std::exception &e) {
      std::string m = e.what();
      return m.substr(m.find("bad.jsonl"));
    }
    return "";
  }
};

TEST_F(Tiny, TextPromptCompletionAndChatLines) {
  std::string path = write("d.jsonl", "{\"text\": \"hi\"}\n\n"
                                      "{\"prompt\": \"Q:\", \"completion\": \" A\"}\n"
                                      "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, "
                                      "{\"role\": \"assistant\", \"content\": \"ok\"}]}\n");
  data::PrepareStats st;
  std::vector<data::Sample> s = prepare(path, opts(64, true), st);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].ids, cat({bytes("hi"), {2}})); // text + eos
  EXPECT_EQ(s[0].labels, s[0].ids);
  EXPECT_EQ(s[0].line, 1u);
  EXPECT_EQ(s[1].ids, cat({bytes("Q: A"), {2}}));
  EXPECT_EQ(s[1].labels, cat({ignored(2), bytes(" A"), {2}})); // completion-only
  EXPECT_EQ(s[1].line, 3u);
  // <|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n
  std::vector<int32_t> chat = cat({{1}, bytes("user\nu"), {2}, bytes("\n"), {1}, bytes("assistant\nok"), {2}, bytes("\n")});
  EXPECT_EQ(s[2].ids, chat);
  EXPECT_EQ(s[2].labels, cat({ignored(chat.size() - 4), bytes("ok"), {2}, ignored(1)}));
  EXPECT_EQ(st.rows, 3u);
}

TEST_F(Tiny, LongSamplesAreTruncatedAndCountedOrDropped) {
  std::string path = write("d.jsonl", "{\"text\": \"0123456789\"}\n{\"text\": \"abc\"}\n");
  data::PrepareStats st;
  std::vector<data::Sample> s = prepare(path, opts(8), st);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].ids, bytes("01234567"));
  EXPECT_EQ(st.truncated, 1u);
  data::PrepareOptions o = opts(8);
  o.dropLong = true;
  data::PrepareStats st2;
  s = prepare(path, o, st2);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].ids, cat({bytes("abc"), {2}}));
  EXPECT_EQ(st2.dropped, 1u);
  EXPECT_EQ(st2.truncated, 0u);
}

TEST_F(Tiny, PackingFillsRowsInOrderAndMasksEachSamplesFirstToken) {
  std::string path = write("d.jsonl", "{\"text\": \"ab\"}\n{\"text\": \"cd\"}\n{\"text\": \"efghij\"}\n{\"text\": \"k\"}\n");
  data::PrepareOptions o = opts(8);
  o.pack = true;
  data::PrepareStats st;
  std::vector<data::Sample> s = prepare(path, o, st);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].ids, cat({bytes("ab"), {2}, bytes("cd"), {2}}));
  EXPECT_EQ(s[0].labels, cat({bytes("ab"), {2}, {-100}, bytes("d"), {2}}));
  EXPECT_EQ(s[1].ids, cat({bytes("efghij"), {2}})); // "cd" + "efghij" would not fit: a new row
  EXPECT_EQ(s[2].ids, cat({bytes("k"), {2}}));       // nor "efghij" + "k": next fit, in file order
  EXPECT_EQ(s[2].labels, s[2].ids);
  EXPECT_EQ(st.rows, 3u);
  ASSERT_EQ(st.lines, 4u);
}

TEST_F(Tiny, PlainTextBecomesOverlappingWindows) {
  std::string path = write("book.txt", "abcdefghij");
  data::PrepareOptions o = opts(4);
  data::PrepareStats st;
  std::vector<data::Sample> s = prepare(path, o, st); // stride 2 (seq / 2)
  std::vector<std::vector<int32_t>> got;
  for (auto &x : s) got.push_back(x.ids);
  EXPECT_EQ(got, (std::vector<std::vector<int32_t>>{bytes("abcd"), bytes("cdef"), bytes("efgh"), bytes("ghij")}));
  o.stride = 3;
  s = prepare(path, o, st);
  got.clear();
  for (auto &x : s) got.push_back(x.ids);
  EXPECT_EQ(got, (std::vector<std::vector<int32_t>>{bytes("abcd"), bytes("defg"), bytes("ghij")}));
}

TEST_F(Tiny, BadLinesNameTheFileLineAndField) {
  EXPECT_EQ(errorOf("{\"text\": \"ok\"}\n{not json\n"),
            "bad.jsonl:2: not valid JSON: parse error at line 1, column 3: syntax error while parsing object key - "
            "invalid literal; last read: '{no'; "
            "expected string literal (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"txt\": 1}\n"),
            "bad.jsonl:1: expected \"text\", \"messages\", or \"prompt\" and \"completion\" (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"text\": 5}\n"), "bad.jsonl:1: \"text\" must be a string (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"prompt\": \"p\"}\n"),
            "bad.jsonl:1: a prompt/completion line needs both \"prompt\" and \"completion\" (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("\n\n{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}]}\n"),
            "bad.jsonl:3: messages[0]: unknown role 'wizard' (expected system, user, assistant, tool or developer) "
            "(--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}\n"),
            "bad.jsonl:1: messages[0]: \"content\" is array, not a string (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"messages\": [{\"content\": \"x\"}]}\n"),
            "bad.jsonl:1: messages[0] has no string \"role\" (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"messages\": []}\n"),
            "bad.jsonl:1: \"messages\" must be a non-empty array (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("{\"input_ids\": [1]}\n"),
            "bad.jsonl:1: already tokenized (\"input_ids\"): use it without --tokenizer (--skip-bad-lines skips such lines)");
  EXPECT_EQ(errorOf("\n \n"), "bad.jsonl: no samples (the file is empty)");
  EXPECT_EQ(errorOf("{\"text\": \"a\\ud800\"}\n").substr(0, 12), "bad.jsonl:1:");
}

TEST_F(Tiny, SkipBadLinesCountsThem) {
  data::PrepareOptions o = opts();
  o.skipBadLines = true;
  data::PrepareStats st;
  std::vector<data::Sample> s =
      prepare(write("d.jsonl", "{\"text\": \"a\"}\nnope\n{\"messages\": [{\"role\": \"x\", \"content\": \"y\"}]}\n{\"text\": \"b\"}\n"), o, st);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(st.skipped, 2u);
  ASSERT_EQ(st.skippedMessages.size(), 2u);
  EXPECT_NE(st.skippedMessages[0].find("d.jsonl:2: not valid JSON"), std::string::npos);
  EXPECT_NE(st.summary().find("2 bad lines skipped"), std::string::npos);
  EXPECT_EQ(errorOf("x\ny\n", o), "bad.jsonl: no samples (every line was bad)");
}

TEST(TokenizerFolder, MissingFilesAndUnsupportedModelsAreNamed) {
  std::string dir = (std::filesystem::temp_directory_path() / ("tessera-tokdir-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);
  auto error = [&] {
    try {
      text::Tokenizer::fromDirectory(dir);
    } catch (const text::TokenizerError &e) {
      return std::string(e.what()).substr(dir.size());
    }
    return std::string();
  };
  EXPECT_EQ(error(), ": no tokenizer.json");
  std::ofstream(dir + "/tokenizer.model") << "x";
  EXPECT_NE(error().find("only a SentencePiece tokenizer.model"), std::string::npos);
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}";
  EXPECT_EQ(error(), "/tokenizer.json: unsupported model type 'WordPiece' (tessera reads BPE tokenizers: byte-level like "
                     "Qwen and Llama 3, or with byte fallback like Gemma)");
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                                            "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}";
  EXPECT_NE(error().find("unsupported pre_tokenizer type 'BertPreTokenizer'"), std::string::npos);
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
  EXPECT_NE(error().find("merge 0 ('a', 'b') uses a token that is not in the vocabulary"), std::string::npos);
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": ";
  EXPECT_NE(error().find("/tokenizer.json: not valid JSON"), std::string::npos);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(error(), ": not a tokenizer folder (expected a directory with tokenizer.json)");
}

TEST(ChatData, ATemplateThatFailsToRenderNamesTheConstructAndLine) {
  std::string dir = std::string(TESSERA_NPM_DIR) + "/tokenizers/gemma3";
  ASSERT_TRUE(std::filesystem::exists(dir)) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  text::Tokenizer tok = text::Tokenizer::fromDirectory(dir);
  data::PrepareOptions o;
  o.seq = 64;
  data::Preparer prep(tok, o);
  json line = {{"messages", {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}}};
  try {
    prep.fromJson(line, "chat.jsonl:7: ");
    FAIL() << "rendered a conversation the Gemma template refuses";
  } catch (const data::PrepareError &e) {
    // jinja2's traceback puts this raise_exception on line 19 too.
    EXPECT_EQ(std::string(e.what()), "chat.jsonl:7: chat template line 19: the chat template raised an error: Conversation "
                                     "roles must alternate user/assistant/user/assistant/...");
  }
}

} // namespace
