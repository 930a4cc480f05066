// The text side of `tessera generate`: streaming decode (TextStream), the ids
// that end a reply (endOfTurnIds), the chat session, and the lossy UTF-8
// decoding they rest on.
#include "runtime/generate/ChatSession.h"
#include "runtime/generate/TextStream.h"
#include "runtime/tokenizer/Tokenizer.h"
#include "runtime/tokenizer/Utf8.h"

#include "TextTestUtil.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace tessera;
using json = nlohmann::ordered_json;

namespace {

const std::string kTiny = std::string(TESSERA_SOURCE_DIR) + "/scripts/tiny-tokenizer";

std::string realDir(const std::string &model) { return std::string(TESSERA_NPM_DIR) + "/tokenizers/" + model; }

std::vector<int32_t> bytes(const std::string &s) {
  std::vector<int32_t> ids;
  for (unsigned char c : s) ids.push_back(c);
  return ids;
}

std::vector<int32_t> bytes(std::initializer_list<int> b) { return std::vector<int32_t>(b.begin(), b.end()); }

} // namespace

// The tiny tokenizer's ids are bytes, so decode shows the lossy UTF-8 rule
// itself: Unicode 3.9's "substitution of maximal subparts" examples (Table
// 3-8 and the surrounding text), which Python's errors="replace" and Rust's
// String::from_utf8_lossy (what `tokenizers` uses) follow.
TEST(Utf8Lossy, MaximalSubpartsBecomeOneReplacementEach) {
  text::Tokenizer tok = text::Tokenizer::fromDirectory(kTiny);
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(tok.decode(bytes({0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64})),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
  EXPECT_EQ(tok.decode(bytes({0xE0, 0x80, 0x41})), R + R + "A");             // overlong: E0 needs A0..BF next
  EXPECT_EQ(tok.decode(bytes({0xED, 0xA0, 0x80})), R + R + R);                // a surrogate
  EXPECT_EQ(tok.decode(bytes({0xF4, 0x90, 0x80, 0x80})), R + R + R + R);      // past U+10FFFF
  EXPECT_EQ(tok.decode(bytes({0xC0, 0xAF, 0xF5})), R + R + R);                // never-valid bytes
  EXPECT_EQ(tok.decode(bytes({0xE2, 0x82})), R);                              // a truncated sequence
  EXPECT_EQ(tok.decode(bytes("€ 😀 é")), "€ 😀 é");
}

TEST(TextStream, HoldsAnIncompleteCharacterUntilItsLastByte) {
  text::Tokenizer tok = text::Tokenizer::fromDirectory(kTiny);
  generate::TextStream s(tok);
  EXPECT_EQ(s.push('a'), "a");
  EXPECT_EQ(s.push(0xE2), ""); // the first byte of €
  EXPECT_EQ(s.push(0x82), "");
  EXPECT_EQ(s.push(0xAC), "€");
  EXPECT_EQ(s.push(0xF0), ""); // 😀, four bytes
  EXPECT_EQ(s.push(0x9F), "");
  EXPECT_EQ(s.push(0x98), "");
  EXPECT_EQ(s.push(0x80), "😀");
  EXPECT_EQ(s.push(0xE2), "");
  EXPECT_EQ(s.push('b'), "\xEF\xBF\xBD" "b"); // a sequence that never completes is one U+FFFD
  EXPECT_EQ(s.push(0xC3), "");
  EXPECT_EQ(s.finish(), "\xEF\xBF\xBD");       // and so is a truncated tail at the end
  EXPECT_EQ(s.text(), tok.decode(s.ids()));
}

// On the real tokenizers, token by token over the tokenizer test cases (ten
// scripts, emoji sequences, byte-fallback pieces, odd spaces, Llama 3's
// clean_up_tokenization_spaces): every piece is whole UTF-8 and the pieces
// make up the decoding of all the ids.
class RealTextStream : public ::testing::TestWithParam<std::string> {};

TEST_P(RealTextStream, PiecesAreWholeCharactersAndMakeUpTheDecoding) {
  std::string dir = realDir(GetParam());
  ASSERT_TRUE(std::filesystem::exists(dir)) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  text::Tokenizer tok = text::Tokenizer::fromDirectory(dir);
  json cases = test::readJson(std::string(TESSERA_TEXT_TEST_DIR) + "/tokenizer_cases.json");
  std::vector<std::string> texts;
  for (const json &c : cases) texts.push_back(c.get<std::string>());
  texts.push_back("I don 't know , do you ? It 's fine . 'Quoted ' text"); // the clean-up rules' patterns
  size_t held = 0;
  for (const std::string &t : texts) {
    std::vector<int32_t> ids = tok.encode(t, true).ids;
    generate::TextStream s(tok);
    std::string joined;
    for (int32_t id : ids) {
      std::string piece = s.push(id);
      EXPECT_EQ(text::firstInvalidUtf8(piece), std::string::npos) << json(t).dump();
      held += piece.empty();
      joined += piece;
    }
    std::string rest = s.finish();
    EXPECT_EQ(text::firstInvalidUtf8(rest), std::string::npos);
    joined += rest;
    EXPECT_EQ(joined, tok.decode(ids)) << GetParam() << ": " << json(t).dump();
    EXPECT_EQ(s.text(), joined);
  }
  EXPECT_GT(held, 0u); // some token did not complete a character (or, with clean-up, a word)
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, RealTextStream, ::testing::Values("qwen3", "llama3", "gemma3"));

// The ids a reply stops at, hand-checked in the vendors' files: eos_token of
// tokenizer_config.json and the special token the chat template writes after
// an assistant's content.
TEST(EndOfTurn, EosAndTheTemplatesEndOfTurnToken) {
  auto ids = [](const std::string &dir) {
    text::Tokenizer tok = text::Tokenizer::fromDirectory(dir);
    return generate::endOfTurnIds(tok, dir);
  };
  ASSERT_TRUE(std::filesystem::exists(realDir("qwen3"))) << "run scripts/npm_oracles.sh (ctest: npm_oracles)";
  EXPECT_EQ(ids(realDir("qwen3")), (std::vector<int32_t>{151645}));          // <|im_end|> is both
  EXPECT_EQ(ids(realDir("llama3")), (std::vector<int32_t>{128001, 128009})); // <|end_of_text|>, <|eot_id|>
  EXPECT_EQ(ids(realDir("gemma3")), (std::vector<int32_t>{106}));            // <end_of_turn> is both
  EXPECT_EQ(ids(kTiny), (std::vector<int32_t>{2}));                          // <|im_end|>

  // generation_config.json's eos_token_id adds to them, as transformers' generate stops there.
  std::filesystem::path d = std::filesystem::path(testing::TempDir()) / "tessera-gen-config";
  std::filesystem::create_directories(d);
  for (const char *f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(std::filesystem::path(kTiny) / f, d / f,
                               std::filesystem::copy_options::overwrite_existing);
  std::ofstream(d / "generation_config.json") << R"({"eos_token_id": [2, 3]})";
  EXPECT_EQ(ids(d.string()), (std::vector<int32_t>{2, 3}));
  std::ofstream(d / "generation_config.json") << "{not json";
  EXPECT_THROW(ids(d.string()), std::runtime_error);
  std::filesystem::remove_all(d);
}

TEST(ChatSession, RendersTheWholeConversationWithTheGenerationPrompt) {
  text::Tokenizer tok = text::Tokenizer::fromDirectory(kTiny);
  generate::ChatSession chat(tok, kTiny);
  chat.add("system", "Be brief.");
  chat.add("user", "Hi");
  EXPECT_EQ(chat.prompt(), "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\n");
  chat.add("assistant", "Hello.");
  chat.add("user", "Bye");
  std::vector<int32_t> ids = chat.promptIds();
  EXPECT_EQ(ids.front(), 1); // <|im_start|>, not the bytes of its text
  EXPECT_EQ(tok.decode(ids), chat.prompt());
  EXPECT_EQ(chat.messages().size(), 4u);

  // A tokenizer without a chat template: one message naming the folder.
  text::Tokenizer plain = text::Tokenizer::fromJson(
      [] {
        std::ifstream f(kTiny + "/tokenizer.json");
        return std::string(std::istreambuf_iterator<char>(f), {});
      }(),
      R"({"eos_token": "<|im_end|>"})", "x/tokenizer.json");
  try {
    generate::ChatSession none(plain, "x");
    FAIL() << "no error";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find("x: the tokenizer has no chat_template"), std::string::npos) << e.what();
  }
}
