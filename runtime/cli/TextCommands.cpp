#include "runtime/cli/TextCommands.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

namespace tessera {

void addTextDataFlags(CLI::App &cmd, TextDataFlags &f) {
  cmd.add_flag("--assistant-only-loss", f.prepare.assistantOnlyLoss,
               "count only the assistant's turns (chat) or the completion (prompt/completion) in the loss");
  cmd.add_flag("--pack", f.prepare.pack,
               "pack short samples into rows of --seq tokens (attention crosses sample boundaries: docs/data.md)");
  cmd.add_option("--stride", f.prepare.stride, "plain .txt: a window of --seq tokens every STRIDE tokens (default --seq/2)");
  cmd.add_flag("--skip-bad-lines", f.prepare.skipBadLines, "skip (and count) lines that are not valid data instead of stopping");
  cmd.add_flag("--drop-long", f.prepare.dropLong, "drop samples longer than --seq instead of truncating them");
  cmd.add_flag("--no-eos", f.noEos, "do not end text and prompt/completion samples with the eos token");
}

void checkTextDataFlags(const TextDataFlags &f) {
  if (!f.tokenizer.empty()) return;
  const data::PrepareOptions &p = f.prepare;
  const char *flag = p.assistantOnlyLoss ? "--assistant-only-loss"
                     : p.pack            ? "--pack"
                     : p.stride          ? "--stride"
                     : p.skipBadLines    ? "--skip-bad-lines"
                     : p.dropLong        ? "--drop-long"
                     : f.noEos           ? "--no-eos"
                                         : nullptr;
  if (flag)
    throw std::runtime_error(std::string(flag) + " prepares text data and needs --tokenizer DIR "
                             "(token-id data already carries its labels)");
}

namespace {

text::Tokenizer loadTokenizer(const std::string &dir) {
  text::Tokenizer t = text::Tokenizer::fromDirectory(dir);
  std::fprintf(stderr, "tokenizer: %s (%s)\n", dir.c_str(), t.describe().c_str());
  return t;
}

std::string printable(const std::string &s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else out += char(c);
  }
  return out;
}

void showSample(const text::Tokenizer &tok, const data::Sample &s, bool asJson) {
  if (asJson) {
    nlohmann::json j = {{"input_ids", s.ids}, {"labels", s.labels}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  size_t counted = 0;
  for (size_t k = 0; k < s.ids.size(); ++k) {
    bool counts = s.labels[k] != -100;
    counted += counts && k > 0;
    std::printf("%6zu %8d %s %s\n", k, s.ids[k], counts ? "[x]" : "[ ]",
                printable(tok.decode({s.ids[k]})).c_str());
  }
  std::printf("-- %zu tokens, %zu counted in the loss ([x]; the first token is never predicted)\n", s.ids.size(),
              counted);
}

} // namespace

void addTextCommands(CLI::App &app) {
  struct PrepareArgs {
    TextDataFlags flags;
    std::string in, out;
  };
  auto p = std::make_shared<PrepareArgs>();
  CLI::App *prep = app.add_subcommand("prepare", "Tokenize text or chat JSONL (or .txt) into the {\"input_ids\", \"labels\"} lines train reads");
  prep->add_option("--tokenizer", p->flags.tokenizer, "folder with the model's tokenizer.json and tokenizer_config.json")->required();
  prep->add_option("--in", p->in, "data: JSONL of {\"text\"}, {\"messages\"} or {\"prompt\",\"completion\"}, or a .txt file")->required();
  prep->add_option("--out", p->out, "the tokenized JSONL to write")->required();
  prep->add_option("--seq", p->flags.prepare.seq, "sequence length T (the plan's --seq)")->required();
  addTextDataFlags(*prep, p->flags);
  prep->callback([p] {
    text::Tokenizer tok = loadTokenizer(p->flags.tokenizer);
    data::PrepareOptions o = p->flags.prepare;
    o.addEos = !p->flags.noEos;
    data::Preparer prep(tok, o);
    data::PrepareStats stats;
    std::vector<data::Sample> samples = prep.prepareFile(p->in, stats);
    for (const std::string &m : stats.skippedMessages) std::fprintf(stderr, "skipped: %s\n", m.c_str());
    if (stats.truncated)
      std::fprintf(stderr, "warning: %zu samples were longer than %lld tokens and were truncated (--drop-long drops them)\n",
                   stats.truncated, (long long)o.seq);
    data::writeSamples(p->out, samples);
    std::printf("wrote %s: %s\n", p->out.c_str(), stats.summary().c_str());
  });

  struct TokenizeArgs {
    TextDataFlags flags;
    std::string text, in;
    size_t line = 0;
    bool json = false;
  };
  auto t = std::make_shared<TokenizeArgs>();
  CLI::App *tokCmd = app.add_subcommand("tokenize", "Show the tokens of a text or of a data line, with what the loss counts");
  tokCmd->add_option("--tokenizer", t->flags.tokenizer, "folder with tokenizer.json and tokenizer_config.json")->required();
  CLI::Option *textOpt = tokCmd->add_option("--text", t->text, "a text to tokenize (with the special tokens the tokenizer adds)");
  CLI::Option *inOpt = tokCmd->add_option("--in", t->in, "a data file (as for prepare)");
  textOpt->excludes(inOpt);
  tokCmd->add_option("--line", t->line, "with --in: only this line (1-based)");
  tokCmd->add_option("--seq", t->flags.prepare.seq, "sequence length (truncation)")->default_val(1 << 30);
  tokCmd->add_flag("--json", t->json, "print {\"input_ids\", \"labels\"} lines instead of a table");
  addTextDataFlags(*tokCmd, t->flags);
  tokCmd->callback([t, textOpt, inOpt] {
    if (!textOpt->count() && !inOpt->count()) throw std::runtime_error("tokenize needs --text TEXT or --in FILE");
    text::Tokenizer tok = loadTokenizer(t->flags.tokenizer);
    data::PrepareOptions o = t->flags.prepare;
    o.addEos = !t->flags.noEos;
    if (textOpt->count()) {
      text::Encoding e = tok.encode(t->text, true);
      showSample(tok, {e.ids, e.ids, 0}, t->json);
      return;
    }
    data::Preparer prep(tok, o);
    data::PrepareStats stats;
    std::vector<data::Sample> samples = prep.prepareFile(t->in, stats);
    bool any = false;
    for (const data::Sample &s : samples) {
      if (t->line && s.line != t->line) continue;
      any = true;
      if (!t->json) std::printf("== %s:%zu\n", t->in.c_str(), s.line);
      showSample(tok, s, t->json);
    }
    if (t->line && !any) throw std::runtime_error(t->in + ": no sample at line " + std::to_string(t->line));
    if (!t->json) std::printf("%s\n", stats.summary().c_str());
  });
}

} // namespace tessera
