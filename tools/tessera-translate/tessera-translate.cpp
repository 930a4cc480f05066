// tessera-translate: imports an ONNX decoder into `func.func @forward` made of
// tessera ops and prints it, or writes the plan of a lowered module.
//
//   tessera-translate --import-onnx model.onnx [--batch B] [--seq T] [-o out.mlir]
//   tessera-translate --mlir-to-plan lowered.mlir -o out.tplan
//     (a module after tessera-kernels-to-spirv: kernel benchmarks and tests)
//
// On failure prints one line "error: <file>: <what>" and exits with 1.
#include "compiler/Dialects.h"
#include "compiler/import/OnnxImporter.h"
#include "compiler/plan/PlanEmitter.h"
#include "runtime/plan/Plan.h"
#include "Tessera/IR/TesseraOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Parser/Parser.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"
#include "mlir/Support/FileUtilities.h"

namespace cl = llvm::cl;

static cl::OptionCategory category("tessera-translate options");
static cl::opt<std::string> importOnnx("import-onnx", cl::desc("ONNX model to import"),
                                       cl::value_desc("file"), cl::cat(category));
static cl::opt<std::string> mlirToPlan("mlir-to-plan",
                                       cl::desc("lowered module (after tessera-kernels-to-spirv) to write as a plan"),
                                       cl::value_desc("file"), cl::cat(category));
static cl::opt<int64_t> batch("batch", cl::desc("batch size to specialise to (default 1)"),
                              cl::init(1), cl::cat(category));
static cl::opt<int64_t> seq("seq", cl::desc("sequence length to specialise to (default 16)"),
                            cl::init(16), cl::cat(category));
static cl::opt<std::string> output("o", cl::desc("output file (default: stdout)"),
                                   cl::value_desc("file"), cl::init("-"), cl::cat(category));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // --mlir-print-op-generic, --mlir-print-debuginfo (ONNX node names as locations),
  // --mlir-print-elementsattrs-with-hex-if-larger, --mlir-elide-elementsattrs-if-larger, ...
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "tessera-translate: ONNX decoder -> func.func @forward of tessera ops\n\n"
      "  MLIR printing flags are accepted too: --mlir-print-op-generic, --mlir-print-debuginfo\n"
      "  (ONNX node names as locations), --mlir-print-elementsattrs-with-hex-if-larger=N,\n"
      "  --mlir-elide-elementsattrs-if-larger=N.\n");
  if (importOnnx.empty() == mlirToPlan.empty()) {
    llvm::errs() << "error: give one of --import-onnx and --mlir-to-plan\n";
    return 1;
  }
  if (!mlirToPlan.empty()) {
    mlir::DialectRegistry registry;
    tessera::registerCompilerDialects(registry);
    mlir::MLIRContext ctx(registry);
    mlir::OwningOpRef<mlir::ModuleOp> module = mlir::parseSourceFile<mlir::ModuleOp>(mlirToPlan, &ctx);
    if (!module)
      return 1; // the parser printed the error
    mlir::FailureOr<tessera::plan::Plan> p = tessera::buildPlan(*module, tessera::PlanOptions{});
    if (mlir::failed(p))
      return 1;
    try {
      tessera::plan::writePlanFile(*p, output == "-" ? std::string("out.tplan") : std::string(output));
    } catch (const std::exception &e) {
      llvm::errs() << "error: " << e.what() << "\n";
      return 1;
    }
    return 0;
  }
  if (batch < 1 || seq < 1) {
    llvm::errs() << "error: --batch and --seq must be >= 1\n";
    return 1;
  }
  mlir::MLIRContext ctx;
  std::string error;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      tessera::importOnnx(ctx, importOnnx, tessera::ImportOptions{batch, seq}, error);
  if (!module) {
    llvm::errs() << "error: " << error << "\n";
    return 1;
  }
  std::string err;
  auto out = mlir::openOutputFile(output, &err);
  if (!out) {
    llvm::errs() << "error: " << err << "\n";
    return 1;
  }
  module->print(out->os(), mlir::OpPrintingFlags());
  out->os() << "\n";
  out->keep();
  return 0;
}
