#include "runtime/cli/GenerateCommand.h"
#include "runtime/cli/Numbers.h"
#include "runtime/cli/PipelineCacheFlags.h"

#include "runtime/generate/ChatSession.h"
#include "runtime/generate/Generator.h"
#include "runtime/generate/TextStream.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace tessera {

namespace {

struct GenerateFlags {
  generate::GenerateOptions o;
  std::string promptIds, stopIds, prompt, tokenizer, system;
  bool printIds = false, chat = false, ignoreEos = false, verbosePrompt = false;
};

void printStats(const generate::GenerateResult &r, size_t promptTokens) {
  double perToken = r.tokens.size() > 1 ? r.decode_ms / double(r.tokens.size() - 1) : 0;
  std::fprintf(stderr, "%zu tokens (stopped: %s); prefill %zu tokens in %.1f ms; decode %.1f tokens/s (%.2f ms/token)\n",
               r.tokens.size(), r.stop.c_str(), promptTokens, r.prefill_ms, r.tokensPerSecond(), perToken);
}

void printPrompt(const std::string &text, size_t tokens) {
  std::string quoted = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fprintf(stderr, "prompt (%zu tokens): %s\n", tokens, quoted.c_str());
}

void out(const std::string &s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// One reply, streamed as text; the stop id that ends it is not printed.
std::string reply(generate::Generator &gen, const text::Tokenizer &tok, const std::vector<int32_t> &prompt,
                  const GenerateFlags &g, const std::vector<int32_t> &stops, generate::GenerateResult &r) {
  generate::TextStream stream(tok);
  r = gen.run(prompt, g.o.max_new_tokens, stops, [&](int32_t id) {
    if (std::find(stops.begin(), stops.end(), id) == stops.end()) out(stream.push(id));
  });
  out(stream.finish());
  out("\n");
  return stream.text();
}

void runChat(generate::Generator &gen, generate::ChatSession &chat, const text::Tokenizer &tok, const GenerateFlags &g,
             const std::vector<int32_t> &stops) {
  const bool tty = isatty(STDIN_FILENO);
  std::string line;
  for (size_t n = 1;; ++n) {
    if (tty) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = "stdin line " + std::to_string(n) + ": ";
    chat.add("user", line);
    std::vector<int32_t> ids;
    std::string prompt;
    try {
      prompt = chat.prompt();
      ids = tok.encode(prompt, false).ids;
    } catch (const std::exception &e) {
      throw std::runtime_error(where + e.what());
    }
    if (int64_t(ids.size()) >= gen.context())
      throw std::runtime_error(where + "the conversation has " + std::to_string(ids.size()) +
                               " tokens, the plan's context is " + std::to_string(gen.context()) +
                               ": compile with a larger --seq");
    if (g.verbosePrompt) printPrompt(prompt, ids.size());
    generate::GenerateResult r;
    chat.add("assistant", reply(gen, tok, ids, g, stops, r));
    printStats(r, ids.size());
  }
}

} // namespace

void addGenerateCommand(CLI::App &app) {
  auto g = std::make_shared<GenerateFlags>();
  CLI::App *cmd = app.add_subcommand("generate", "Generate text (or tokens) with a generation plan (tessera compile --generate)");
  cmd->add_option("plan", g->o.plan, "generation plan")->required();
  cmd->add_option("--weights", g->o.weights, "ONNX model holding the frozen weights")->required();
  cmd->add_option("--adapter", g->o.adapter, "LoRA adapter: a PEFT directory or a llama.cpp LoRA .gguf");
  cmd->add_option("--tokenizer", g->tokenizer, "the model's tokenizer folder (tokenizer.json, tokenizer_config.json)");
  CLI::Option *promptOpt = cmd->add_option("--prompt", g->prompt, "the prompt as text (with --tokenizer)");
  cmd->add_flag("--chat", g->chat,
                "a conversation: one user turn per line on stdin, rendered with the model's chat template (with --tokenizer)");
  CLI::Option *systemOpt = cmd->add_option("--system", g->system, "with --chat: a system message before the first turn");
  CLI::Option *idsOpt = cmd->add_option("--prompt-ids", g->promptIds, "the prompt as token ids, e.g. 1,2,3");
  cmd->add_flag("--print-ids", g->printIds, "print the generated token ids instead of text");
  cmd->add_option("--max-new-tokens", g->o.max_new_tokens, "tokens to generate (per chat turn)")->required()->check(cli::integerIn(1, 1 << 24));
  cmd->add_option("--temperature", g->o.sampling.temperature, "0: greedy (default); > 0: sample")->capture_default_str();
  cmd->add_option("--top-k", g->o.sampling.top_k, "sample among the k most likely tokens (0: all)")->capture_default_str();
  cmd->add_option("--top-p", g->o.sampling.top_p, "sample among the most likely tokens of total probability p")
      ->capture_default_str();
  cmd->add_option("--seed", g->o.sampling.seed, "seed of the sampling stream")->capture_default_str();
  cmd->add_option("--stop-ids", g->stopIds, "more ids that stop generation, e.g. 2 or 106,1");
  cmd->add_flag("--ignore-eos", g->ignoreEos,
                "do not stop at the tokenizer's eos / the template's end-of-turn token (only at --stop-ids)");
  cmd->add_flag("--verbose-prompt", g->verbosePrompt, "print the prompt (the rendered chat) and its token count on stderr");
  cmd->add_option("--device", g->o.device, "Vulkan device index (see `devices`)")->capture_default_str()->check(cli::integerIn(0, 4095));
  auto cache = std::make_shared<cli::PipelineCacheFlags>();
  cli::addPipelineCacheFlags(*cmd, *cache);
  cmd->callback([g, promptOpt, idsOpt, systemOpt, cache] {
    generate::GenerateOptions o = g->o;
    o.pipeline_cache = cache->resolve();
    int sources = int(promptOpt->count() > 0) + int(g->chat) + int(idsOpt->count() > 0);
    if (sources != 1) throw std::runtime_error("give the prompt as one of --prompt TEXT, --chat or --prompt-ids 1,2,3");
    if (systemOpt->count() && !g->chat) throw std::runtime_error("--system is a chat's system message: use it with --chat");
    if (g->tokenizer.empty()) {
      if (!idsOpt->count())
        throw std::runtime_error(std::string(g->chat ? "--chat" : "--prompt") +
                                 " needs the model's tokenizer: --tokenizer DIR (tokenizer.json, tokenizer_config.json)");
      if (!g->printIds) throw std::runtime_error("without a tokenizer the output is token ids: pass --print-ids");
    }
    std::unique_ptr<text::Tokenizer> tok;
    if (!g->tokenizer.empty()) {
      tok = std::make_unique<text::Tokenizer>(text::Tokenizer::fromDirectory(g->tokenizer));
      o.tokenizer = g->tokenizer;
      o.tokenizer_vocab = tok->vocabSize();
      if (!g->ignoreEos) o.stop_ids = generate::endOfTurnIds(*tok, g->tokenizer);
    }
    if (!g->stopIds.empty())
      for (int32_t id : generate::parseIds(g->stopIds, "--stop-ids")) o.stop_ids.push_back(id);
    if (g->chat && g->printIds) throw std::runtime_error("--chat prints text: leave out --print-ids");
    if (g->chat) {
      generate::ChatSession chat(*tok, g->tokenizer); // no template: said before the model loads
      if (systemOpt->count()) chat.add("system", g->system);
      generate::Generator gen(o);
      runChat(gen, chat, *tok, *g, o.stop_ids);
      return;
    }
    std::string promptText;
    if (idsOpt->count()) {
      o.prompt = generate::parseIds(g->promptIds, "--prompt-ids");
    } else {
      promptText = g->prompt;
      try {
        o.prompt = tok->encode(promptText, true).ids;
      } catch (const std::exception &e) {
        throw std::runtime_error(std::string("--prompt: ") + e.what());
      }
    }
    if (g->verbosePrompt) printPrompt(tok ? tok->decode(o.prompt) : g->promptIds, o.prompt.size());
    generate::Generator gen(o);
    generate::GenerateResult r;
    if (g->printIds || !tok) {
      bool first = true;
      r = gen.run(o.prompt, o.max_new_tokens, o.stop_ids, [&](int32_t id) {
        std::printf(first ? "%d" : ",%d", id);
        first = false;
        std::fflush(stdout);
      });
      std::printf("\n");
    } else {
      reply(gen, *tok, o.prompt, *g, o.stop_ids, r);
    }
    printStats(r, o.prompt.size());
  });
}

} // namespace tessera
