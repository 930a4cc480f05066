// tessera-rt: the runtime commands alone (devices, train, eval), without MLIR
// or LLVM: Vulkan, nlohmann-json and the C++ standard library.
#include "runtime/cli/Commands.h"

int main(int argc, char **argv) { return tessera::runRuntimeMain(argc, argv); }
