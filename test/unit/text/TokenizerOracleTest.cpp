// Ids and decodes of the real Qwen 3, Llama 3 and Gemma 3 tokenizers (and of
// variants with the components of Llama 3.1, Llama 2 and Mistral) against
// Hugging Face's own (@huggingface/tokenizers, written by
// scripts/npm_oracles.sh into build/npm/oracle for test/text/tokenizer_cases.json).
#include "runtime/tokenizer/Tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using tessera::text::Tokenizer;
using json = nlohmann::json;

namespace {

// The vendors' folders, or the variants the oracle script derives from them (see hf_tokenizer_oracle.mjs).
std::string modelDir(const std::string &model) {
  if (model.find('-') != std::string::npos) return std::string(TESSERA_NPM_DIR) + "/oracle/variants/" + model;
  return std::string(TESSERA_NPM_DIR) + "/tokenizers/" + model;
}

json readOracle(const std::string &model) {
  std::ifstream f(std::string(TESSERA_NPM_DIR) + "/oracle/" + model + ".json");
  if (!f) return nullptr;
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

std::string ids(const std::vector<int32_t> &v) {
  std::string s;
  for (int32_t i : v) s += std::to_string(i) + " ";
  return s;
}

class TokenizerOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerOracle, IdsAndDecodeEqualHuggingFace) {
  const std::string model = GetParam();
  json oracle = readOracle(model);
  ASSERT_FALSE(oracle.is_null()) << "no oracle for " << model << ": run scripts/npm_oracles.sh (ctest runs it as npm_oracles)";
  Tokenizer tok = Tokenizer::fromDirectory(modelDir(model));
  int checked = 0;
  for (const json &c : oracle.at("cases")) {
    std::string text = c.at("text").get<std::string>();
    tessera::text::Encoding e = tok.encode(text, true);
    EXPECT_EQ(ids(e.ids), ids(c.at("ids").get<std::vector<int32_t>>())) << model << " text: " << json(text).dump();
    EXPECT_EQ(ids(tok.encode(text, false).ids), ids(c.at("ids_plain").get<std::vector<int32_t>>()))
        << model << " (no special tokens) text: " << json(text).dump();
    EXPECT_EQ(tok.decode(e.ids), c.at("decoded").get<std::string>()) << model << " decode of " << json(text).dump();
    EXPECT_EQ(tok.decode(e.ids, true), c.at("decoded_skip").get<std::string>())
        << model << " decode (skip special) of " << json(text).dump();
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, TokenizerOracle, ::testing::Values("qwen3", "llama3", "gemma3"));
// Llama 3.1's BOS post-processor, Llama 2's Prepend/Replace/Strip pipeline, Mistral's Metaspace.
INSTANTIATE_TEST_SUITE_P(Variants, TokenizerOracle,
                         ::testing::Values("llama3-bos", "gemma3-prepend", "gemma3-metaspace"));

} // namespace
