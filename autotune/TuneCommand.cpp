// TuneCommand.cpp - `tessera-rt tune` and `tune-worker` (TuneCommand.h).
#include "autotune/TuneCommand.h"

#include "autotune/SearchSpace.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <memory>

namespace tessera::autotune {

double parseDuration(const std::string &text, const std::string &flag) {
  if (text.empty())
    throw std::runtime_error(flag + ": empty duration (e.g. 120s, 5m)");
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? std::string(end) : "";
  double scale = unit.empty() || unit == "s" ? 1 : unit == "m" || unit == "min" ? 60 : unit == "h" ? 3600 : -1;
  if (end == text.c_str() || scale < 0 || !std::isfinite(v) || v <= 0)
    throw std::runtime_error(flag + " " + text + ": expected a positive duration such as 120s, 5m or 1h");
  return v * scale;
}

void addTuneFlags(CLI::App &cmd, TuneOptions &o, std::string &budget, std::string &timeout, std::string &families,
                  std::string &coldCache) {
  cmd.add_option("--out", o.out, "device profile to write (merged into when it is this device's tuned profile)");
  cmd.add_option("--budget", budget, "wall-clock budget of the measurements, e.g. 120s or 5m")->capture_default_str();
  cmd.add_option("--device", o.device, "Vulkan device index (see `devices`)")->capture_default_str();
  cmd.add_option("--timeout", timeout, "one candidate's measurement; past it the candidate is marked failed")
      ->capture_default_str();
  cmd.add_option("--repeats", o.repeats, "timed runs per candidate (median, outliers dropped)")->capture_default_str();
  cmd.add_option("--families", families,
                 "tune only these kernel families, comma-separated: matmul, reduce, softmax, elementwise, copy, "
                 "cross_entropy, adamw");
  cmd.add_option("--name", o.name, "name of the written profile (default: the tuning plan's profile's)");
  cmd.add_option("--journal", o.journal, "measurement journal to resume from (default: OUT.journal)");
  cmd.add_flag("--restart", o.restart, "ignore the journal of an earlier, interrupted run");
  cmd.add_option("--cold-cache", coldCache,
                 "scrub the GPU's caches before each timed repetition, as a training step's kernels find them: "
                 "auto (256MiB on a GPU, off on a CPU device), off, or a size such as 64MiB")
      ->capture_default_str();
}

// --cold-cache: auto (-1), off (0) or N[KiB|MiB|GiB] bytes.
int64_t parseColdCache(const std::string &text) {
  if (text == "auto")
    return -1;
  if (text == "off")
    return 0;
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? std::string(end) : "";
  double scale = unit == "KiB" ? 1024.0 : unit == "MiB" ? 1048576.0 : unit == "GiB" ? 1073741824.0 : unit.empty() ? 1 : -1;
  if (end == text.c_str() || scale < 0 || !std::isfinite(v) || v < 1 || v * scale > 68719476736.0)
    throw std::runtime_error("--cold-cache " + text + ": expected auto, off or a size such as 64MiB (KiB, MiB, GiB; at most 64GiB)");
  return int64_t(v * scale) & ~int64_t(3);
}

void finishTuneFlags(TuneOptions &o, const std::string &budget, const std::string &timeout,
                     const std::string &families, const std::string &coldCache) {
  o.budget_s = parseDuration(budget, "--budget");
  o.cold_cache_bytes = parseColdCache(coldCache);
  o.timeout_s = parseDuration(timeout, "--timeout");
  if (o.repeats < 1 || o.repeats > 1000)
    throw std::runtime_error("--repeats must be in [1, 1000]");
  o.families.clear();
  size_t start = 0;
  while (start < families.size()) {
    size_t comma = families.find(',', start);
    std::string f = families.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? families.size() : comma + 1;
    if (f.empty())
      continue;
    bool known = false;
    for (RuleFamily r : {RuleFamily::Matmul, RuleFamily::Reduce, RuleFamily::Softmax, RuleFamily::Elementwise,
                         RuleFamily::Copy, RuleFamily::CrossEntropy, RuleFamily::AdamW, RuleFamily::Attention})
      known |= f == ruleFamilyName(r);
    if (!known)
      throw std::runtime_error("--families: unknown family '" + f +
                               "' (matmul, reduce, softmax, elementwise, copy, cross_entropy, adamw, attention)");
    o.families.push_back(f);
  }
}

void addTuneCommands(CLI::App &app) {
  struct Flags {
    TuneOptions o;
    std::string budget = "120s", timeout = "60s", families, coldCache = "auto";
  };
  auto f = std::make_shared<Flags>();
  CLI::App *tune = app.add_subcommand(
      "tune", "Measure a tuning plan's kernel candidates on this device and write its profile (docs/autotune.md)");
  tune->add_option("tuning_plan", f->o.ttune, "tuning plan (tessera compile --tuning-plan)")->required();
  addTuneFlags(*tune, f->o, f->budget, f->timeout, f->families, f->coldCache);
  auto list = std::make_shared<bool>(false);
  tune->add_flag("--list", *list, "print the tuning plan's problems and candidates and stop (no device needed)");
  tune->callback([f, list] {
    finishTuneFlags(f->o, f->budget, f->timeout, f->families, f->coldCache);
    if (*list)
      return listTuningPlan(f->o);
    runTuning(f->o);
  });

  addTuneWorkerCommand(app);
}

void addTuneWorkerCommand(CLI::App &app) {
  struct Flags {
    TuneOptions o;
  };
  // The measuring process `tune` starts (not for users: no help entry).
  auto w = std::make_shared<Flags>();
  auto deadline = std::make_shared<double>(0);
  CLI::App *worker = app.add_subcommand("tune-worker", "");
  worker->group("");
  worker->add_option("tuning_plan", w->o.ttune)->required();
  worker->add_option("--journal", w->o.journal)->required();
  worker->add_option("--device", w->o.device);
  worker->add_option("--deadline", *deadline)->required();
  worker->add_option("--repeats", w->o.repeats);
  worker->add_option("--cold-cache-bytes", w->o.cold_cache_bytes);
  worker->add_option("--families", w->o.families);
  worker->callback([w, deadline] {
    int rc = runTuneWorker(w->o, *deadline);
    if (rc != 0)
      std::exit(rc);
  });
}

} // namespace tessera::autotune
