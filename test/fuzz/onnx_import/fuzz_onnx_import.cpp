// The ONNX importer (protobuf ModelProto -> tessera @forward), from memory.
// Errors are returned as one line; the importer must never throw, crash,
// hit an LLVM fatal error or verify-fail silently. The MLIR context is
// shared between inputs (creating one costs milliseconds) and renewed every
// 512 inputs, since it keeps every constant it uniqued.
#include "FuzzCheck.h"
#include "Tessera/IR/TesseraDialect.h"
#include "compiler/import/OnnxImporter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <memory>

using namespace tessera;

// LLVM's BumpPtrAllocator poisons its slabs when inlined into instrumented
// code but not inside the (uninstrumented) Debian libMLIR that unpoisons
// them: ASan's manual poisoning would report those false positives.
extern "C" const char *__asan_default_options() { return "allow_user_poisoning=0"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static std::unique_ptr<mlir::MLIRContext> ctx;
  static unsigned uses = 0;
  if (!ctx || ++uses % 512 == 0) {
    ctx = std::make_unique<mlir::MLIRContext>();
    ctx->loadDialect<mlir::tessera::TesseraDialect, mlir::func::FuncDialect>();
    ctx->printOpOnDiagnostic(false);
  }
  // The first byte picks the shape to import at (1-2 sequences of 2-9 tokens).
  ImportOptions opts;
  if (size) {
    opts.batch = 1 + (data[0] & 1);
    opts.seq = 2 + ((data[0] >> 1) & 7);
    ++data, --size;
  }
  std::string error;
  mlir::ScopedDiagnosticHandler quiet(ctx.get(), [](mlir::Diagnostic &) { return mlir::success(); });
  mlir::OwningOpRef<mlir::ModuleOp> m =
      importOnnxBytes(*ctx, std::string_view(reinterpret_cast<const char *>(data), size),
                      "/nonexistent-fuzz-dir/model.onnx", opts, error);
  if (!m) {
    fuzz::checkMessage(error);
    return 0;
  }
  if (mlir::failed(mlir::verify(*m))) fuzz::finding("the importer returned a module that does not verify");
  return 0;
}
