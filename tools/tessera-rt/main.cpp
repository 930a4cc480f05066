// tessera-rt: the runtime commands alone (devices, train, eval, tune), without
// MLIR or LLVM: Vulkan, nlohmann-json and the C++ standard library.
#include "autotune/TuneCommand.h"
#include "runtime/cli/Commands.h"

#include <CLI/CLI.hpp>

int main(int argc, char **argv) {
  CLI::App app{"tessera-rt: runs compiled Tessera LoRA training plans on any Vulkan device"};
  app.require_subcommand(1);
  tessera::addRuntimeCommands(app);
  tessera::autotune::addTuneCommands(app);
  return tessera::runApp(app, argc, argv);
}
