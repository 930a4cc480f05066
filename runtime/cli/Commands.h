// Commands.h - the runtime subcommands (devices, train, eval), shared by
// `tessera` (compiler + runtime) and `tessera-rt` (runtime only, no MLIR).
#pragma once

namespace CLI {
class App;
}

namespace tessera {

// Registers `devices`, `train` and `eval` on app. Their callbacks throw
// std::runtime_error (one line) on failure; the caller prints `error: ...`.
void addRuntimeCommands(CLI::App &app);

// Parses argv with `app` and runs the chosen command; --help prints usage and
// returns 0; any other failure (usage errors included) prints exactly one
// `error: ...` line on stderr and returns 1. `tessera` can call this too.
int runApp(CLI::App &app, int argc, char **argv);

// main() of tessera-rt: parses argv, runs the command, prints every failure as
// one `error: ...` line on stderr and returns 1 (0 on success).
int runRuntimeMain(int argc, char **argv);

} // namespace tessera
