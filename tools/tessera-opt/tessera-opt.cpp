// tessera-opt: runs Tessera and the upstream passes it relies on, for lit tests.
// Registers only the dialects the pipeline uses (InitAllDialects is slow to build).
#include "Tessera/IR/TesseraOps.h"
#include "Tessera/Transforms/Passes.h"
#include "compiler/Dialects.h"
#include "compiler/TrainingPipeline.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  tessera::registerCompilerDialects(registry);
  mlir::tessera::registerTesseraPasses();
  tessera::registerTrainingPipeline();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Tessera optimizer driver\n", registry));
}
