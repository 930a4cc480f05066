// TuneCommand.h - the `tune` subcommand of tessera-rt (a tuning plan in, a
// device profile out) and the hidden `tune-worker` it runs; `tessera tune`
// (tools/tessera) adds the compile step in front with the same flags.
#pragma once

#include "autotune/Tuner.h"

#include <string>

namespace CLI {
class App;
}

namespace tessera::autotune {

// Registers `tune` and `tune-worker` on app.
void addTuneCommands(CLI::App &app);
// Only the hidden `tune-worker` (tessera's own `tune` takes a model).
void addTuneWorkerCommand(CLI::App &app);

// The flags `tune` and `tessera tune` share (--out, --budget, --device, ...),
// added to `cmd`; `budget`, `timeout` and `coldCache` receive their texts.
void addTuneFlags(CLI::App &cmd, TuneOptions &o, std::string &budget, std::string &timeout, std::string &families,
                  std::string &coldCache);
// Fills o.budget_s, o.timeout_s, o.families and o.cold_cache_bytes from
// those texts; throws std::runtime_error naming the flag.
void finishTuneFlags(TuneOptions &o, const std::string &budget, const std::string &timeout,
                     const std::string &families, const std::string &coldCache);
// --cold-cache: "auto" (-1), "off" (0) or a size such as 64MiB (bytes);
// throws std::runtime_error naming the flag.
int64_t parseColdCache(const std::string &text);

// "120s", "2m", "1h", "90" (seconds); throws std::runtime_error naming `flag`.
double parseDuration(const std::string &text, const std::string &flag);

} // namespace tessera::autotune
